"""All settings in one place: defaults that just work, each overridable by an environment variable."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kb.generate import GeneratorConfig

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
    #: Move question vectors with the low-rank adapter shipped for the default model (kb/adapter.py):
    #: "on", "off", or "auto" = on for statute collections of at least `adapter_min_laws` laws. Learnt from
    #: STARD's questions over 55,956 national-law articles, it lifts recall there (+0.13 R@10 on STARD dev) but
    #: lowers Hit@1 on the small township knowledge base (0.82 → 0.64), hence auto (docs/benchmarks.md).
    query_adapter: str = field(default_factory=lambda: os.environ.get("KB_QUERY_ADAPTER", "auto"))
    adapter_min_laws: int = 200
    #: How far the adapter moves a question (1 = as trained).
    adapter_strength: float = 1.0


@dataclass(frozen=True)
class AnswerParams:
    """When to answer and what to quote; the weights were calibrated by bench/calibrate_answerable.py."""

    #: Logistic model of "the knowledge base can answer": fitted on ../shared/eval/dev.jsonl plus
    #: bench/data/abstention_calibration.jsonl. The cosine centre is specific to the default model.
    bias: float = 1.204
    w_dense: float = 1.632  # per 0.01 of the best passage's cosine above dense_centre
    dense_centre: float = 0.88
    w_cover: float = 0.988  # per 0.25 of the question's words (idf-weighted) found in the passages above half
    #: Answer only at or above this confidence.
    threshold: float = 0.5
    passages: int = 3
    max_passages: int = 2
    max_quote_chars: int = 200
    #: Quote the second passage too when its score is at least this share of the first one's.
    second_passage_ratio: float = 0.9


def generator_from_env() -> "GeneratorConfig | None":
    """The optional chat model for generative answers: KB_LLM_BASE_URL + KB_LLM_MODEL (+ KB_LLM_API_KEY)."""
    from kb.generate import GeneratorConfig

    base_url, model = os.environ.get("KB_LLM_BASE_URL", ""), os.environ.get("KB_LLM_MODEL", "")
    if not (base_url and model):
        return None
    return GeneratorConfig(base_url, model, os.environ.get("KB_LLM_API_KEY", ""),
                           float(os.environ.get("KB_LLM_TIMEOUT", "20")))


def _env_list(name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in os.environ.get(name, "").split(",") if item.strip())


@dataclass(frozen=True)
class ServerSettings:
    """The HTTP service: limits, keys and where it keeps its question log. Safe defaults: no admin access,
    no cross-origin access, WeChat off, until configured."""

    #: Bearer key for /api/admin/*; without one the admin endpoints are disabled, not open.
    admin_key: str = field(default_factory=lambda: os.environ.get("KB_ADMIN_KEY", ""))
    cors_origins: tuple[str, ...] = field(default_factory=lambda: _env_list("KB_CORS_ORIGINS"))
    max_question_chars: int = field(default_factory=lambda: int(os.environ.get("KB_MAX_QUESTION_CHARS", "500")))
    max_body_bytes: int = 64 * 1024
    #: Documents uploaded by staff (/api/admin/documents) may be larger.
    max_upload_bytes: int = 20 * 1024 * 1024
    rate_per_minute: float = field(default_factory=lambda: float(os.environ.get("KB_RATE_PER_MINUTE", "60")))
    rate_burst: int = field(default_factory=lambda: int(os.environ.get("KB_RATE_BURST", "20")))
    query_log: Path = field(default_factory=lambda: _env_path("KB_QUERY_LOG", PROJECT_ROOT / "var" / "querylog.sqlite"))
    wechat_token: str = field(default_factory=lambda: os.environ.get("KB_WECHAT_TOKEN", ""))
    wechat_app_id: str = field(default_factory=lambda: os.environ.get("KB_WECHAT_APP_ID", ""))
    wechat_aes_key: str = field(default_factory=lambda: os.environ.get("KB_WECHAT_AES_KEY", ""))


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
    #: "torch" (the model as sentence-transformers runs it) or "onnx-int8" (an int8 ONNX Runtime copy built
    #: locally on first use: a question embeds ~5× faster, cosine ≥ 0.99 with the float model, but one of the
    #: dev set's out-of-scope questions gets answered: the abstention weights were fitted on float cosines).
    #: An index is searched only with the backend that built it. Measured in docs/benchmarks.md.
    embedding_backend: str = field(default_factory=lambda: os.environ.get("KB_EMBEDDING_BACKEND", "torch"))
    #: Optional folder holding the two downloaded model artefacts, for machines without a registry.
    model_artefacts_dir: Path | None = field(default_factory=lambda: _optional_env_path("KB_MODEL_ARTEFACTS"))
    #: Where passage vectors are kept by content hash so re-ingests embed only new text ("off" disables).
    vector_cache: str = field(default_factory=lambda: os.environ.get("KB_VECTOR_CACHE", ""))
    embed_batch_size: int = field(default_factory=lambda: int(os.environ.get("KB_EMBED_BATCH", "32")))
    #: Threads torch may use; government machines are often 2-core.
    torch_threads: int = field(default_factory=lambda: int(os.environ.get("KB_THREADS", str(os.cpu_count() or 2))))
    retrieval: RetrievalParams = field(default_factory=RetrievalParams)
    answer: AnswerParams = field(default_factory=AnswerParams)
    server: ServerSettings = field(default_factory=ServerSettings)
    #: Off (None) unless a chat model is configured; then answers are written by it, cited, checked.
    generator: "GeneratorConfig | None" = field(default_factory=generator_from_env)
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

    @property
    def vector_cache_dir(self) -> Path | None:
        if self.vector_cache == "off":
            return None
        return Path(self.vector_cache).expanduser() if self.vector_cache else self.cache_dir / "vectors"

    def with_(self, **changes: object) -> "Settings":
        return replace(self, **changes)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (e.g. from CLI flags) on top."""
    settings = Settings()
    clean = {k: v for k, v in overrides.items() if v is not None}
    return settings.with_(**clean) if clean else settings
