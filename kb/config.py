"""All settings of the library in one place: defaults that just work, each overridable by an environment variable.

Every environment variable is declared with `setting(...)`, which records its name, default and meaning; the
README's configuration table is generated from these declarations (`python -m cli.docs`), so it cannot drift.
The HTTP service's own settings (keys, limits, WeChat) are declared the same way in server/settings.py.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar, cast

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: The id under which the default model (rebuilt from registry packages) is known.
DEFAULT_MODEL_ID = "multilingual-e5-small-q4"

T = TypeVar("T")


class SettingError(ValueError):
    """An environment variable holds a value its setting cannot take."""


def setting(env: str, default: T, help: str, parse: Callable[[str], T] | None = None, shown: str | None = None,
            factory: Callable[[], T] | None = None) -> T:
    """A dataclass field read from `env` when it is set (else `default`, or `factory()`), documented by `help`.

    `shown` is the default as the README shows it, when the value itself is machine-specific (a path).
    """
    # Without a parser, the default's own type (str, int, float) parses the text.
    convert = parse if parse is not None else cast("Callable[[str], T]", type(default))

    def read() -> T:
        raw = os.environ.get(env, "")
        if raw == "":
            return factory() if factory is not None else default
        try:
            return convert(raw)
        except ValueError as exc:
            raise SettingError(f"{env}={raw!r} is not valid ({exc})") from exc

    shown_default = shown if shown is not None else ("–" if default in ("", None) else str(default))
    return field(default_factory=read, metadata={"env": env, "default": shown_default, "help": help})


def documented_settings(cls: type) -> Iterator[tuple[str, str, str]]:
    """(variable, default as shown, meaning) of every `setting` of a settings class and the classes it nests."""
    for f in dataclasses.fields(cls):
        if "env" in f.metadata:
            yield f.metadata["env"], f.metadata["default"], f.metadata["help"]
        elif isinstance(f.type, str) and f.type in _NESTED:
            yield from documented_settings(_NESTED[f.type])


def _path(raw: str) -> Path:
    return Path(raw).expanduser()


def _optional_path(raw: str) -> Path | None:
    return Path(raw).expanduser() if raw else None


def _default_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "zhengwu-kb"


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return raw
    return parse


#: A knowledge base's name: it keys Milvus rows and filter expressions, so only plain characters.
KB_NAME_RE = re.compile(r"[A-Za-z0-9_\-]{1,64}")


def _kb_name(raw: str) -> str:
    if not KB_NAME_RE.fullmatch(raw):
        raise ValueError("use 1 to 64 letters, digits, _ or -")
    return raw


def _threads() -> int:
    return os.cpu_count() or 2


@dataclass(frozen=True)
class RetrievalParams:
    """How dense and lexical retrieval are combined; defaults chosen by measurement (docs/retrieval.md)."""

    #: "ranked" (weighted, then the learned second stage) | "weighted" | "rrf" | "dense" | "lexical"
    method: str = "ranked"
    #: How many of the first stage's best candidates the second stage re-ranks.
    rerank_depth: int = 100
    dense_weight: float = 0.7  # the lexical weight is 1 - dense_weight
    rrf_k: int = 60
    #: Added to the fused score (scale 0..1) of chunks of a law the question names.
    named_law_bonus: float = 0.3
    #: Added to chunks that enumerate (下列…（一）（二）) when the question asks 哪些 / 哪几种.
    list_bonus: float = 0.1
    #: Expand everyday words with legal terms (kb.search.expand) for the lexical / dense retriever.
    expand_lexical: bool = True
    expand_dense: bool = True


@dataclass(frozen=True)
class AnswerParams:
    """When to answer and what to quote; the weights are fitted by `python -m bench.calibrate_answerable`."""

    #: Logistic model of "the knowledge base can answer", fitted on training questions only (stard_local_train,
    #: bench/data/train_local.jsonl, bench/data/abstention_calibration.jsonl; bench/results/calibrate_answerable.json).
    #: The cosine centre is specific to the default model (its own question vectors, not the tuned ones).
    bias: float = 1.295
    w_dense: float = 1.514  # per 0.01 of the best passage's cosine above dense_centre
    dense_centre: float = 0.88
    w_cover: float = 0.547  # per 0.25 of the question's words (idf-weighted) found in the passages above half
    #: Answer only at or above this confidence.
    threshold: float = 0.5
    passages: int = 3
    #: At most this many passages are quoted (only those that add words of the question).
    max_passages: int = 3
    #: An article (or report passage) this short is quoted whole; a longer one by the 款 that answers.
    whole_chars: int = 200
    #: A 款 longer than this is cut to its best sentences; a list longer than twice this to its matching items.
    max_quote_chars: int = 200
    #: Quote a further passage only when its score is at least this share of the first one's.
    second_passage_ratio: float = 0.9
    #: At most this many other candidates are shown below an answer (kb/answers/related.py) …
    related_passages: int = 3
    #: … when the ranker's first passage scores less than this above its second (`python -m bench.related`).
    related_margin: float = 3.088


@dataclass(frozen=True)
class FollowUpParams:
    """How a question is read in its conversation (kb/search/conversation.py). Which reading wins is decided by weights
    learnt by `python -m bench.followup --fit` on bench/data/followup_fit.jsonl (kb/search/rankers/followup.json),
    measured on bench/data/followup_check.jsonl."""

    #: Candidates taken from each reading of the question.
    candidates: int = 20
    #: How much of the previous answer's passage is searched for the passages most like it.
    like_answer_chars: int = 150


@dataclass(frozen=True)
class GeneratorConfig:
    """Where the chat model is served; any OpenAI-compatible server (llama.cpp, vLLM, Ollama, a cloud API)."""

    base_url: str  # e.g. "http://127.0.0.1:8080/v1"
    model: str
    api_key: str = ""
    timeout_s: float = 20.0
    max_tokens: int = 600


@dataclass(frozen=True)
class LlmSettings:
    """The optional chat model for generative answers; off unless both a base URL and a model are set."""

    base_url: str = setting("KB_LLM_BASE_URL", "",
                            "an OpenAI-compatible chat model for generative answers, e.g. `http://127.0.0.1:8080/v1`")
    model: str = setting("KB_LLM_MODEL", "", "the chat model's name (generative answers need it and the base URL)")
    api_key: str = setting("KB_LLM_API_KEY", "", "bearer key of the chat model, if it needs one")
    timeout_s: float = setting("KB_LLM_TIMEOUT", 20.0, "seconds to wait for a generative answer before quoting instead")

    def generator(self) -> GeneratorConfig | None:
        if not (self.base_url and self.model):
            return None
        return GeneratorConfig(self.base_url, self.model, self.api_key, self.timeout_s)


@dataclass(frozen=True)
class Identity:
    """Whom a knowledge base speaks for and where a person helps: the chat page's title and heading, the notice with
    every answer (kb/answers/notice.py) and the no-answer message. Every township of a county deployment has its
    own, stored with its knowledge base at ingest (`kb ingest --township …`, or a kb.toml beside its documents:
    ingest/identity.py); these settings are the deployment's, shown for whatever a knowledge base does not set."""

    township: str = setting("KB_TOWNSHIP", "雁石坪镇", "the township's name: the page's title and heading, the notice, "
                            "the no-answer message")
    help_name: str = setting("KB_HELP_NAME", "镇公共法律服务站", "the local public legal service (notice)")
    help_phone: str = setting("KB_HELP_PHONE", "", "its telephone number (notice; 12348 is always shown)")
    help_address: str = setting("KB_HELP_ADDRESS", "", "its address (notice)")
    help_hours: str = setting("KB_HELP_HOURS", "", "its opening hours (notice), e.g. `工作日 9:00–17:00`")
    collection: str = setting("KB_COLLECTION", "信访工作条例、常用法律法规和本镇法治政府建设报告",
                              "what the knowledge base holds, as the no-answer message says it")
    examples: str = setting("KB_EXAMPLES", "信访事项多久办结？|法律援助向哪里申请？|镇里建了几条法治文化长廊？|"
                            "行政复议的申请期限是多长？", "the example questions the chat page offers, separated by "
                            "`|` (in a kb.toml also a list); each should be one its own documents answer")

    @property
    def example_questions(self) -> list[str]:
        return [question.strip() for question in self.examples.split(EXAMPLE_SEPARATOR) if question.strip()]

    def with_own(self, own: Mapping[str, str]) -> Identity:
        """These (the deployment's) with a knowledge base's own values in their place (`own_identity` checked them)."""
        return replace(self, **own)


#: Between the example questions of `Identity.examples` (a line, as every identity value is).
EXAMPLE_SEPARATOR = "|"
#: What a knowledge base may set of its identity: the keys of a kb.toml and of its stored identity, and the names
#: of `kb ingest`'s options (--help-phone).
IDENTITY_KEYS = tuple(f.name for f in dataclasses.fields(Identity))
#: Longer is no name, phone or address but a mistake (a pasted document), and would swamp the notice.
MAX_IDENTITY_CHARS = 200


def own_identity(raw: object, where: str) -> dict[str, str]:
    """A knowledge base's own identity values (a kb.toml's, an ingest's options, or as stored with its index),
    checked: only the identity's keys, each a line of text; ValueError naming `where` otherwise."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: the identity should be a table of {', '.join(IDENTITY_KEYS)}")
    checked: dict[str, str] = {}
    for key, value in raw.items():
        value = _joined(value) if key == "examples" else value
        if key not in IDENTITY_KEYS:
            raise ValueError(f"{where}: unknown key {key!r} (known: {', '.join(IDENTITY_KEYS)})")
        if not isinstance(value, str):
            raise ValueError(f"{where}: {key} should be text in quotes, not {type(value).__name__} {value!r}")
        if len(value) > MAX_IDENTITY_CHARS or not value.isprintable():
            raise ValueError(f"{where}: {key} should be one line of at most {MAX_IDENTITY_CHARS} characters, "
                             "without tabs or control characters")
        checked[key] = value.strip()
    return checked


def _joined(examples: object) -> object:
    """A kb.toml's list of example questions as the one line they are stored as; anything else as it is."""
    if isinstance(examples, list) and all(isinstance(q, str) and EXAMPLE_SEPARATOR not in q for q in examples):
        return EXAMPLE_SEPARATOR.join(q.strip() for q in examples)
    return examples


@dataclass(frozen=True)
class Settings:
    """Where things live and which model embeds them.

    `embedding_model` is either DEFAULT_MODEL_ID (built on first use from registry
    packages) or a path to any local sentence-transformers folder (e.g. bge-small-zh).
    """

    index_dir: Path = setting("KB_INDEX", PROJECT_ROOT / "index", "index directory (KB_STORE=local)", _path,
                              shown="`index/`")
    #: Where the passages live (kb/stores/base.py): this machine's index directory, or Milvus.
    store: str = setting("KB_STORE", "local", "`local` (the index directory) or `milvus` (KB_MILVUS_URI; README: "
                         "Running on a Milvus cluster)", _choice("local", "milvus"))
    milvus_uri: str = setting(
        "KB_MILVUS_URI", "", "a Milvus server or cluster (`http://host:19530`), or a milvus-lite folder",
        shown="`var/milvus.db` (milvus-lite)")
    milvus_token: str = setting("KB_MILVUS_TOKEN", "", "Milvus credentials (`user:password` or an API key)")
    kb_name: str = setting("KB_NAME", "default", "which knowledge base of the Milvus store (one per township)",
                           _kb_name)
    corpus_dir: Path = setting("KB_CORPUS", PROJECT_ROOT / "corpus", "documents indexed by default", _path,
                               shown="`corpus/`")
    embedding_model: str = setting(
        "KB_EMBEDDING_MODEL", DEFAULT_MODEL_ID,
        "the default model, or a path to any local sentence-transformers folder")
    cache_dir: Path = setting("KB_CACHE_DIR", Path(), "where the built model and downloads are kept", _path,
                              shown="`~/.cache/zhengwu-kb`", factory=_default_cache_dir)
    #: Optional folder holding the two downloaded model artefacts, for machines without a registry.
    model_artefacts_dir: Path | None = setting(
        "KB_MODEL_ARTEFACTS", None, "folder holding the model's two package files, for machines without a registry",
        _optional_path)
    #: An index is searched only with the backend that built it. Measured in docs/benchmarks.md.
    embedding_backend: str = setting(
        "KB_EMBEDDING_BACKEND", "torch",
        "`torch` (the sentence-transformers model as it is) or `onnx-int8` (an int8 ONNX Runtime copy built locally "
        "on first use: questions embed ~5× faster, cosine ≥ 0.995 for passages and ≥ 0.986 for questions with "
        "the float model; docs/benchmarks.md)")
    #: Questions are embedded with the default model's tuned top layers (kb/embedding/model/tuning.py);
    #: passages never are.
    query_tuning: str = setting(
        "KB_QUERY_TUNING", "on",
        "`on`: embed questions with the default model's shipped tuning (bench/train_encoder.py; passages and "
        "indexes are unaffected); `off`: with the model as built; or the path of another tuning file learnt for "
        "the default model. Other models are never tuned")
    vector_cache: str = setting(
        "KB_VECTOR_CACHE", "", "passage vectors by content hash, so re-ingests embed only new text; `off` disables",
        shown="`~/.cache/zhengwu-kb/vectors`")
    embed_batch_size: int = setting(
        "KB_EMBED_BATCH", 32, "embedding batch size; a live question waits at most one batch behind a re-ingest")
    #: Threads torch may use; government machines are often 2-core.
    torch_threads: int = setting("KB_THREADS", 0, "threads for embedding", int, shown="number of CPUs",
                                 factory=_threads)
    retrieval: RetrievalParams = field(default_factory=RetrievalParams)
    answer: AnswerParams = field(default_factory=AnswerParams)
    #: Off unless a chat model is configured; then answers are written by it, cited, checked.
    llm: LlmSettings = field(default_factory=LlmSettings)
    #: The deployment's identity; a knowledge base's own comes first (KnowledgeBase.identity).
    identity: Identity = field(default_factory=Identity)
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
    def milvus_address(self) -> str:
        return self.milvus_uri or str(PROJECT_ROOT / "var" / "milvus.db")

    @property
    def vector_cache_dir(self) -> Path | None:
        if self.vector_cache == "off":
            return None
        return Path(self.vector_cache).expanduser() if self.vector_cache else self.cache_dir / "vectors"

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)


_NESTED: dict[str, type] = {"RetrievalParams": RetrievalParams, "AnswerParams": AnswerParams,
                            "Identity": Identity,
                            "LlmSettings": LlmSettings}


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (e.g. from CLI flags) on top."""
    settings = Settings()
    clean = {k: v for k, v in overrides.items() if v is not None}
    return settings.with_(**clean) if clean else settings
