"""The int8 ONNX Runtime backend: built locally from the model, close to the float model, never mixed with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import make_small_corpus

from ingest.build import ingest
from kb.config import Settings
from kb.embedding.embedder import Embedder
from kb.embedding.model.onnx_int8 import ONNX_FILE, TABLE_FILE, OnnxInt8Encoder, onnx_dir_for
from kb.embedding.model.tuning import QUERY_LORA, build_query_model
from kb.errors import IndexMismatchError, KnowledgeBaseError
from kb.knowledge_base import KnowledgeBase

PASSAGES = [
    "信访工作条例 第三十四条 信访事项应当自受理之日起60日内办结；情况复杂的，经批准可以适当延长办理期限，但延长期限不得超过30日。",
    "民法典 第一百八十八条 向人民法院请求保护民事权利的诉讼时效期间为三年。",
    "雁石坪镇2023年法治政府建设年度报告：全年开展普法宣传活动12场，发放宣传资料3000余份。",
    "国家实行土地用途管制制度。",
    "自书遗嘱由遗嘱人亲笔书写，签名，注明年、月、日。",
]
QUESTIONS = ["信访事项多长时间内办结？", "自己亲手写的遗嘱有效吗？", "欠钱不还多久就不能起诉了"]


@pytest.fixture(scope="module")
def int8(settings: Settings, embedder: Embedder) -> Embedder:
    """Built from the model on first use (about a minute), then loaded."""
    return embedder if embedder.backend == "onnx-int8" else Embedder(settings.with_(embedding_backend="onnx-int8"))


def test_int8_vectors_agree_with_the_float_model(int8: Embedder, float_embedder: Embedder) -> None:
    # The tuned question encoder (its own int8 copy) agrees a little less, and how much less depends on the CPU's
    # int8 kernels in ONNX Runtime: 0.9875 at worst on a CPU with AVX-512 VNNI, 0.976 on an AVX2-only AMD EPYC
    # (passages and plain questions: 0.996 on both).
    for encode, texts, agreement in [(lambda m: m.encode_passages(PASSAGES), PASSAGES, 0.99),
                                     (lambda m: m.encode_queries(QUESTIONS, tuned=False), QUESTIONS, 0.99),
                                     (lambda m: m.encode_queries(QUESTIONS), QUESTIONS, 0.97)]:
        fast, exact = encode(int8), encode(float_embedder)
        assert fast.shape == exact.shape == (len(texts), 384) and fast.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
        assert float(np.min(np.sum(fast * exact, axis=1))) >= agreement


def test_int8_ranks_like_the_float_model(int8: Embedder, float_embedder: Embedder) -> None:
    for model in (int8, float_embedder):
        scores = model.encode_queries(QUESTIONS) @ model.encode_passages(PASSAGES).T
        assert list(np.argmax(scores, axis=1)) == [0, 4, 1], scores


def test_int8_is_known_by_its_own_model_id(int8: Embedder, float_embedder: Embedder, settings: Settings) -> None:
    assert int8.model_id.startswith(f"{float_embedder.model_id}+onnx-int8")
    assert int8.fingerprint == float_embedder.fingerprint  # same source model; the id tells the backends apart
    built = sorted(p.name for p in settings.model_dir.parent.iterdir() if "onnx-int8" in p.name)
    assert built and all(not name.startswith(".onnx-build") for name in built)  # no half-built leftovers


def test_an_index_is_searched_only_with_the_backend_that_built_it(tmp_path: Path, settings: Settings,
                                                                  int8: Embedder, float_embedder: Embedder) -> None:
    own = settings.with_(index_dir=tmp_path / "index", embedding_backend="onnx-int8")
    ingest([make_small_corpus(tmp_path)], own, embedder=int8)
    kb = KnowledgeBase.open(own.index_dir, settings=own, embedder=int8)
    assert kb.search("路面塌陷后多长时间内要设置警示标志？")[0].citation == "《乡村道路养护条例》第三条"
    with pytest.raises(IndexMismatchError, match="onnx-int8"):
        KnowledgeBase.open(own.index_dir, settings=settings, embedder=float_embedder)


def test_unknown_backend_is_refused_clearly(settings: Settings) -> None:
    with pytest.raises(KnowledgeBaseError, match="KB_EMBEDDING_BACKEND"):
        Embedder(settings.with_(embedding_backend="gpu-turbo"))


def test_the_question_graph_shares_the_passage_graphs_tokenizer_and_maps_its_table(int8: Embedder,
                                                                                  settings: Settings) -> None:
    """Memory: one tokenizer (~290 MB) for both graphs, and the word-embedding table (~384 MB) mapped from a file
    beside each graph rather than read; neither may change a vector."""
    passages, questions = int8._encode_batch.__self__, int8._encode_query_batch.__self__
    assert int8.tuned and questions.tokenizer is passages.tokenizer
    query_dir = build_query_model(settings.model_dir, QUERY_LORA)
    onnx_dir = onnx_dir_for(query_dir, int8.query_fingerprint)
    assert (onnx_dir / TABLE_FILE).stat().st_size > (onnx_dir / ONNX_FILE).stat().st_size
    alone = OnnxInt8Encoder(query_dir, onnx_dir, 1, 512)
    assert alone.tokenizer is not passages.tokenizer
    texts = ["query: 信访事项多久办结？", "query: 邻居家的狗天天叫影响休息，派出所管不管？"]
    assert np.array_equal(questions.encode(texts), alone.encode(texts))
