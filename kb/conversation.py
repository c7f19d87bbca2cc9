"""Follow-up questions: 「那要是不满意呢？」 right after 「信访事项多久办结？」 is still about 信访.

An elliptical question carries too little to find its passage alone, but it lies in the document the previous
question was answered from, often beside that article. So the question is also searched inside that document,
alone and together with the previous question, and the two lists are fused with a small extra for the
neighbouring articles. Whether it is a follow-up at all is decided mostly by evidence: a question whose best
passage anywhere is clearly closer than the best one in that document starts a new topic. So do a full
question that points nowhere back and is answered surely on its own when its best passage is only a little
closer elsewhere; one that names another law or its subject (「行政复议的期限呢？」 after a 人民调解 question);
and one whose follow-up reading cannot be answered while the question alone can (KnowledgeBase.ask).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from kb.config import FollowUpParams
from kb.passage_store import Filters
from kb.query import LawNames
from kb.retrieve import Retrieval
from kb.schema import Hit

#: How every channel says that an answer was read with the question before it.
FOLLOW_UP_NOTE = "接着您上一个问题「{}」回答"
#: Earlier questions a caller may pass; only the most recent one is used to read a follow-up.
MAX_HISTORY = 10

Retrieve = Callable[[str, int, Filters], Retrieval]
#: How sure the answer stage is that a retrieval answers a question (kb.answer.confidence).
Confidence = Callable[[str, Retrieval], float]
#: Words that point back into the conversation: 「那…」「…呢」, 他/她/对方, 这样/这么/这钱 …
REFERS_BACK_RE = re.compile(r"^\s*(?:那|要是|如果|还有)|他们|她们|他(?!人)|她|它|对方|这[样么个些种钱期]|"
                            r"那[样么个些种]|呢[\s?？。.!！]*$")


@dataclass
class InContext:
    retrieval: Retrieval
    #: The earlier question a follow-up was read with, e.g. 「信访事项多久办结？」; None for a new topic.
    follow_up_of: str | None = None
    #: For a follow-up, the question's retrieval on its own: what it is answered from when the follow-up
    #: reading cannot be answered but the question alone can (a clear new question is never refused because
    #: of the one before it).
    alone: Retrieval | None = None


def previous_question(history: Sequence[str]) -> str:
    """The most recent non-empty earlier question ('' when there is none)."""
    if isinstance(history, str):
        history = [history]  # one earlier question given as it is, not as a list of its characters
    return next((h.strip() for h in reversed(list(history)[-MAX_HISTORY:]) if h and h.strip()), "")


def retrieve_in_context(question: str, history: Sequence[str], top_k: int, filters: Filters,
                        retrieve: Retrieve, params: FollowUpParams, law_names: LawNames,
                        confidence: Confidence) -> InContext:
    """Retrieval for `question` read as part of its conversation (earlier questions oldest first); `law_names`
    tells which laws it names, `confidence` how surely a retrieval answers it."""
    alone = retrieve(question, top_k, filters)
    previous = previous_question(history)
    if not previous or alone.cited_article or not alone.hits:
        return InContext(alone)
    anchors = retrieve(previous, params.anchor_documents, filters).hits
    if not anchors:
        return InContext(alone)
    anchor = anchors[0]
    scope = replace(filters, doc_ids=tuple(dict.fromkeys(a.doc_id for a in anchors)))
    named = law_names.about(question)
    if named and not set(named) & set(scope.doc_ids):
        return InContext(alone)
    in_document = retrieve(question, params.candidates, scope)
    if not in_document.hits:
        return InContext(alone)
    gap = alone.top_dense - in_document.top_dense  # how much closer the best passage anywhere is
    if gap > params.new_topic_gap or (gap > params.standalone_gap
                                      and stands_alone(question, alone, params, confidence)):
        return InContext(alone)
    together = retrieve(read_together(previous, question), params.candidates, scope)
    hits = fuse(in_document.hits, together.hits, anchor, params)[:top_k]
    return InContext(Retrieval(hits, max(in_document.top_dense, together.top_dense),
                               question_vector=together.question_vector), previous, alone)


def stands_alone(question: str, alone: Retrieval, params: FollowUpParams, confidence: Confidence) -> bool:
    """A full question that points nowhere back and is answered surely on its own (「村委会选举时在外地打工回不去，
    能委托家里人投票吗？」 after a 宅基地 question) starts a new topic even when the earlier topic's document lies
    close; an elliptical one (「他不遵守怎么办？」) does not."""
    return (len(question.strip()) >= params.standalone_chars and not REFERS_BACK_RE.search(question)
            and confidence(question, alone) >= params.standalone_confidence)


def read_together(previous: str, question: str) -> str:
    """A follow-up and the question before it, as one text to search and to weigh the answer by."""
    return f"{previous} {question.strip()}"


def fuse(alone: list[Hit], together: list[Hit], anchor: Hit, params: FollowUpParams) -> list[Hit]:
    """Reciprocal-rank fusion of the two lists, plus the neighbour bonus; each hit's score becomes its fused
    score (the answer stage compares passages by it)."""
    scores: dict[str, float] = {}
    by_id: dict[str, Hit] = {}
    for weight, hits in ((params.alone_weight, alone), (params.together_weight, together)):
        for rank, hit in enumerate(hits):
            by_id.setdefault(hit.chunk_id, hit)
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + weight / (rank + params.rank_offset)
    for chunk_id, hit in by_id.items():
        distance = _distance(hit, anchor)
        if distance is not None and 0 < distance <= params.neighbour_width:
            scores[chunk_id] += params.neighbour_bonus
    ranked = sorted(scores, key=lambda c: -scores[c])
    return [replace(by_id[c], score=round(scores[c], 6)) for c in ranked]


def _distance(hit: Hit, anchor: Hit) -> int | None:
    """How many articles apart two hits of one law are (None: not both articles of one document)."""
    if hit.article_no is None or anchor.article_no is None or hit.doc_id != anchor.doc_id:
        return None
    return abs(hit.article_no - anchor.article_no)
