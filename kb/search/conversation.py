"""Follow-up questions: 「那要是不满意呢？」 right after 「信访事项多久办结？」 is still about 信访.

An elliptical question carries too little to find its passage alone, but its answer lies near what the previous
question was answered from: in the same document, often in the same or a neighbouring article, or in a passage
like it. So the question is read six ways (READINGS): on its own, anywhere and in the previous answer's document;
together with the previous question, in that document and anywhere; and the candidates of the previous question
and of the passages most like its answer. Each candidate is described by where it ranks in each reading, where it
lies from the previous answer, whether it holds what the question asks for, how many of each question's words it
holds, and how close in meaning it comes to the question, to the previous one and to both, against the closest
candidate (FOLLOW_UP_FEATURES; the vectors are the store's, kb.stores.base.PassageStore.passage_vectors). A
linear model learnt on two-turn conversations scores them (`python -m bench.followup --fit` →
kb/search/rankers/followup.json).

Before any of that, a second learnt model, the gate, decides whether the question depends on the one before it
at all (GATE_FEATURES: does it point back, is it short, does it share words or meaning with the previous
question, does it find its own passage elsewhere and surely, does the ranker keep its own best passage …;
`python -m bench.followup_gate` learns it on the fit conversations and on automatic topic switches,
bench/data/switch_fit.jsonl → kb/search/rankers/followup_gate.json). A question that stands alone —
「父母去世了，遗产怎么分？」 after a 信访 question, or a weather question — is answered exactly as if asked
alone: same passages, same answer/no-answer decision. So is one that names another law, or cites an article.

A question that depends on the previous one is read as a follow-up; when the best candidate is nevertheless its
own best passage, it is answered on its own unless only the follow-up reading can be answered (「走访的话要去哪里？」
after 「可以用哪些方式信访？」). A follow-up reading that cannot be answered gives way to the question's own when
that can (kb/answers/asker.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from kb.config import FollowUpParams
from kb.schema import Hit
from kb.search.rank import ASKS, RANKERS_DIR, LinearRanker, question_asks, term_coverage
from kb.search.retrieve import Retrieval, Retriever
from kb.stores.base import Filters
from kb.text.personal import without_personal_details
from kb.text.tokenize import nouns, tokenize
from kb.text.traits import holds

#: How every channel says that an answer was read with the question before it.
FOLLOW_UP_NOTE = "接着您上一个问题「{}」回答"
#: Earlier questions a caller may pass; only the last USED_EARLIER are read, each cut to its last EARLIER_CHARS
#: characters (where a story's question is), so that what a follow-up costs is bounded whatever is sent.
MAX_HISTORY = 10
USED_EARLIER = 2
EARLIER_CHARS = 200

#: How sure the answer stage is that a retrieval answers a question (kb.answers.asker.Asker.confidence).
Confidence = Callable[[str, Retrieval], float]
#: Words that point back into the conversation: 「那…」「…呢」, 他/她/对方, 这样/这么/这钱 …
REFERS_BACK_RE = re.compile(r"^\s*(?:那|要是|如果|还有)|他们|她们|他(?!人)|她|它|对方|这[样么个些种钱期]|"
                            r"那[样么个些种]|呢[\s?？。.!！]*$")

READINGS = ("alone", "in_document", "together", "together_anywhere", "previous", "like_answer")
#: The readings whose question vectors the candidates are compared with: the question, the previous question and
#: the two together.
COSINE_READINGS = ("alone", "previous", "together_anywhere")
FOLLOW_UP_FEATURES = (
    *(f"{reading}_rank" for reading in READINGS),  # 1/log2(rank + 2); 0 when the reading does not propose it
    "in_answer_document", "answer_article", "next_article", "near_article",  # beside the previous answer
    # Outside the previous answer's document: how much closer the best passage there is, and whether the
    # question points back, how long it is and how surely it is answered on its own.
    "elsewhere_closer", "elsewhere_points_back", "elsewhere_length", "elsewhere_sure",
    "named_law",
    *(f"{a}_asked_and_present" for a in ASKS), *(f"{a}_asked_and_absent" for a in ASKS),
    "question_coverage", "previous_coverage", "answer_article_holds_asked", "answer_article_lacks_asked",
    # How close in meaning each candidate is to the question, to the previous one and to both read together,
    # against the closest candidate (0 for it): beyond the readings' ranks, by how much.
    *(f"{text}_cosine_gap" for text in COSINE_READINGS),
)
#: Questions are at most this long for the "elsewhere_length" feature (longer ones are surely complete).
FULL_LENGTH = 30
#: Whether a question depends on the previous one at all, known before its candidates are ranked.
GATE_FEATURES = (
    "points_back", "length", "named_law", "sure_alone", "sure_together", "closer", "alone_in_answer_document",
    "question_similarity", "shared_words", "own_words", "new_nouns", "ranker_keeps_own",
    "ranker_in_answer_document", "ranker_share",
)


def follow_up_ranker(directory: Path = RANKERS_DIR) -> LinearRanker | None:
    """The shipped weights (learnt with the default model; the features are ranks, shares and cosine gaps to the
    closest candidate, so they serve another model too, its gaps read on the default model's scale), or None when
    they were learnt over other features."""
    return LinearRanker.for_model("followup", directory, FOLLOW_UP_FEATURES)


def follow_up_gate(directory: Path = RANKERS_DIR) -> LinearRanker | None:
    """The shipped gate: a question depends on the previous one when its score is at least meta["threshold"]
    (chosen on training conversations, bench/followup_gate.py). None: no follow-up reading at all."""
    gate = LinearRanker.for_model("followup_gate", directory, GATE_FEATURES)
    return gate if gate is not None and "threshold" in gate.meta else None


@dataclass
class InContext:
    retrieval: Retrieval
    #: The earlier question a follow-up was read with, e.g. 「信访事项多久办结？」; None when read on its own.
    follow_up_of: str | None = None
    #: The other reading, answered when this one cannot be: the question on its own after a follow-up reading
    #: (a clear new question is never refused because of the one before it), the follow-up reading after the
    #: question's own (「走访的话要去哪里？」 is best answered by its own best passage, but only surely with the
    #: question before it).
    otherwise: InContext | None = None


@dataclass
class Readings:
    """The question read the ways of READINGS, and the previous question's best passage they lean on."""

    answer: Hit
    lists: dict[str, Retrieval]


@dataclass
class FollowUpCandidates:
    """What the readings propose for a follow-up, each candidate with its row of FOLLOW_UP_FEATURES."""

    previous: str
    readings: Readings
    hits: list[Hit]
    features: np.ndarray
    #: How surely the question is answered on its own (the answer model's confidence).
    sure_alone: float
    named: tuple[str, ...]


def earlier_questions(history: Sequence[str]) -> list[str]:
    """The earlier questions a follow-up is read with: the last USED_EARLIER non-empty ones, oldest first."""
    if isinstance(history, str):
        history = [history]  # one earlier question given as it is, not as a list of its characters
    return [h.strip()[-EARLIER_CHARS:] for h in history if h and h.strip()][-USED_EARLIER:]


def retrievals_for(history: Sequence[str]) -> int:
    """How many retrievals reading a question with this history takes at most: one alone, and for each earlier
    question the READINGS but "alone" (the previous one is itself read with the one before it,
    ConversationReader.understood; its own retrieval is then the one its reading made, Retrievals)."""
    return 1 + (len(READINGS) - 1) * len(earlier_questions(history))


def previous_question(history: Sequence[str]) -> str:
    """The most recent non-empty earlier question ('' when there is none)."""
    return (earlier_questions(history) or [""])[-1]


def read_together(previous: str, question: str) -> str:
    """A follow-up and the question before it, as one text to search and to weigh the answer by."""
    return f"{previous} {question.strip()}"


class Retrievals:
    """The retrievals of one question's reading, each text searched once: the previous question's search is also
    what its own reading searched, and a follow-up of a follow-up meets the same texts again. Texts are searched
    without the asker's personal details (kb/text/personal.py), as every question is."""

    def __init__(self, retriever: Retriever) -> None:
        self.retriever = retriever
        self.done: dict[tuple[str, Filters], tuple[int, Retrieval]] = {}
        self.searches = 0

    def __call__(self, text: str, top_k: int, filters: Filters) -> Retrieval:
        key = (text, filters)
        if key in self.done and self.done[key][0] >= top_k:  # more hits are the same ranking, only longer
            done = self.done[key][1]
            return replace(done, hits=done.hits[:top_k])
        self.searches += 1
        found = self.retriever.retrieve(without_personal_details(text), top_k, filters)
        self.done[key] = (top_k, found)
        return found


class ConversationReader:
    """Reads a question in its conversation; holds no per-question state, so threads may share it. `confidence`
    is the answer stage's (how surely a retrieval answers a question), which the gate weighs."""

    def __init__(self, retriever: Retriever, params: FollowUpParams, ranker: LinearRanker | None,
                 gate: LinearRanker | None, confidence: Confidence) -> None:
        self.retriever, self.params, self.ranker, self.gate = retriever, params, ranker, gate
        self.confidence = confidence
        store = retriever.store
        self.law_names, self.idf = store.law_names, store.idf
        self.document_text: Callable[[str], str] = lambda doc_id: store.document(doc_id).text

    def read(self, question: str, history: Sequence[str], top_k: int, filters: Filters,
             retrievals: Retrievals | None = None) -> InContext:
        """Retrieval for `question` read as part of its conversation (earlier questions oldest first)."""
        alone, found = self.candidates(question, history, top_k, filters, retrievals)
        if found is None or self.ranker is None or self.gate is None:
            return InContext(alone)
        shares = self.ranker_shares(found)  # the answer stage compares passages by these
        if not self.depends(question, alone, found, shares):
            return InContext(alone)  # a question of its own: exactly as if asked alone
        order = np.argsort(-shares, kind="stable")
        ranked = [replace(found.hits[i], score=round(float(shares[i]), 6)) for i in order[:top_k]]
        together, in_document = found.readings.lists["together"], found.readings.lists["in_document"]
        retrieval = Retrieval(ranked, max(in_document.top_dense, together.top_dense),
                              question_vector=together.question_vector)
        if found.hits[order[0]].chunk_id == alone.hits[0].chunk_id:  # its own best passage wins: read on its own
            return InContext(alone, None, InContext(retrieval, found.previous))
        return InContext(retrieval, found.previous, InContext(alone))

    def ranker_shares(self, found: FollowUpCandidates) -> np.ndarray:
        """The follow-up ranker's scores of the candidates as shares of 1 (a softmax)."""
        assert self.ranker is not None
        scores = self.ranker.score(found.features)
        shares = np.exp(scores - scores.max())
        return shares / shares.sum()

    def gate_row(self, question: str, alone: Retrieval, found: FollowUpCandidates, shares: np.ndarray) -> np.ndarray:
        """The question's GATE_FEATURES, as the gate sees them (and bench/followup_gate.py learns them)."""
        return gate_features(question, alone, found, shares, self.confidence, self.idf, self.document_text)

    def depends(self, question: str, alone: Retrieval, found: FollowUpCandidates, shares: np.ndarray) -> bool:
        """Whether the question needs the previous one (the gate); `shares` are the ranker's over candidates."""
        assert self.gate is not None
        row = self.gate_row(question, alone, found, shares)
        return float(self.gate.score(row[None, :])[0]) >= float(self.gate.meta["threshold"])

    def candidates(self, question: str, history: Sequence[str], top_k: int, filters: Filters,
                   retrievals: Retrievals | None = None) -> tuple[Retrieval, FollowUpCandidates | None]:
        """The question's retrieval on its own (`top_k` hits), and its candidates as a follow-up: None when
        there is nothing to follow (no earlier question, an article cited, another law named)."""
        retrievals = retrievals or Retrievals(self.retriever)
        everywhere = retrievals(question, max(top_k, self.params.candidates), filters)
        alone = replace(everywhere, hits=everywhere.hits[:top_k])
        previous = self.understood(history, top_k, filters, retrievals)
        if not previous or alone.cited_article or not alone.hits:
            return alone, None
        readings = self.readings(question, previous, everywhere, filters, retrievals)
        named = self.law_names.about(question)
        if readings is None or (named and readings.answer.doc_id not in named):
            return alone, None
        sure_alone = self.confidence(question, alone)
        hits, features = follow_up_features(question, previous, readings, sure_alone, named, self.idf,
                                            self.retriever.store.passage_vectors)
        return alone, FollowUpCandidates(previous, readings, hits, features, sure_alone, tuple(named))

    def understood(self, history: Sequence[str], top_k: int, filters: Filters,
                   retrievals: Retrievals | None = None) -> str:
        """The previous question as it was understood: with the one before it when it was itself a follow-up
        (「那外孙呢？」 after 「孙子能继承吗？」 after 「父母去世没留遗嘱，遗产怎么分？」). One step back only."""
        questions = earlier_questions(history)
        if len(questions) < 2:
            return previous_question(questions)
        earlier, last = questions[-2:]
        read = self.read(last, [earlier], top_k, filters, retrievals)
        return read_together(earlier, last) if read.follow_up_of else last

    def readings(self, question: str, previous: str, alone: Retrieval, filters: Filters,
                 retrievals: Retrievals | None = None) -> Readings | None:
        """The question's READINGS; None when the previous question found nothing to lean on."""
        retrieve = retrievals or Retrievals(self.retriever)
        k = self.params.candidates
        earlier = retrieve(previous, k, filters)
        if not earlier.hits:
            return None
        answer = earlier.hits[0]
        scope = replace(filters, doc_ids=(answer.doc_id,))
        together = read_together(previous, question)
        return Readings(answer, {
            "alone": alone, "in_document": retrieve(question, k, scope),
            "together": retrieve(together, k, scope), "together_anywhere": retrieve(together, k, filters),
            "previous": earlier, "like_answer": retrieve(answer.text[: self.params.like_answer_chars], k, scope),
        })


def follow_up_features(question: str, previous: str, readings: Readings, sure_alone: float,
                       named: Sequence[str], idf: Callable[[str], float],
                       passage_vectors: Callable[[Sequence[str]], np.ndarray]) -> tuple[list[Hit], np.ndarray]:
    """Every reading's candidates (each once) and their (candidates × FOLLOW_UP_FEATURES) matrix;
    `passage_vectors` gives the candidates' vectors (the store's)."""
    lists = [readings.lists[r].hits for r in READINGS]
    first_seen: dict[str, Hit] = {}
    for hit in (h for hits in lists for h in hits):
        first_seen.setdefault(hit.chunk_id, hit)
    candidates = list(first_seen.values())
    ranks = [{h.chunk_id: i for i, h in enumerate(hits)} for hits in lists]
    answer = readings.answer
    closer = readings.lists["alone"].top_dense - readings.lists["in_document"].top_dense
    points_back = float(bool(REFERS_BACK_RE.search(question)))
    length = min(len(question.strip()), FULL_LENGTH) / FULL_LENGTH
    asks = question_asks(question)
    cosine_gaps = _cosine_gaps(passage_vectors([h.chunk_id for h in candidates]),
                               [readings.lists[r].question_vector for r in COSINE_READINGS])
    rows = []
    for hit, gaps in zip(candidates, cosine_gaps):
        elsewhere = float(hit.doc_id != answer.doc_id)
        distance = _distance(hit, answer)
        present = [bool(asked) and holds(a, hit.text) for a, asked in zip(ASKS, asks)]
        absent = [bool(asked) and not held for asked, held in zip(asks, present)]
        rows.append([
            *(1 / math.log2(r[hit.chunk_id] + 2) if hit.chunk_id in r else 0.0 for r in ranks),
            1 - elsewhere, distance == 0, distance == 1, distance in (2, 3),
            elsewhere * closer, elsewhere * points_back, elsewhere * length, elsewhere * sure_alone,
            hit.doc_id in named, *present, *absent,
            term_coverage(question, [hit], idf), term_coverage(previous, [hit], idf),
            distance == 0 and any(present), distance == 0 and any(absent), *gaps,
        ])
    return candidates, np.array(rows, dtype=np.float64).reshape(len(candidates), len(FOLLOW_UP_FEATURES))


def gate_features(question: str, alone: Retrieval, found: FollowUpCandidates, shares: np.ndarray,
                  confidence: Confidence, idf: Callable[[str], float],
                  document_text: Callable[[str], str]) -> np.ndarray:
    """(GATE_FEATURES,) for one question and its follow-up candidates, `shares` the ranker's over them.
    "new_nouns": the share of the question's nouns found neither in the previous question nor anywhere in the
    previous answer's document (护照 after a 信访 question: a thing of its own)."""
    lists, answer, previous = found.readings.lists, found.readings.answer, found.previous
    together = read_together(previous, question)
    best = found.hits[int(np.argmax(shares))]
    terms = [t for t in dict.fromkeys(tokenize(question)) if len(t) > 1]
    weights = [idf(t) for t in terms]
    shared = sum(w for t, w in zip(terms, weights) if t in previous)
    context = document_text(answer.doc_id)
    named_things = dict.fromkeys(nouns(question))
    things = {t: idf(t) for t in named_things}
    new = sum(w for t, w in things.items() if t not in previous and t not in context)
    row = [
        float(bool(REFERS_BACK_RE.search(question))),
        min(len(question.strip()), FULL_LENGTH) / FULL_LENGTH,
        float(bool(found.named)),
        found.sure_alone,
        confidence(together, lists["together_anywhere"]),
        alone.top_dense - lists["in_document"].top_dense,
        float(alone.hits[0].doc_id == answer.doc_id),
        _cosine(alone.question_vector, lists["previous"].question_vector),
        shared / sum(weights) if weights else 0.0,
        math.log1p(sum(weights)),  # how much the question says by itself
        new / sum(things.values()) if things else 0.0,
        float(best.chunk_id == alone.hits[0].chunk_id),
        float(best.doc_id == answer.doc_id),
        float(shares.max()),
    ]
    return np.nan_to_num(np.array(row, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)


def _cosine_gaps(vectors: np.ndarray, question_vectors: Sequence[np.ndarray | None]) -> np.ndarray:
    """(candidates × question vectors): each candidate's cosine with each vector minus the best candidate's
    (0 throughout for a missing vector)."""
    passages = vectors.astype(np.float64)
    columns = []
    for question_vector in question_vectors:
        if question_vector is None or not len(passages):
            columns.append(np.zeros(len(passages)))
            continue
        cosines = np.nan_to_num(passages @ np.ravel(question_vector).astype(np.float64))
        columns.append(cosines - cosines.max())
    return np.array(columns, dtype=np.float64).T.reshape(len(vectors), len(question_vectors))


def _cosine(a: np.ndarray | None, b: np.ndarray | None) -> float:
    if a is None or b is None:
        return 0.0
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / norm if norm > 0 else 0.0


def _distance(hit: Hit, anchor: Hit) -> int | None:
    """How many articles apart two hits of one law are (None: not both articles of one document)."""
    if hit.article_no is None or anchor.article_no is None or hit.doc_id != anchor.doc_id:
        return None
    return abs(hit.article_no - anchor.article_no)
