"""The law router (kb/search/router.py): its storage, its fallback, and what it says about invented stories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kb.knowledge_base import KnowledgeBase
from kb.search.handle_stage import router_column
from kb.search.rank import RANKERS_DIR
from kb.search.router import LawRouter
from kb.stores.base import Filters


def test_a_router_round_trips_as_json_and_its_probabilities_sum_to_one(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    router = LawRouter(["甲法", "乙法", "丙法"], rng.normal(size=(5, 3)), {"l2": 1e-5})
    router.save(tmp_path / "router-test.json")
    loaded = LawRouter.for_model("test", tmp_path)
    assert loaded is not None and loaded.titles == router.titles and loaded.dimension == 4
    vectors = rng.normal(size=(6, 4))
    p = loaded.probabilities(vectors)
    assert p.shape == (6, 3) and np.allclose(p.sum(axis=1), 1.0)
    assert np.allclose(p, router.probabilities(vectors), atol=1e-4)
    assert loaded.shares(vectors[0]) == pytest.approx(dict(zip(router.titles, p[0].tolist())))
    assert LawRouter.for_model("another-model", tmp_path) is None


def test_a_router_needs_one_column_per_distinct_document() -> None:
    with pytest.raises(ValueError, match="one weight column"):
        LawRouter(["甲法", "乙法"], np.zeros((5, 3)), {})
    with pytest.raises(ValueError, match="one weight column"):
        LawRouter(["甲法", "甲法"], np.zeros((5, 2)), {})


def test_a_document_the_router_never_learnt_gets_the_handles_vote() -> None:
    law_share = np.array([0.5, 0.3, 0.2])
    routed = {"甲法": 0.9, "乙法": 0.1}
    column = router_column(["甲法", "新增的办法", "乙法"], law_share, routed)
    assert column.tolist() == [0.9, 0.3, 0.1]
    assert router_column(["甲法", "乙法", "丙法"], law_share, None).tolist() == law_share.tolist()


def test_the_shipped_router_learnt_from_the_bank_and_real_training_questions() -> None:
    shipped = sorted(RANKERS_DIR.glob("router-*.json"))
    assert shipped, "a law router ships for the default model"
    for path in shipped:
        router = LawRouter.for_model(path.stem.removeprefix("router-"))
        assert router is not None and np.isfinite(router.weights).all()
        assert router.meta["script"] == "python -m bench.train_router"
        assert set(router.meta["real_questions"]) == {"stard_local_train", "train_local"}


# --- end to end, real model ------------------------------------------------------------------------------------

#: Stories written for this test (not from any evaluation file), each with the law that answers it.
STORIES = {
    "我家承包的那几亩地合同还没到期，村里就说要收回去给别人种，他们能这么干吗？": "农村土地承包法",
    "我男人一喝酒就动手打我，还不让我回娘家，我能申请啥保护？": "反家庭暴力法",
    "在镇上超市买的牛奶是过期的，喝了拉肚子，老板不认账咋办？": "消费者权益保护法",
    "县里对我罚了款，我觉得罚错了，想让上一级机关重新审一下，该怎么申请？": "行政复议法",
    "我想去县里反映村干部的问题，写的材料要交到哪里，多久给我答复？": "信访工作条例",
}


@pytest.mark.slow
def test_the_router_names_the_law_a_story_is_about(corpus_kb: KnowledgeBase) -> None:
    """On held-out questions the router's first document is right about 80-90 % of the time
    (bench/results/train_router.json): here, first for most stories and among the first three of the 21
    documents for every one."""
    router = corpus_kb.retriever.router
    assert router is not None, "a law router ships for the default model"
    places = []
    for story, law in STORIES.items():
        shares = router.shares(corpus_kb.embedder.encode_question(story)[0])
        ranked = sorted(shares, key=shares.__getitem__, reverse=True)
        places.append(next(n for n, title in enumerate(ranked) if law in title))
    assert max(places) < 3, places
    assert sum(place == 0 for place in places) > len(STORIES) / 2, places


@pytest.mark.slow
def test_the_search_weighs_the_routers_verdict(corpus_kb: KnowledgeBase) -> None:
    """The first stage asks the router, the handle stage's router column is its verdict on each candidate's
    document, and the story's law is among the first hits."""
    story = next(iter(STORIES))
    retriever = corpus_kb.retriever
    stage = retriever.first_stage(story, Filters(), retriever.params)
    assert stage is not None and stage.routed is not None and stage.handles is not None
    titles = [corpus_kb.documents[c.doc_id].title for c in stage.candidates.chunks]
    routed_column = retriever.handle_evidence(stage)[3]
    assert routed_column.tolist() == [stage.routed[t] for t in titles]
    hits = corpus_kb.search(story, top_k=3)
    assert any(STORIES[story] in h.doc_title for h in hits)
