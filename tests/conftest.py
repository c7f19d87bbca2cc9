"""Shared fixtures: settings, the embedding model, the real corpus index, and tiny synthetic corpora.

The model is built (or found) in the normal cache (~/.cache/zhengwu-kb, or KB_CACHE_DIR) and loaded once per
session. The real corpus is ingested at most once per session, into a session temp folder, by `corpus_index`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import hypothesis
import pytest
from fastapi import FastAPI
from hypothesis.configuration import set_hypothesis_home_dir

from bench.services import free_port, milvus_lite, postgresql, postgresql_bindir
from ingest.build import find_files, ingest
from kb.config import PROJECT_ROOT, Settings, load_settings
from kb.embedding.embedder import Embedder
from kb.knowledge_base import KnowledgeBase
from server.service import ServiceState

CORPUS_DIR = PROJECT_ROOT / "corpus"
SOURCES_MD = CORPUS_DIR / "SOURCES.md"
#: The shared evaluation questions live beside the repository, not inside it.
DEV_SET = PROJECT_ROOT.parent / "shared" / "eval" / "dev.jsonl"
#: The names of the files an ingest of corpus/ indexes (ingest.build.find_files: not SOURCES.md or README.md).
CORPUS_FILES: tuple[str, ...] = tuple(name for _, name in find_files([CORPUS_DIR]))
#: How many documents the real corpus index holds: one per corpus file.
CORPUS_DOCUMENTS = len(CORPUS_FILES)

#: Fixtures that load the embedding model (or build on it). `item.fixturenames` lists a test's fixtures
#: transitively, so a fixture built on any of these makes its tests slow as well.
MODEL_FIXTURES = frozenset({"embedder", "float_embedder", "corpus_index", "corpus_kb"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Whatever needs the embedding model (and so the real corpus index) is slow, even if its module forgot the
    marker: `pytest -m "not slow"` (make test-fast) then runs everything that needs no model."""
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


# --- Hypothesis (test_masking, and schemathesis in test_api_fuzz): nothing written into the checkout ----------

#: Hypothesis keeps its example database and its caches (constants found in the code under test, Unicode tables)
#: in ./.hypothesis by default, i.e. in the checkout. Tests run with a fixed seed (derandomize) and replay
#: nothing, so the database is off, and the caches go to a temp folder of this session, removed at its end
#: (unless HYPOTHESIS_STORAGE_DIRECTORY names a place for them).
_HYPOTHESIS_HOME: str | None = None
if not os.getenv("HYPOTHESIS_STORAGE_DIRECTORY"):
    _HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="zhengwu-kb-hypothesis-")
    set_hypothesis_home_dir(_HYPOTHESIS_HOME)
hypothesis.settings.register_profile("zhengwu-kb", database=None)
hypothesis.settings.load_profile("zhengwu-kb")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _HYPOTHESIS_HOME is not None:
        shutil.rmtree(_HYPOTHESIS_HOME, ignore_errors=True)


# --- SOURCES.md: the corpus's own documentation, used as gold facts -------------------------------------------


@dataclass(frozen=True)
class SourceRow:
    file: str
    title: str
    date: str | None  # the bold date of the "Text's own date" column
    expected_articles: int | None  # the number in brackets of "Articles (expected)"


def corpus_sources() -> dict[str, SourceRow]:
    """The main table of corpus/SOURCES.md, keyed by file name."""
    rows: dict[str, SourceRow] = {}
    header: list[str] | None = None
    for line in SOURCES_MD.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            if header is not None and rows:
                break  # the main table has ended
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            if "Articles (expected)" in cells:
                header = cells
            continue
        if set("".join(cells)) <= set("-: "):
            continue  # the |---| separator
        row = dict(zip(header, cells))
        date = re.search(r"\*\*(\d{4}-\d{2}-\d{2})\*\*", row["Text's own date (latest promulgation/revision line of its header)"])
        expected = re.search(r"\((\d+)\)", row["Articles (expected)"])
        rows[row["File"]] = SourceRow(
            file=row["File"],
            title=row["Full title (from text)"],
            date=date.group(1) if date else None,
            expected_articles=int(expected.group(1)) if expected else None,
        )
    assert header is not None and rows, "could not find the file table in corpus/SOURCES.md"
    return rows


# --- tiny synthetic corpora for fast store/ingest tests -------------------------------------------------------

ROAD_LAW = """# 乡村道路养护条例

2021年3月1日 乡人民代表大会通过
2023年6月15日 乡人民代表大会修订

<!-- INFO END -->

## 第一章 总则

第一条 为了加强乡村道路养护，保障群众安全出行，制定本条例。

第二条 本条例所称乡村道路，是指乡、村两级公路和通组道路。

## 第二章 养护责任

第三条 村民委员会负责本村道路的日常巡查，发现路面塌陷应当在二十四小时内设置警示标志并报告乡人民政府。

第四条 冬季降雪后，乡人民政府应当组织人员在四十八小时内清除主要道路积雪。

第五条 任何单位和个人不得在乡村道路上晾晒农作物、堆放柴草。
"""

MARKET_RULES = """# 集市摊位管理办法

2022年5月20日 镇人民政府发布

<!-- INFO END -->

## 第一章 一般规定

第一条 为了规范集市秩序，制定本办法。

第二条 集市每逢农历初五、十五、二十五开市。

第三条 摊位费每个摊位每天不超过十元，残疾人经营者免收摊位费。

第四条 出售活禽应当在划定的区域内进行，并保持场地清洁。
"""

TOWN_REPORT = """某镇2023年工作报告

2023年，某镇围绕乡村振兴开展工作。现将有关情况报告如下。
一、主要工作
（一）改善人居环境。一是新建垃圾收集点十二个，实现垃圾日产日清。二是完成农村户厕改造三百户。
二、存在问题
（一）资金不足。部分项目因资金缺口推迟开工。
"""


def make_small_corpus(root: Path) -> Path:
    """Two tiny laws in the corpus layout and a township report, written under `root/corpus`."""
    corpus = root / "corpus"
    corpus.mkdir(parents=True)
    (corpus / "乡村道路养护条例.md").write_text(ROAD_LAW, encoding="utf-8")
    (corpus / "集市摊位管理办法.md").write_text(MARKET_RULES, encoding="utf-8")
    (corpus / "某镇2023年工作报告.txt").write_text(TOWN_REPORT, encoding="utf-8")
    return corpus


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    return make_small_corpus(tmp_path)


# --- settings, model, real corpus index ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Default settings (so the model cache is the machine's), with the index and the vector cache in a
    session temp folder (vectors cached by earlier runs would hide what an ingest embeds)."""
    root = tmp_path_factory.mktemp("settings")
    return load_settings(index_dir=root / "index", vector_cache=str(root / "vectors"))


@pytest.fixture(scope="session")
def embedder(settings: Settings) -> Embedder:
    """The real embedding model with the product's default backend, loaded once."""
    return Embedder(settings)


@pytest.fixture(scope="session")
def float_embedder(settings: Settings, embedder: Embedder) -> Embedder:
    """The model as sentence-transformers runs it (the "torch" backend): the reference for the int8 one."""
    return embedder if embedder.backend == "torch" else Embedder(settings.with_(embedding_backend="torch"))


@pytest.fixture(scope="session")
def corpus_index(tmp_path_factory: pytest.TempPathFactory, settings: Settings, embedder: Embedder) -> Path:
    """The real corpus/, ingested once per session (about 2.5 minutes on 2 cores)."""
    index_dir = tmp_path_factory.mktemp("corpus_index") / "index"
    report = ingest([CORPUS_DIR], settings.with_(index_dir=index_dir), embedder=embedder)
    assert report.skipped == [], f"corpus files were skipped: {report.skipped}"
    return index_dir


@pytest.fixture(scope="session")
def corpus_kb(corpus_index: Path, settings: Settings, embedder: Embedder) -> KnowledgeBase:
    return KnowledgeBase.open(corpus_index, settings=settings.with_(index_dir=corpus_index), embedder=embedder)


# --- a real HTTP server --------------------------------------------------------------------------------------



@contextmanager
def serve_in_thread(app: FastAPI, log_level: str = "warning") -> Iterator[str]:
    """`app` served by uvicorn exactly as `kb serve` configures it (server.app.uvicorn_config), on 127.0.0.1 and
    a free port, in a thread; yields the base URL and stops the server afterwards."""
    import uvicorn

    from server.app import uvicorn_config

    port = free_port()
    server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port, log_level=log_level))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)



# --- Milvus (milvus-lite's own gRPC server, as a Milvus standalone would be reached) ---------------------------


@pytest.fixture(scope="session")
def milvus_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A milvus-lite server on 127.0.0.1 in its own process, so several processes (API replicas, a killed
    ingest) share one store; yields its URI for KB_MILVUS_URI."""
    with milvus_lite(tmp_path_factory.mktemp("milvus")) as server:
        yield server.uri


# --- PostgreSQL (Debian's postgresql package), for the question log replicas share --------------------------------


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1 from Debian's `postgresql` package (bench/services.py); yields
    the URL of its `postgres` database. Skipped when the package is not installed."""
    if postgresql_bindir() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run installs it)")
    with postgresql() as url:
        yield url


@pytest.fixture
def postgresql_url(postgresql_server: str) -> str:
    """A new, empty database on the session's PostgreSQL server, for one test."""
    import psycopg

    name = f"kb_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgresql_server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return postgresql_server.rsplit("/", 1)[0] + f"/{name}"


def logged_entries(service: ServiceState, limit: int) -> list[dict]:
    """The question log's latest entries once its writer thread has written what was queued."""
    assert service.log.flush(), "the question log writer did not catch up"
    return service.log.reader().recent(limit)
