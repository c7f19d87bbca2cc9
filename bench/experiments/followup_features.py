"""What else would tell the follow-up ranker which candidate a follow-up asks about?

    python -m bench.experiments.followup_features [--index DIR]

The follow-up ranker (kb/search/conversation.py) scores a follow-up's candidates from ranks in six readings, the
place beside the previous answer, what the question asks for and the words it shares. On the training
conversations (bench/data/followup_fit.jsonl, 394) its cross-validated first citation was gold for 0.59 of the
follow-ups although the gold article is among the candidates for 0.97 of them. Each variant below adds columns to
the product's FOLLOW_UP_FEATURES and is compared by bench.followup's own cross-validation (10 folds × 3 shuffles
over conversations, share of conversations whose best candidate is gold), at each L2 weight of L2_GRID:

* "without cosine gaps": the features before this experiment (the last three columns removed);
* "shipped": with the cosine gaps (each candidate's cosine with the question, the previous question and both
  together, minus the closest candidate's) — adopted;
* "+ score shares": each reading's softmax of its hits' scores (0 where the reading does not propose the hit);
* "+ handle cosines": the best attached question's cosine, its gap to the best candidate's and its BM25, for the
  question and for both questions together (kb.stores.handles);
* "+ consequence asks": whether the question asks what follows a breach or a refusal (不…怎么办, 违反, 能告…)
  and the candidate holds a sanction or remedy (责令, 处分, 罚款, 复议, 诉讼 …), and whether it lacks one;
* "+ topic readings": the candidate's rank when the question is searched with the previous question's three
  rarest words not in it (in the previous answer's document and anywhere);
* a learning curve of the shipped features: fitted on a share of 90 % of the conversations, measured on the
  rest (20 seeded splits) — does more data of this kind help?

Nothing of the product changes; writes results/followup_features.json.
"""

from __future__ import annotations

import argparse
import random
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.common import EXPERIMENT_RESULTS, write_result
from bench.followup import DATA, Conversation, conversations, cross_validated, learn
from kb.config import load_settings
from kb.evaluate import load_questions
from kb.knowledge_base import KnowledgeBase
from kb.search.conversation import COSINE_READINGS, READINGS, read_together
from kb.stores.base import Filters
from kb.text.tokenize import tokenize

L2_GRID = (0.001, 0.01, 0.1)
CURVE_SHARES = (0.25, 0.5, 0.75, 1.0)
CURVE_SPLITS = 20
TOPIC_WORDS = 3
CONSEQUENCE_ASKED_RE = re.compile(r"不[^，。？?]{0,8}(?:怎么办|呢|会怎样|怎么样|咋办)|违反|违规|会怎样|"
                                  r"会怎么样|怎么处理|怎么处罚|处罚|处分|追究|能告|告他|告谁|起诉|投诉|拒不|不遵守|"
                                  r"不履行|不执行|不服|不认账|拖着|后果")
SANCTION_OR_REMEDY_RE = re.compile(r"责令|处分|追究|罚款|处罚|拘留|警告|承担[^。；]{0,12}责任|依法给予|申请行政复议|"
                                   r"提起行政诉讼|向人民法院|申诉|投诉|举报|撤销|无效|强制执行|赔偿")

Columns = Callable[[Conversation], np.ndarray]


def with_columns(talks: list[Conversation], columns: Columns | None, keep: int | None = None) -> list[Conversation]:
    """The conversations with their first `keep` feature columns (all by default) and `columns` appended."""
    out = []
    for talk in talks:
        if talk.found is None:
            out.append(talk)
            continue
        features = talk.found.features[:, :keep]
        if columns is not None:
            features = np.hstack([features, columns(talk)])
        out.append(replace(talk, found=replace(talk.found, features=features)))
    return out


def score_shares(talk: Conversation) -> np.ndarray:
    assert talk.found is not None
    columns = []
    for reading in READINGS:
        hits = talk.found.readings.lists[reading].hits
        by_id: dict[str, float] = {}
        if hits:
            scores = np.array([h.score for h in hits], dtype=np.float64)
            shares = np.exp(scores - scores.max())
            by_id = {h.chunk_id: float(s) for h, s in zip(hits, shares / shares.sum())}
        columns.append([by_id.get(h.chunk_id, 0.0) for h in talk.found.hits])
    return np.array(columns, dtype=np.float64).T


def handle_cosines(kb: KnowledgeBase) -> Columns:
    handles = kb.store.handles
    assert handles is not None, "the index has no attached questions"
    chunk_of = {c.chunk_id: c for c in kb.store.chunks}  # type: ignore[attr-defined]

    def columns(talk: Conversation) -> np.ndarray:
        assert talk.found is not None
        chunks = [chunk_of[h.chunk_id] for h in talk.found.hits]
        out = []
        for text in (talk.question.q, read_together(talk.found.previous, talk.question.q)):
            plain, _ = kb.embedder.encode_question(text)
            cosine, bm25, _, _ = handles.match(plain, text, None).features(chunks)
            out += [cosine, cosine - cosine.max(), bm25]
        return np.array(out, dtype=np.float64).T
    return columns


def consequence_asks(talk: Conversation) -> np.ndarray:
    assert talk.found is not None
    asked = bool(CONSEQUENCE_ASKED_RE.search(talk.question.q))
    held = np.array([bool(SANCTION_OR_REMEDY_RE.search(h.text)) for h in talk.found.hits])
    return np.array([asked & held, asked & ~held], dtype=np.float64).T


def topic_readings(kb: KnowledgeBase) -> Columns:
    k = kb.conversation.params.candidates

    def columns(talk: Conversation) -> np.ndarray:
        assert talk.found is not None
        previous, question = talk.found.previous, talk.question.q
        words = [t for t in dict.fromkeys(tokenize(previous)) if len(t) > 1 and t not in question]
        text = " ".join(sorted(words, key=lambda t: -kb.store.idf(t))[:TOPIC_WORDS]) + " " + question
        scope = Filters(doc_ids=(talk.found.readings.answer.doc_id,))
        out = []
        for filters in (scope, Filters()):
            ranks = {h.chunk_id: i for i, h in enumerate(kb.retriever.retrieve(text, k, filters).hits)}
            out.append([1 / np.log2(ranks[h.chunk_id] + 2) if h.chunk_id in ranks else 0.0 for h in talk.found.hits])
        return np.array(out, dtype=np.float64).T
    return columns


def learning_curve(talks: list[Conversation], l2: float) -> dict[str, float]:
    """First citations gold among held-out follow-ups, fitting on a share of the other 90 %."""
    rng = random.Random(0)
    right: dict[float, list[bool]] = {share: [] for share in CURVE_SHARES}
    for _ in range(CURVE_SPLITS):
        order = list(range(len(talks)))
        rng.shuffle(order)
        cut = int(0.9 * len(talks))
        for share in CURVE_SHARES:
            weights, mean, scale = learn([talks[i] for i in order[: int(share * cut)]], l2)

            def score(features: np.ndarray, w=weights, m=mean, s=scale) -> np.ndarray:
                return ((features - m) / s) @ w
            right[share] += [talks[i].right(score) for i in order[cut:] if talks[i].question.tag == "follow_up"]
    return {str(share): round(float(np.mean(v)), 3) for share, v in right.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, help="index directory (default: the product's)")
    args = parser.parse_args()
    kb = KnowledgeBase.open(args.index, load_settings())
    talks = conversations(kb, load_questions(DATA / "followup_fit.jsonl"))
    before = -len(COSINE_READINGS)
    variants: dict[str, list[Conversation]] = {
        "without cosine gaps": with_columns(talks, None, before),
        "shipped": talks,
        "+ score shares": with_columns(talks, score_shares),
        "+ handle cosines": with_columns(talks, handle_cosines(kb)),
        "+ consequence asks": with_columns(talks, consequence_asks),
        "+ topic readings": with_columns(talks, topic_readings(kb)),
    }
    results: dict = {"conversations": len(talks), "folds": "10 × 3 shuffles (bench.followup.cross_validated)",
                     "cross_validated_first_citation_gold": {}}
    for name, variant in variants.items():
        by_l2 = {str(l2): cross_validated(variant, l2) for l2 in L2_GRID}
        results["cross_validated_first_citation_gold"][name] = by_l2
        print(name, by_l2, flush=True)
    results["learning_curve_follow_ups"] = learning_curve(talks, kb.conversation.ranker.meta["l2"]
                                                          if kb.conversation.ranker else 0.001)
    print("learning curve", results["learning_curve_follow_ups"])
    results["script"] = "python -m bench.experiments.followup_features --index index"
    print("wrote", write_result("followup_features", results, EXPERIMENT_RESULTS))


if __name__ == "__main__":
    main()
