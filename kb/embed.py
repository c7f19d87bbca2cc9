"""Dense embeddings with a sentence-transformers model, loaded once and shared by ingest and search."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence

import numpy as np

from kb.config import DEFAULT_MODEL_ID, Settings
from kb.errors import KnowledgeBaseError
from kb.model.build import build_default_model, model_fingerprint

log = logging.getLogger(__name__)


class ModelNotFoundError(KnowledgeBaseError):
    """A configured model folder does not exist or is not a sentence-transformers model."""


def ensure_model(settings: Settings) -> None:
    """Build the default model on first use; check that a configured one exists."""
    if settings.embedding_model == DEFAULT_MODEL_ID:
        build_default_model(settings.model_dir, settings.cache_dir, settings.model_artefacts_dir)
    elif not (settings.model_dir / "modules.json").is_file() and not (settings.model_dir / "config.json").is_file():
        raise ModelNotFoundError(
            f"embedding model folder {settings.model_dir} not found or not a sentence-transformers model "
            "(KB_EMBEDDING_MODEL must be the default or a local folder)"
        )


class Embedder:
    """Turns questions and passages into L2-normalised float32 vectors (cosine = inner product)."""

    def __init__(self, settings: Settings) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        ensure_model(settings)
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar on every start

        torch.set_num_threads(max(1, settings.torch_threads))
        self.model_id = settings.embedding_model
        self.fingerprint = model_fingerprint(settings.model_dir)
        self._model = SentenceTransformer(str(settings.model_dir), device="cpu", local_files_only=True)
        get_dimension = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dimension = int(get_dimension())
        prompts = getattr(self._model, "prompts", {}) or {}
        self._query_prompt = "query" if "query" in prompts else None
        self._passage_prompt = "passage" if "passage" in prompts else ("document" if "document" in prompts else None)
        self._lock = threading.Lock()  # one forward pass at a time: 2 cores gain nothing from more
        self.batch_size = settings.embed_batch_size

    def _encode(self, texts: Sequence[str], prompt_name: str | None, show_progress: bool) -> np.ndarray:
        with self._lock:
            vectors = self._model.encode(
                list(texts), prompt_name=prompt_name, batch_size=self.batch_size,
                normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=show_progress,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        return self._encode(queries, self._query_prompt, show_progress=False)

    def encode_passages(self, passages: Sequence[str], show_progress: bool = False) -> np.ndarray:
        return self._encode(passages, self._passage_prompt, show_progress)
