"""The tuned question encoder: low-rank updates merged into a copy of the model, used for questions only."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from kb.config import Settings
from kb.embedding.embedder import Embedder
from kb.embedding.model.tuning import (
    QUERY_LORA,
    build_query_model,
    lora_name,
    read_lora,
    tuned_fingerprint,
    tuned_layers,
    tuning_id,
)
from kb.errors import KnowledgeBaseError


def write_lora(path: Path, updates: dict[str, tuple[np.ndarray, np.ndarray]], meta: dict) -> None:
    tensors = {}
    for name, (a, b) in updates.items():
        tensors[f"{name}.lora_a"], tensors[f"{name}.lora_b"] = a.astype(np.float32), b.astype(np.float32)
    save_file(tensors, str(path), metadata={"kb": json.dumps(meta)})


def fake_model(folder: Path) -> dict[str, np.ndarray]:
    """A model folder with two layers' query projections (4×4) and a file that must be copied as it is."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    state = {f"{lora_name(i, 'attention.self.query')}.weight": rng.normal(size=(4, 4)).astype(np.float32)
             for i in (0, 1)}
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text('{"hidden_size": 4}', encoding="utf-8")
    return state


def test_a_tuning_is_merged_into_a_copy_of_the_model_once(tmp_path: Path) -> None:
    base = fake_model(tmp_path / "models" / "m")
    a, b = np.arange(8).reshape(2, 4) / 10, np.ones((4, 2))
    lora = tmp_path / "t.safetensors"
    write_lora(lora, {lora_name(1, "attention.self.query"): (a, b)}, {"base_fingerprint": "f00"})
    updates, meta = read_lora(lora)
    assert meta == {"base_fingerprint": "f00"} and tuned_layers(updates) == [1]

    folder = build_query_model(tmp_path / "models" / "m", lora)
    assert folder.name == f"m-query-{tuning_id(lora)}"
    merged = load_file(str(folder / "model.safetensors"))
    key0, key1 = (f"{lora_name(i, 'attention.self.query')}.weight" for i in (0, 1))
    np.testing.assert_array_equal(merged[key0], base[key0])  # untouched layer
    np.testing.assert_allclose(merged[key1], base[key1] + b @ a, rtol=1e-6)
    assert (folder / "config.json").read_text(encoding="utf-8") == '{"hidden_size": 4}'
    record = json.loads((folder / "kb_tuning.json").read_text(encoding="utf-8"))
    assert record["tuning_id"] == tuning_id(lora) and record["base_fingerprint"] == "f00"
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert build_query_model(tmp_path / "models" / "m", lora) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp, "built once, then reused"
    assert not list((tmp_path / "models").glob(".building-*"))


def test_a_tuning_that_does_not_fit_the_model_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    fake_model(tmp_path / "models" / "m")
    lora = tmp_path / "t.safetensors"
    write_lora(lora, {lora_name(5, "attention.self.query"): (np.ones((2, 4)), np.ones((4, 2)))}, {})
    with pytest.raises(ValueError, match="does not fit"):
        build_query_model(tmp_path / "models" / "m", lora)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["m"]


def test_the_question_encoders_name_depends_on_the_model_and_the_tuning_only(tmp_path: Path) -> None:
    one, two = tmp_path / "1.safetensors", tmp_path / "2.safetensors"
    write_lora(one, {lora_name(0, "output.dense"): (np.ones((1, 2)), np.ones((2, 1)))}, {})
    write_lora(two, {lora_name(0, "output.dense"): (np.ones((1, 2)), 2 * np.ones((2, 1)))}, {})
    assert tuned_fingerprint("abc", one) == tuned_fingerprint("abc", one)
    assert len({tuned_fingerprint("abc", one), tuned_fingerprint("abd", one), tuned_fingerprint("abc", two)}) == 3


def test_a_stopped_training_run_keeps_only_fits_made_with_the_same_settings(tmp_path: Path) -> None:
    from bench.train_encoder import already_trained

    meta = {"lr": 0.001, "epochs": 4, "tuned_layers": 8, "variant": "fold0", "questions": 1234}
    fit = tmp_path / "fold0.safetensors"
    assert not already_trained(fit, meta)
    write_lora(fit, {lora_name(11, "output.dense"): (np.ones((1, 2)), np.ones((2, 1)))}, meta)
    assert already_trained(fit, meta)
    assert not already_trained(fit, {**meta, "tuned_layers": 4})
    assert not already_trained(fit, {**meta, "questions": 1235})
    write_lora(fit, {lora_name(11, "output.dense"): (np.ones((1, 2)), np.ones((2, 1)))}, {})
    assert not already_trained(fit, meta)


def test_the_shipped_tuning_is_small_and_says_how_it_was_made() -> None:
    assert QUERY_LORA.is_file(), "a question tuning ships for the default model"
    assert QUERY_LORA.stat().st_size < 5 * 2**20
    updates, meta = read_lora(QUERY_LORA)
    assert meta["built_by"] == "python -m bench.train_encoder" and meta["variant"] == "full"
    assert meta["base_fingerprint"] and meta["questions"] > 1000
    assert tuned_layers(updates) == list(range(12 - meta["tuned_layers"], 12))
    assert all(np.isfinite(u).all() for u in updates.values())


# --- the real model ----------------------------------------------------------------------------------------------

QUESTIONS = ["信访事项多久办结？", "父母去世没留遗嘱，房子归谁？"]
ANSWERS = ["信访事项应当自受理之日起60日内办结。", "遗产按照下列顺序继承：第一顺序：配偶、子女、父母。",
           "村民委员会每届任期五年。"]


@pytest.fixture(scope="module")
def untuned(settings: Settings) -> Embedder:
    return Embedder(settings.with_(query_tuning="off", embedding_backend="torch"))


def test_questions_are_tuned_and_passages_are_not(float_embedder: Embedder, untuned: Embedder) -> None:
    assert float_embedder.query_fingerprint == tuned_fingerprint(float_embedder.fingerprint, QUERY_LORA)
    assert float_embedder.query_fingerprint != float_embedder.fingerprint == untuned.fingerprint
    assert float_embedder.tuned and not untuned.tuned
    assert untuned.query_fingerprint == untuned.fingerprint
    np.testing.assert_allclose(float_embedder.encode_passages(QUESTIONS), untuned.encode_passages(QUESTIONS),
                               atol=1e-6)
    tuned, plain = float_embedder.encode_queries(QUESTIONS), untuned.encode_queries(QUESTIONS)
    assert ((tuned * plain).sum(axis=1) < 0.99).all()
    np.testing.assert_allclose(np.linalg.norm(tuned, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(float_embedder.encode_queries(QUESTIONS, tuned=False), plain, atol=1e-6)
    for n, question in enumerate(QUESTIONS):  # one turn of the lock gives both
        both = float_embedder.encode_question(question)
        np.testing.assert_allclose(both[0], plain[n], atol=1e-6)
        np.testing.assert_allclose(both[1], tuned[n], atol=1e-6)
        again = float_embedder.encode_question(question)  # kept: a follow-up searches its question twice
        assert again[0] is both[0] and again[1] is both[1] and not again[0].flags.writeable
        float_embedder.forget_recent_questions()  # a benchmark's next search embeds it again, to the same vectors
        fresh = float_embedder.encode_question(question)
        assert fresh[0] is not both[0]
        np.testing.assert_allclose(fresh[1], both[1], atol=1e-6)
    # Both still put each question's answer first among these passages.
    passages = float_embedder.encode_passages(ANSWERS)
    for vectors in (tuned, plain):
        assert list(np.argmax(vectors @ passages.T, axis=1)) == [0, 1]


def test_the_question_encoder_shares_the_unchanged_layers(float_embedder: Embedder) -> None:
    """Only the tuned layers are held twice: the embeddings (~380 MB) and the lower layers are the model's own,
    and the tuned layers are swapped in for a question's forward pass only."""
    bert = float_embedder._torch_model[0].auto_model
    plain, tuned = bert.encoder.layer, float_embedder._tuned_layers
    first = tuned_layers(read_lora(QUERY_LORA)[0])[0]
    assert all(tuned[i] is plain[i] for i in range(first))
    assert all(tuned[i] is not plain[i] for i in range(first, 12))
    float_embedder.encode_queries(QUESTIONS)
    assert bert.encoder.layer is plain


@pytest.mark.slow
def test_a_tuning_learnt_on_another_build_is_not_applied(tmp_path: Path, settings: Settings,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    other = tmp_path / "other.safetensors"
    tensors = load_file(str(QUERY_LORA))
    _, meta = read_lora(QUERY_LORA)
    save_file(tensors, str(other), metadata={"kb": json.dumps({**meta, "base_fingerprint": "0000000000000000"})})
    with caplog.at_level(logging.WARNING, logger="kb.embedding.embedder"):
        embedder = Embedder(settings.with_(query_tuning=str(other), embedding_backend="torch"))
    assert embedder.query_fingerprint == embedder.fingerprint
    assert "untuned" in caplog.text


@pytest.mark.slow
def test_an_unknown_tuning_setting_is_a_clear_error(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(KnowledgeBaseError, match="KB_QUERY_TUNING"):
        Embedder(settings.with_(query_tuning=str(tmp_path / "missing.safetensors")))
