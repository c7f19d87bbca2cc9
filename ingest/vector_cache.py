"""Passage vectors kept by the hash of the text they embed, one SQLite file per model.

Embedding is ~95 % of an ingest. With this cache a re-ingest embeds only passages it has never seen, even
after the index was deleted or rebuilt elsewhere, and a long ingest that is interrupted resumes where it
stopped: vectors are committed block by block as they are computed.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class VectorCache:
    """Float32 vectors of one model, by text hash. Safe to delete at any time; it only saves work."""

    def __init__(self, path: Path, dimension: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.dimension = dimension
        self._db = sqlite3.connect(path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")

    @classmethod
    def for_model(cls, directory: Path, model_id: str, fingerprint: str, dimension: int) -> VectorCache:
        safe_id = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model_id)[-60:]
        return cls(directory / f"{safe_id}-{fingerprint}.sqlite", dimension)

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), 500):  # stay under SQLite's bound-parameter limit
            block = wanted[start:start + 500]
            marks = ",".join("?" * len(block))
            for key, blob in self._db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", block):
                vector = np.frombuffer(blob, dtype=np.float32)
                if vector.shape == (self.dimension,):  # a row of another shape is ignored, never trusted
                    found[key] = vector
        return found

    def put_many(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        rows = [(key, np.asarray(vector, dtype=np.float32).tobytes()) for key, vector in items]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO vectors (key, vector) VALUES (?, ?)", rows)

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])

    def close(self) -> None:
        self._db.close()
