"""A low-rank adapter on question vectors: q' = normalise(q + (q · down) · up).

People ask in everyday words ("欠钱不还多久就不能起诉了") and laws answer in legal ones (诉讼时效). The
adapter moves a question's vector towards the passages that answer such questions; it was learnt from
STARD's training questions only (bench/train_adapter.py builds it reproducibly). Passages are untouched, so
an index never needs re-embedding to use it. It belongs to one model: it is applied only when the model's
fingerprint matches the one it was trained for.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: Adapters shipped with the product, one folder per model fingerprint.
ADAPTERS_DIR = Path(__file__).resolve().parent / "adapters"
META = "adapter.json"


class QueryAdapter:
    def __init__(self, down: np.ndarray, up: np.ndarray, meta: dict) -> None:
        if down.ndim != 2 or up.shape != (down.shape[1], down.shape[0]):
            raise ValueError(f"adapter matrices do not fit: {down.shape} and {up.shape}")
        self.down = down.astype(np.float32)
        self.up = up.astype(np.float32)
        self.meta = meta

    @classmethod
    def for_model(cls, fingerprint: str, dimension: int, directory: Path = ADAPTERS_DIR) -> "QueryAdapter | None":
        """The shipped adapter for this model, or None when there is none (any other model)."""
        folder = directory / fingerprint
        if not (folder / META).is_file():
            return None
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
        adapter = cls(np.load(folder / "down.npy", allow_pickle=False), np.load(folder / "up.npy", allow_pickle=False),
                      meta)
        return adapter if adapter.down.shape[0] == dimension else None

    def apply(self, vectors: np.ndarray, strength: float = 1.0) -> np.ndarray:
        """Move the vectors by `strength` times the learnt shift (1 = as trained, 0 = unchanged)."""
        moved = vectors + strength * ((vectors @ self.down) @ self.up)
        return (moved / np.maximum(np.linalg.norm(moved, axis=-1, keepdims=True), 1e-12)).astype(np.float32)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "down.npy", self.down, allow_pickle=False)
        np.save(folder / "up.npy", self.up, allow_pickle=False)
        (folder / META).write_text(json.dumps(self.meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
