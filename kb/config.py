"""All settings in one place: defaults that just work, each overridable by an environment variable."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: The id under which the default model (rebuilt from registry packages) is known.
DEFAULT_MODEL_ID = "multilingual-e5-small-q4"


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else default


def _optional_env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def _default_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "zhengwu-kb"


@dataclass(frozen=True)
class RetrievalParams:
    """How dense and lexical retrieval are combined; defaults chosen by measurement (docs/retrieval.md)."""

    method: str = "weighted"  # "rrf" | "weighted" | "dense" | "lexical"
    dense_weight: float = 0.7  # the lexical weight is 1 - dense_weight
    rrf_k: int = 60
    #: Added to the fused score (scale 0..1) of chunks of a law the question names.
    named_law_bonus: float = 0.3
    #: Added to chunks that enumerate (下列…（一）（二）) when the question asks 哪些 / 哪几种.
    list_bonus: float = 0.1
    #: Expand everyday words with legal terms (kb.expand) for the lexical / dense retriever.
    expand_lexical: bool = True
    expand_dense: bool = True


@dataclass(frozen=True)
class Settings:
    """Where things live and which model embeds them.

    `embedding_model` is either DEFAULT_MODEL_ID (built on first use from registry
    packages) or a path to any local sentence-transformers folder (e.g. bge-small-zh).
    """

    corpus_dir: Path = field(default_factory=lambda: _env_path("KB_CORPUS", PROJECT_ROOT / "corpus"))
    index_dir: Path = field(default_factory=lambda: _env_path("KB_INDEX", PROJECT_ROOT / "index"))
    cache_dir: Path = field(default_factory=lambda: _env_path("KB_CACHE_DIR", _default_cache_dir()))
    embedding_model: str = field(default_factory=lambda: os.environ.get("KB_EMBEDDING_MODEL", DEFAULT_MODEL_ID))
    #: Optional folder holding the two downloaded model artefacts, for machines without a registry.
    model_artefacts_dir: Path | None = field(default_factory=lambda: _optional_env_path("KB_MODEL_ARTEFACTS"))
    embed_batch_size: int = field(default_factory=lambda: int(os.environ.get("KB_EMBED_BATCH", "32")))
    #: Threads torch may use; government machines are often 2-core.
    torch_threads: int = field(default_factory=lambda: int(os.environ.get("KB_THREADS", str(os.cpu_count() or 2))))
    retrieval: RetrievalParams = field(default_factory=RetrievalParams)
    #: A 条 longer than this (characters) is split at 款 boundaries.
    max_chunk_chars: int = 600
    #: Target size of a report chunk (characters); chunks never cross a heading.
    report_chunk_chars: int = 220

    @property
    def model_dir(self) -> Path:
        """The folder sentence-transformers loads."""
        if self.embedding_model == DEFAULT_MODEL_ID:
            return self.cache_dir / "models" / DEFAULT_MODEL_ID
        return Path(self.embedding_model).expanduser()

    def with_(self, **changes: object) -> "Settings":
        return replace(self, **changes)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (e.g. from CLI flags) on top."""
    settings = Settings()
    clean = {k: v for k, v in overrides.items() if v is not None}
    return settings.with_(**clean) if clean else settings
