"""The question encoder's tuning: low-rank updates of the default model's top layers, applied to questions only.

bench/train_encoder.py learns them from training questions (kb/embedding/model/tuned/query_lora.safetensors, ~2 MB). The
passages keep the model's own vectors, so indexes and the vector cache stay valid; a question is embedded
with the updated layers, which puts it nearer the passages that answer questions phrased like it. The file
holds, for each updated projection, two matrices A (rank × in) and B (out × rank, scale included) whose
product is added to that projection's weight.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from kb.embedding.model.build import publish_folder

TUNED_DIR = Path(__file__).resolve().parent / "tuned"
QUERY_LORA = TUNED_DIR / "query_lora.safetensors"
#: The projections of a BERT layer that are updated.
LORA_TARGETS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                "intermediate.dense", "output.dense")


def lora_name(layer: int, target: str) -> str:
    """The projection's module name inside a Hugging Face BertModel."""
    return f"encoder.layer.{layer}.{target}"


def lora_meta(path: Path) -> dict:
    """The training metadata of a tuning file (its header only; the matrices are not read)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        return json.loads((handle.metadata() or {}).get("kb", "{}"))


def read_lora(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """{module name: weight update} and the training metadata."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        # `in handle.keys()`, not `in handle`: safe_open is no dict, it has keys() but cannot be iterated
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    names = sorted({key.rsplit(".", 1)[0] for key in tensors})
    # A plain loop order (no BLAS), in float64: the same update on every machine.
    return {name: np.einsum("ik,kj->ij", tensors[f"{name}.lora_b"].astype(np.float64),
                            tensors[f"{name}.lora_a"].astype(np.float64), optimize=False)
            for name in names}, lora_meta(path)


def tuning_id(path: Path) -> str:
    """A short identity of a tuning file: the question vectors it makes differ from any other's."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def merged(weight: np.ndarray, update: np.ndarray) -> np.ndarray:
    """A projection's weight with its update added (in float64, so the result is the same everywhere)."""
    return (weight.astype(np.float64) + update).astype(np.float32)


def tuned_fingerprint(base_fingerprint: str, lora_path: Path) -> str:
    """The question encoder's identity: the model's and the tuning's, so it is the same on every machine (the
    merged weights' last bits may differ with the CPU's arithmetic; these two hashes do not)."""
    return hashlib.sha256(f"{base_fingerprint}+{tuning_id(lora_path)}".encode()).hexdigest()[:16]


def tuned_layers(updates: dict[str, np.ndarray]) -> list[int]:
    """The layer numbers a tuning changes (the layers below are shared with the passage encoder)."""
    return sorted({int(name.split(".")[2]) for name in updates})


def build_query_model(model_dir: Path, lora_path: Path) -> Path:
    """The question encoder's folder beside `model_dir`: the same model with the updates merged into its weights.
    Built once (seconds); atomic like the default model's build."""
    import shutil

    from safetensors.numpy import load_file, save_file

    target = model_dir.parent / f"{model_dir.name}-query-{tuning_id(lora_path)}"
    if (target / "kb_tuning.json").is_file():
        return target
    updates, meta = read_lora(lora_path)

    def write(folder: Path) -> None:
        shutil.copytree(model_dir, folder, ignore=shutil.ignore_patterns("model.safetensors"))
        state = load_file(str(model_dir / "model.safetensors"))
        for name, update in updates.items():
            key = f"{name}.weight"
            if key not in state or state[key].shape != update.shape:
                raise ValueError(f"{lora_path.name} does not fit {model_dir.name}: {key}")
            state[key] = merged(state[key], update)
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
        # The tuning's own hash is recorded, so the folder's fingerprint changes whenever the tuning does.
        record = {"tuning": lora_path.name, "tuning_id": tuning_id(lora_path), **meta}
        (folder / "kb_tuning.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")

    return publish_folder(target, "kb_tuning.json", write)
