"""Embedding what ingest reads, reusing every vector already computed: by the index in use, or by the vector cache
(KB_VECTOR_CACHE), so re-ingesting after a small change embeds only what is new. Shared by both stores' ingest."""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from ingest.vector_cache import VectorCache, text_key
from kb.config import Settings
from kb.embedding.embedder import Embedder

#: Texts embedded, then committed to the vector cache, at a time: an interrupted ingest loses at most one block.
EMBED_BLOCK = 512


def question_key(question: str) -> str:
    """A question is embedded as a question, not as a passage: its vector is kept under another key."""
    return text_key("\x00question\x00" + question)


def open_vector_cache(settings: Settings, embedder: Embedder) -> VectorCache | None:
    if settings.vector_cache_dir is None:
        return None
    return VectorCache.for_model(settings.vector_cache_dir, embedder.model_id, embedder.fingerprint,
                                 embedder.dimension)


def embed_with_reuse(texts: list[str], embedder: Embedder, known: dict[str, np.ndarray],
                     cache: VectorCache | None = None, progress: bool = False,
                     as_questions: bool = False) -> tuple[np.ndarray, int]:
    """Embed only the texts found neither in `known` nor in `cache`; returns the vectors in order and how
    many were reused. New vectors go to the cache block by block, so an interrupted ingest loses little.
    Passages by default; `as_questions`: attached questions, with the question encoder as built."""
    keys = [question_key(t) if as_questions else text_key(t) for t in texts]
    known = {**(cache.get_many([k for k in keys if k not in known]) if cache is not None else {}), **known}
    first_row = {key: i for i, key in reversed(list(enumerate(keys)))}
    missing = sorted((i for key, i in first_row.items() if key not in known), key=lambda i: len(texts[i]))
    with tqdm(total=len(missing), desc="嵌入向量", unit="chunk", disable=not progress or not missing) as bar:
        for start in range(0, len(missing), EMBED_BLOCK):
            rows = missing[start:start + EMBED_BLOCK]  # by length, so batches hold texts of similar length
            batch = [texts[i] for i in rows]
            fresh = embedder.encode_queries(batch, tuned=False) if as_questions else embedder.encode_passages(batch)
            known.update({keys[i]: fresh[n] for n, i in enumerate(rows)})
            if cache is not None:
                cache.put_many((keys[i], fresh[n]) for n, i in enumerate(rows))
            bar.update(len(rows))
    vectors = np.stack([known[key] for key in keys]).astype(np.float32) if keys else np.zeros(
        (0, embedder.dimension), dtype=np.float32)
    return vectors, len(texts) - len(missing)
