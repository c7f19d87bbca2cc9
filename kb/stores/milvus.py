"""The Milvus store (KB_STORE=milvus): many knowledge bases in one Milvus server or cluster, or in milvus-lite.

Three collections, created on first ingest; `kb` (the knowledge base's name, KB_NAME) is their partition key, so a
county runs one cluster for all its townships and every read names its own knowledge base:

    <prefix>_passages  one row per passage: its chunk fields, the span of its whole 条, what it contains (traits),
                       its dense vector (HNSW, inner product) and its BM25 sparse vector (inverted index, IP)
    <prefix>_records   per knowledge base: a "base" row (model, chunker, BM25 length norm, its own identity
                       as kb.config.Identity says, generation); per live document a "document" row naming the
                       version its passages carry; and each document version's full text and term statistics,
                       in pieces (Milvus bounds VARCHAR fields)
    <prefix>_handles   one row per question attached to a passage (kb.stores.handles): its words, its passage (an
                       article number, or a chunk_id for text without articles), its form and its vector; read
                       whole into memory, where the handle stage searches them as it does a local index's

Lexical search is BM25 as sparse vectors made by our own tokenizer (kb.text.tokenize), so both stores score words
alike and the learned ranker sees the same features: a passage holds each term's saturated frequency
(kb.text.lexical.saturated_tf), a question each term's idf, and their inner product is BM25. Terms are hashed to
32-bit ids; document frequencies are summed from each document's own statistics. The saturation's length norm is
the average passage length of the whole knowledge base as it stands, kept so by every ingest (ingest/milvus_sync.py
says how), so a knowledge base built in several ingests scores as one built in one.

Consistency: a document is written as a new version (passages, text, statistics), then published by one upsert
of its "document" row; readers keep only passages of the published version, so they see the old document or the
new one, never half. Old versions are deleted afterwards; what a killed ingest left is never published, and the
next ingest deletes it. A document's attached questions carry its version, or a version of their own when only its
sidecar changed since (the document row names it, QuestionSet), and are published and deleted the same way.
Readers notice changes by the base row's generation, checked at most once a second, so API replicas share one
knowledge base without restarts.

Availability: every read goes through MilvusStore._read. A restarted Milvus holds the collections released until
someone loads them, so on that error the reader loads them again and tries once more; a Milvus that cannot be
reached (down, restarting, network) raises kb.errors.StoreUnavailableError, which the API answers with 503 and
Retry-After. The connection itself is re-established by pymilvus, so a running server recovers by itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from kb.config import Settings
from kb.errors import IndexMismatchError, IndexMissingError, IndexProblem, StoreUnavailableError, UnknownDocumentError
from kb.schema import CHUNKER_VERSION, Chunk, DatedEvent, Document, Hit
from kb.stores.base import Filters, Pool, hit_for
from kb.stores.handles import Handle, QuestionHandles
from kb.text.law_names import LawNames
from kb.text.lexical import bm25_idf, coverage_idf
from kb.text.traits import TRAITS, TRAITS_VERSION

log = logging.getLogger(__name__)
T = TypeVar("T")
#: A MilvusStore or a subclass (MilvusWriter): what `connect` and `open` return is the class they are called on.
StoreT = TypeVar("StoreT", bound="MilvusStore")

FORMAT_VERSION = 1
#: What the base row records about how passages were written: rows are stored with their traits as a bitmask
#: (kb/text/traits.py), so a knowledge base written under other trait patterns must be rewritten, not read.
#: Attached questions came later without a new format, as they change no passage: a document row that records none
#: (QuestionSet.of is None) was written before, is read as having none, and the next ingest adds them.
LAYOUT = {"format_version": FORMAT_VERSION, "chunker_version": CHUNKER_VERSION, "traits_version": TRAITS_VERSION}
PREFIX = "zhengwu_kb"
#: HNSW search breadth; at least the number of candidates asked for.
HNSW_EF = 256
#: How often a reader checks whether another process changed the knowledge base.
REFRESH_SECONDS = 1.0
#: Documents whose text is kept in memory for hits and document views.
TEXT_CACHE = 32

#: Rows per page of a query whose result may be large (a knowledge base's documents, a document's passages, the
#: knowledge bases, what an ingest deletes): Milvus answers at most 16,384 rows a query (offset + limit), so such
#: a read asks for one page, and when that comes back full reads every row with pymilvus' query iterator, page
#: by page (`MilvusStore._query_every`). Only the first page is asked for when it is enough, as it nearly always is.
QUERY_PAGE = 4096
_PASSAGE_FIELDS = ["doc_id", "version", "chunk_id", "seq", "section", "article", "article_no", "part", "start",
                   "stop", "span_start", "span_end", "text", "traits"]
_HANDLE_FIELDS = ["doc_id", "version", "seq", "question", "article_no", "chunk_id", "form", "vector"]


def same_layout(base: dict) -> bool:
    """Whether a base row's passages were written as this program writes them (LAYOUT)."""
    return all(base.get(key) == value for key, value in LAYOUT.items())


def term_id(term: str) -> int:
    """A word's id in the sparse vectors: 32 bits of its hash (collisions among ~10⁵ words are negligible)."""
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=4).digest(), "little") % 0xFFFFFFFF


def literal(value: str) -> str:
    """A string as a Milvus filter-expression literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Passage(Chunk):
    """A chunk read back from Milvus, with the span of its whole 条 (for the hit of a split 条)."""

    article_span: tuple[int, int] = (0, 0)

    def chunk(self) -> Chunk:
        """The plain chunk, as the local store returns it (and the API shows it)."""
        return Chunk(**{f.name: getattr(self, f.name) for f in fields(Chunk)})


@dataclass(frozen=True)
class QuestionSet:
    """A document's attached questions as its "document" row records them: the version their rows carry, how many
    there are, and a digest of them by which an ingest tells that its sidecar changed."""

    version: str
    count: int
    digest: str

    @classmethod
    def of(cls, body: dict) -> QuestionSet | None:
        """None: the row was written before Milvus held attached questions."""
        recorded = body.get("questions")
        return cls(**recorded) if recorded is not None else None


#: A document version's attached questions, in sidecar order, and their vectors.
Questions = tuple[list[Handle], np.ndarray]


@dataclass
class DocumentStats:
    """What a document adds to its knowledge base's BM25 statistics."""

    term_ids: np.ndarray  # uint32, unique
    doc_freqs: np.ndarray  # passages of this document holding each term


@dataclass(frozen=True)
class _Snapshot:
    """One consistent reading of a knowledge base's metadata; replaced whole when another process changes it."""

    generation: str = ""
    base: dict = field(default_factory=dict)
    documents: dict[str, Document] = field(default_factory=dict)  # text left empty
    versions: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    stats: dict[tuple[str, str], DocumentStats] = field(default_factory=dict)
    doc_freq: dict[int, int] = field(default_factory=dict)
    passages: int = 0
    law_names: LawNames = field(default_factory=lambda: LawNames([]))
    order: dict[str, int] = field(default_factory=dict)
    questions: dict[tuple[str, str], Questions] = field(default_factory=dict)  # (doc_id, version), document order
    handles: QuestionHandles | None = None


class MilvusStore:
    """One knowledge base (KB_NAME) of a Milvus deployment, as kb.search.retrieve reads it
    (kb.stores.milvus_writer writes it)."""

    def __init__(self, client: Any, kb_name: str, address: str) -> None:
        self.client = client
        self.kb_name = kb_name
        self.address = address
        self.passages_collection = f"{PREFIX}_passages"
        self.records_collection = f"{PREFIX}_records"
        self.handles_collection = f"{PREFIX}_handles"
        self._snapshot = _Snapshot()
        self._checked = -float("inf")
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._texts: OrderedDict[tuple[str, str], str] = OrderedDict()

    # -- connecting ---------------------------------------------------------------------------------------------

    @classmethod
    def connect(cls: type[StoreT], settings: Settings) -> StoreT:
        """A connection to KB_MILVUS_URI for KB_NAME; a milvus-lite folder is created when missing."""
        from pymilvus import MilvusClient

        address = settings.milvus_address
        local = "://" not in address  # a milvus-lite folder, opened by this process
        if local:
            Path(address).parent.mkdir(parents=True, exist_ok=True)
            _quiet_lite_lock_errors()
        try:
            try:
                client = MilvusClient(uri=address, token=settings.milvus_token)
            except Exception as exc:
                if local or not _unreachable(exc):
                    raise
                # pymilvus shares one connection per address among its clients, and checks one that sat idle
                # before handing it out; when the server had dropped it (a milvus-lite server answers pymilvus'
                # keepalive pings with GOAWAY "too many pings"), re-establishing it can fail once, as the old
                # connection is torn down: a second try makes a fresh one (a Milvus that is down fails it too).
                log.info("connecting to Milvus at %s again after: %s", _public(address), _detail(exc, address))
                time.sleep(0.5)
                client = MilvusClient(uri=address, token=settings.milvus_token)
        except Exception as exc:  # pymilvus raises its own and grpc's errors
            if local and (holder := _lite_holder(address)) is not None:
                raise IndexProblem(
                    f"the milvus-lite database {address} is in use by another process{holder} — a running `kb serve` "
                    f"or `kb ingest`? milvus-lite lets one process at a time open a database folder: stop that "
                    f"process and try again, or let several processes share the folder through a milvus-lite "
                    f"server (`python -m milvus_lite server --data-dir {address} --host 127.0.0.1 --port 19530`, "
                    f"started while no other process has the folder open, then KB_MILVUS_URI=http://127.0.0.1:19530 "
                    f"for every process)") from exc
            if _unreachable(exc):
                raise StoreUnavailableError(_public(address), _detail(exc, address)) from exc
            raise IndexProblem(f"cannot connect to Milvus at {_public(address)} ({exc}): check KB_MILVUS_URI") from exc
        store = cls(client, settings.kb_name, address)
        store._read(store._load_collections)
        return store

    def _load_collections(self) -> None:
        """Load the collections (idempotent): a restarted Milvus holds them released, and refuses to read them."""
        with self._load_lock:  # one reader reloads; the others wait for it rather than ask again
            for collection in (self.passages_collection, self.records_collection, self.handles_collection):
                if self.client.has_collection(collection):
                    self.client.load_collection(collection)

    def _read(self, operation: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`operation(*args, **kwargs)`: one read of Milvus, as every read of this store is made. On "collection
        released / not loaded" (Milvus restarted) the collections are loaded again and the read tried once more;
        when Milvus cannot be reached, StoreUnavailableError (the API's 503) instead of pymilvus's error."""
        try:
            try:
                return operation(*args, **kwargs)
            except Exception as exc:
                if not _released(exc):
                    raise
                log.warning("Milvus at %s holds the collections released (restarted?): loading them again",
                            _public(self.address))
                self._load_collections()
                return operation(*args, **kwargs)
        except Exception as exc:
            if _unreachable(exc):
                raise StoreUnavailableError(_public(self.address), _detail(exc, self.address)) from exc
            raise

    def ping(self) -> None:
        """Whether Milvus answers (for /readyz): one small query, loading released collections like any read;
        raises StoreUnavailableError when it cannot be reached."""
        if self._collections_exist():
            self.read_base()

    @classmethod
    def open(cls: type[StoreT], settings: Settings) -> StoreT:
        """For searching: the knowledge base must have been ingested (`kb ingest --kb NAME`)."""
        store = cls.connect(settings)
        store.snapshot(force=True)
        return store

    def names(self) -> list[str]:
        """The names of every knowledge base in this Milvus (one per township), sorted."""
        if not self._collections_exist():
            return []
        rows = self._query_every(self.records_collection, 'kind == "base"', ["kb"])
        return sorted({r["kb"] for r in rows})

    def close(self) -> None:
        self.client.close()

    # -- reading the metadata --------------------------------------------------------------------------------------

    def _collections_exist(self) -> bool:
        return self._read(lambda: all(self.client.has_collection(c)
                                      for c in (self.passages_collection, self.records_collection)))

    def read_base(self) -> dict | None:
        rows = self._read(self.client.query, self.records_collection, filter=f'key == {literal(self._key("base"))}',
                          output_fields=["body"])
        return json.loads(rows[0]["body"]) if rows else None

    def checked_base(self) -> dict:
        """The knowledge base's base row, refused when missing or written in another format or by another chunker."""
        base = self.read_base() if self._collections_exist() else None
        if base is None:
            raise IndexMissingError(f"knowledge base {self.kb_name!r} has nothing in Milvus at "
                                    f"{_public(self.address)}: run `kb ingest --kb {self.kb_name}` first")
        if not same_layout(base):
            raise IndexMismatchError(
                f"knowledge base {self.kb_name!r} in Milvus was written in format {base.get('format_version')} "
                f"by chunker {base.get('chunker_version')} with passage traits {base.get('traits_version')}; this "
                f"program writes format {FORMAT_VERSION} by chunker {CHUNKER_VERSION} with traits {TRAITS_VERSION}: "
                f"run `kb ingest --kb {self.kb_name}` to rewrite it")
        return base

    def refresh(self) -> bool:
        """Re-read what other processes published now (an ingest, a staff upload); this store reloads itself."""
        self.snapshot(force=True)
        return True

    def snapshot(self, force: bool = False) -> _Snapshot:
        """The current snapshot, re-read when another process has published since (checked at most once a second)."""
        if not force and time.monotonic() - self._checked < REFRESH_SECONDS:
            return self._snapshot
        with self._lock:
            if not force and time.monotonic() - self._checked < REFRESH_SECONDS:
                return self._snapshot
            base = self.checked_base()
            if base["generation"] != self._snapshot.generation:
                self._snapshot = self._read_snapshot(base, self._snapshot)
            self._checked = time.monotonic()
            return self._snapshot

    def _read_snapshot(self, base: dict, previous: _Snapshot) -> _Snapshot:
        rows = self._query_all(self.records_collection, 'kind == "document"', ["doc_id", "version", "body"])
        bodies = sorted(((r["doc_id"], r["version"], json.loads(r["body"])) for r in rows),
                        key=lambda r: r[2]["source"])
        documents, versions, counts = {}, {}, {}
        question_sets: dict[str, QuestionSet] = {}
        for doc_id, version, body in bodies:
            documents[doc_id] = Document(doc_id, body["title"], body["kind"], body["source"], body["content_hash"], "",
                                         [DatedEvent(**e) for e in body["dates"]], body["doc_date"])
            versions[doc_id], counts[doc_id] = version, body["passages"]
            if (recorded := QuestionSet.of(body)) is not None:
                question_sets[doc_id] = recorded
        if len(question_sets) < len(documents):
            log.warning("knowledge base %r in Milvus: %d documents were written before Milvus held attached questions "
                        "and are searched without theirs: `kb ingest --kb %s` adds them", self.kb_name,
                        len(documents) - len(question_sets), self.kb_name)
        questions = self._read_questions(question_sets, previous)
        stats = {key: previous.stats[key] for key in versions.items() if key in previous.stats}
        missing = [key for key in versions.items() if key not in stats]
        pieces = self._pieces_of("terms", missing)
        for key in missing:
            raw = json.loads(pieces[key])
            stats[key] = DocumentStats(np.array(raw[0], dtype=np.uint32), np.array(raw[1], dtype=np.int64))
        doc_freq: dict[int, int] = {}
        if stats:
            ids = np.concatenate([s.term_ids for s in stats.values()])
            freqs = np.concatenate([s.doc_freqs for s in stats.values()])
            unique, inverse = np.unique(ids, return_inverse=True)
            doc_freq = dict(zip(unique.tolist(), np.bincount(inverse, weights=freqs).astype(np.int64).tolist()))
        handles = previous.handles if list(questions) == list(previous.questions) else _question_handles(questions)
        return _Snapshot(base["generation"], base, documents, versions, counts, stats, doc_freq, sum(counts.values()),
                         LawNames(list(documents.values())), {d: i for i, d in enumerate(documents)}, questions,
                         handles)

    def _read_questions(self, recorded: dict[str, QuestionSet], previous: _Snapshot) -> dict[tuple[str, str],
                                                                                                  Questions]:
        """The published attached questions of these documents, in their order; those read before are kept."""
        wanted = {(doc_id, s.version): s.count for doc_id, s in recorded.items() if s.count}
        missing = {key: count for key, count in wanted.items() if key not in previous.questions}
        rows: dict[tuple[str, str], list[dict]] = {}
        if missing:
            versions = ", ".join(literal(v) for v in sorted({v for _, v in missing}))
            for row in self._query_all(self.handles_collection, f"version in [{versions}]", _HANDLE_FIELDS):
                if (row["doc_id"], row["version"]) in missing:
                    rows.setdefault((row["doc_id"], row["version"]), []).append(row)
        lost = sorted(key for key, count in missing.items() if len(rows.get(key, ())) != count)
        if lost:
            raise IndexMissingError(f"Milvus holds not all attached questions of document version(s) {lost}")
        read = {key: _questions(sorted(found, key=lambda r: r["seq"])) for key, found in rows.items()}
        return {key: previous.questions[key] if key in previous.questions else read[key] for key in wanted}

    def _pieces_of(self, kind: str, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The stored text or statistics of these (doc_id, version)s, in one query when there are many."""
        if not keys:
            return {}
        wanted = set(keys)
        condition = f"kind == {literal(kind)}"
        if len(wanted) <= 8:
            condition += " and (" + " or ".join(f"(doc_id == {literal(d)} and version == {literal(v)})"
                                                for d, v in wanted) + ")"
        parts: dict[tuple[str, str], list[tuple[int, str]]] = {}
        for row in self._query_all(self.records_collection, condition, ["doc_id", "version", "piece", "body"]):
            if (row["doc_id"], row["version"]) in wanted:
                parts.setdefault((row["doc_id"], row["version"]), []).append((row["piece"], row["body"]))
        lost = wanted - set(parts)
        if lost:
            raise IndexMissingError(f"Milvus holds no {kind} for document version(s) {sorted(lost)}")
        return {key: "".join(body for _, body in sorted(found)) for key, found in parts.items()}

    def _query_all(self, collection: str, condition: str, fields: list[str], **options: Any) -> list[dict]:
        """Every row of this knowledge base matching `condition` (paged: _query_every)."""
        return self._query_every(collection, f"kb == {literal(self.kb_name)} and ({condition})", fields, **options)

    def _query_every(self, collection: str, expression: str, fields: list[str], **options: Any) -> list[dict]:
        """Every row matching `expression`, however many: one query of QUERY_PAGE rows, and when that comes back
        full, pymilvus' query iterator (pages in primary-key order) for all of them. `options` go to both
        (consistency_level="Strong" for reads that must see every write acknowledged before them)."""
        page = QUERY_PAGE
        rows = self._read(self.client.query, collection, filter=expression, output_fields=fields, limit=page,
                          **options)
        if len(rows) < page:
            return rows

        def every_row() -> list[dict]:
            rows: list[dict] = []
            iterator = self.client.query_iterator(collection, batch_size=page, filter=expression,
                                                  output_fields=fields, **options)
            try:
                while batch := iterator.next():
                    rows += batch
            finally:
                iterator.close()
            return rows

        return self._read(every_row)

    # -- the PassageStore interface ----------------------------------------------------------------------------------

    @property
    def documents(self) -> dict[str, Document]:
        return self.snapshot().documents

    @property
    def handles(self) -> QuestionHandles | None:
        return self.snapshot().handles

    @property
    def law_names(self) -> LawNames:
        return self.snapshot().law_names

    @property
    def manifest(self) -> dict:
        base = self.snapshot().base
        return {**{k: base.get(k) for k in (*LAYOUT, "embedding", "built_at")}, "identity": base.get("identity", {})}

    def passage_count(self) -> int:
        return self.snapshot().passages

    def query_terms(self, text: str) -> list[str]:
        from kb.text.tokenize import tokenize

        known = self.snapshot().doc_freq
        return [t for t in dict.fromkeys(tokenize(text)) if term_id(t) in known]

    def idf(self, term: str) -> float:
        snapshot = self.snapshot()
        return coverage_idf(snapshot.passages, snapshot.doc_freq.get(term_id(term), 0))

    def gather(self, query_vectors: Sequence[np.ndarray], lexical_query: str, k: int, filters: Filters,
               whole_documents: Sequence[str], articles: Sequence[tuple[str, int]]) -> Pool:
        snapshot = self.snapshot()
        allowed = [d for d, doc in snapshot.documents.items() if filters.admits(doc)]
        # Published versions only, inside the search: rows of a version being written (or left by a killed
        # ingest) would otherwise take places among the k best and be dropped afterwards, leaving fewer.
        published = ", ".join(literal(snapshot.versions[d]) for d in allowed)
        scope = f"kb == {literal(self.kb_name)} and version in [{published}]"
        terms = self.query_terms(lexical_query)
        found: dict[str, dict] = {}
        fields = [*_PASSAGE_FIELDS, "dense", "sparse"]
        if sum(snapshot.counts[d] for d in allowed) <= k:  # all of them, as an exact search would find
            whole_documents = allowed
        elif allowed:
            self._add_hits(found, self._read(
                self.client.search, self.passages_collection,
                data=[np.asarray(v, dtype=np.float32).tolist() for v in query_vectors], anns_field="dense", limit=k,
                filter=scope, output_fields=fields,
                search_params={"metric_type": "IP", "params": {"ef": max(k, HNSW_EF)}}))
            weights = {term_id(t): bm25_idf(snapshot.passages, snapshot.doc_freq[term_id(t)]) for t in terms}
            if weights:
                self._add_hits(found, self._read(
                    self.client.search, self.passages_collection, data=[weights], anns_field="sparse", limit=k,
                    filter=scope, output_fields=fields,
                    search_params={"metric_type": "IP", "params": {"drop_ratio_search": 0.0}}),
                    positive_only=True)
        wanted = [f"doc_id in [{', '.join(map(literal, whole_documents))}]"] if whole_documents else []
        wanted += [f"(doc_id == {literal(d)} and article_no == {int(n)})" for d, n in articles]
        if wanted and allowed:
            for row in self._query_every(self.passages_collection, f"{scope} and ({' or '.join(wanted)})", fields):
                found.setdefault(row["key"], row)
        rows = sorted((r for r in found.values() if snapshot.versions.get(r["doc_id"]) == r["version"]),
                      key=lambda r: (snapshot.order[r["doc_id"]], r["seq"]))
        return self._pool(snapshot, rows, terms)

    def passage_vectors(self, chunk_ids: Sequence[str]) -> np.ndarray:
        snapshot = self.snapshot()
        dimension = int(snapshot.base["embedding"]["dimension"])
        vectors = np.zeros((len(chunk_ids), dimension), dtype=np.float32)
        wanted = list(dict.fromkeys(chunk_ids))
        if not wanted:
            return vectors
        rows = self._query_all(self.passages_collection, f"chunk_id in [{', '.join(map(literal, wanted))}]",
                               ["chunk_id", "doc_id", "version", "dense"])
        found = {r["chunk_id"]: r["dense"] for r in rows if snapshot.versions.get(r["doc_id"]) == r["version"]}
        for i, chunk_id in enumerate(chunk_ids):
            if chunk_id in found:
                vectors[i] = np.asarray(found[chunk_id], dtype=np.float32)
        return vectors

    @staticmethod
    def _add_hits(found: dict[str, dict], results: Iterable[Iterable[dict]], positive_only: bool = False) -> None:
        for hits in results:
            for hit in hits:
                if not positive_only or hit["distance"] > 0:  # a lexical hit shares a word or it is none
                    found.setdefault(hit["key"], {"key": hit["key"], **hit["entity"]})

    def _pool(self, snapshot: _Snapshot, rows: list[dict], terms: list[str]) -> Pool:
        ids = {term_id(t) for t in terms}
        bm25_weights = {i: bm25_idf(snapshot.passages, snapshot.doc_freq[i]) for i in ids}
        cover = {i: coverage_idf(snapshot.passages, snapshot.doc_freq[i]) for i in ids}
        total = sum(cover.values())
        bm25 = np.array([sum(w * r["sparse"][i] for i, w in bm25_weights.items() if i in r["sparse"]) for r in rows],
                        dtype=np.float32)
        coverage = np.array([sum(w for i, w in cover.items() if i in r["sparse"]) / total if total > 0 else 0.0
                             for r in rows], dtype=np.float32)
        dimension = int(snapshot.base["embedding"]["dimension"])
        vectors = np.array([r["dense"] for r in rows], dtype=np.float32).reshape(len(rows), dimension)
        bits = np.array([int(r["traits"]) for r in rows], dtype=np.int64).reshape(len(rows), 1)
        traits = ((bits >> np.arange(len(TRAITS))) & 1).astype(bool)
        return Pool([_passage(r) for r in rows], vectors, bm25, coverage, traits, terms)

    def laws_with_article(self, article_no: int) -> list[str]:
        snapshot = self.snapshot()
        rows = self._query_all(self.passages_collection, f"article_no == {int(article_no)}", ["doc_id", "version"])
        return sorted({r["doc_id"] for r in rows if snapshot.versions.get(r["doc_id"]) == r["version"]
                       and snapshot.documents[r["doc_id"]].kind == "law"}, key=snapshot.order.__getitem__)

    def _passages_of(self, doc_id: str, condition: str = "") -> list[Passage]:
        snapshot = self.snapshot()
        version = snapshot.versions.get(doc_id)
        if version is None:
            return []
        rows = self._query_all(self.passages_collection, f"doc_id == {literal(doc_id)} and version == "
                               f"{literal(version)}{condition}", _PASSAGE_FIELDS)
        return [_passage(r) for r in sorted(rows, key=lambda r: r["seq"])]

    def article_chunks(self, doc_id: str, article_no: int) -> list[Chunk]:
        return list(self._passages_of(doc_id, f" and article_no == {int(article_no)}"))

    def document_chunks(self, doc_id: str) -> list[Chunk]:
        return [p.chunk() for p in self._passages_of(self.document(doc_id).doc_id)]

    def document(self, doc_id: str) -> Document:
        snapshot = self.snapshot()
        meta = snapshot.documents.get(doc_id) if isinstance(doc_id, str) else None
        if meta is None:
            raise UnknownDocumentError(f"没有这个文档: {doc_id!r}")
        key = (doc_id, snapshot.versions[doc_id])
        text = self._texts.get(key)
        if text is None:
            try:
                text = self._pieces_of("text", [key])[key]
            except IndexMissingError:
                if self.snapshot(force=True).versions.get(doc_id) == key[1]:
                    raise
                return self.document(doc_id)  # replaced since this snapshot was read: read the new version
            with self._lock:  # searches share the cache
                self._texts[key] = text
                while len(self._texts) > TEXT_CACHE:
                    self._texts.popitem(last=False)
        return Document(meta.doc_id, meta.title, meta.kind, meta.source, meta.content_hash, text, meta.dates,
                        meta.doc_date)

    def mentions(self, name: str) -> bool:
        snapshot = self.snapshot()
        if any(name in d.title for d in snapshot.documents.values()):
            return True
        pattern = name.replace("%", "").replace("_", "")
        if not pattern:
            return False
        if not snapshot.versions:
            return False
        # Published versions only, inside the query: one matching row is enough, and rows of other versions
        # (old ones not yet deleted, a killed ingest's) must not fill a page and hide it.
        published = ", ".join(literal(v) for v in snapshot.versions.values())
        rows = self._read(self.client.query, self.passages_collection, filter=f"kb == {literal(self.kb_name)} and "
                          f"version in [{published}] and text like {literal('%' + pattern + '%')}",
                          output_fields=["doc_id"], limit=1)
        return bool(rows)

    def hit(self, chunk: Chunk, score: float) -> Hit:
        start, end = chunk.start, chunk.end
        if chunk.part and isinstance(chunk, Passage):
            start, end = chunk.article_span
        return hit_for(self.document(chunk.doc_id), chunk, start, end, score)

    def chunk_counts(self) -> dict[str, int]:
        return dict(self.snapshot().counts)

    def describe(self) -> dict:
        return {"store": "milvus", "milvus_uri": _public(self.address), "kb_name": self.kb_name}

    def _key(self, *parts: object) -> str:
        return "/".join([self.kb_name, *map(str, parts)])


def _questions(rows: list[dict]) -> Questions:
    """Handle rows, in order, as handles and their vectors."""
    handles = [Handle(r["question"], r["doc_id"], r["chunk_id"] or int(r["article_no"]), r["form"]) for r in rows]
    return handles, np.array([r["vector"] for r in rows], dtype=np.float32)


def _question_handles(questions: dict[tuple[str, str], Questions]) -> QuestionHandles | None:
    """The documents' questions as the handle stage searches them (their BM25 built here), or None when none."""
    if not questions:
        return None
    return QuestionHandles.build([h for handles, _ in questions.values() for h in handles],
                                 np.concatenate([vectors for _, vectors in questions.values()]))


def _passage(row: dict) -> Passage:
    article_no = int(row["article_no"])
    return Passage(row["chunk_id"], row["doc_id"], int(row["seq"]), row["section"], row["article"] or None,
                   None if article_no < 0 else article_no, int(row["part"]), int(row["start"]), int(row["stop"]),
                   row["text"], (int(row["span_start"]), int(row["span_end"])))


#: Milvus's error code for a collection that is not loaded (merr.ErrCollectionNotLoaded); milvus-lite uses it too.
_NOT_LOADED = 101
#: pymilvus's code when it cannot (re)connect (client.types.Status.CONNECT_FAILED); also Milvus's "service
#: unavailable" (merr.ErrServiceUnavailable).
_CONNECT_FAILED = 2


def _released(exc: BaseException) -> bool:
    """Whether Milvus refused a read because the collection is not loaded (it comes back released after a restart)."""
    from pymilvus.exceptions import MilvusException

    if not isinstance(exc, MilvusException):
        return False
    message = str(exc.message).lower()
    return exc.code == _NOT_LOADED or "not loaded" in message or "not fully loaded" in message or (
        "released" in message and "collection" in message)


def _unreachable(exc: BaseException) -> bool:
    """Whether Milvus could not be reached (down, restarting, unreachable), as opposed to refusing the request."""
    import grpc
    from pymilvus.exceptions import ConnectError, MilvusException, MilvusUnavailableException

    gone = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    if isinstance(exc, (ConnectError, MilvusUnavailableException)):
        return True
    if isinstance(exc, grpc.RpcError) and callable(getattr(exc, "code", None)):
        return exc.code() in gone
    if isinstance(exc, MilvusException):
        message = str(exc.message).lower()
        return exc.code in (_CONNECT_FAILED, *gone) or any(
            m in message for m in ("fail connecting", "server unavailable", "service not ready", "connection refused"))
    return False


def _detail(exc: BaseException, address: str) -> str:
    """pymilvus's own words for a failure, short, with the address as messages may show it."""
    from pymilvus.exceptions import MilvusException

    text = str(exc.message) if isinstance(exc, MilvusException) else str(exc)
    text = text.replace(address, _public(address)).splitlines()[0] if text else type(exc).__name__
    return text[:200]


#: The file milvus-lite keeps an advisory lock (flock) on while a process has its folder open (milvus_lite.db).
_LITE_LOCK_FILE = "LOCK"


def _lite_holder(folder: str) -> str | None:
    """When another process has this milvus-lite folder open: " (process PID)", or "" when its pid cannot be told
    (from /proc/locks); None when no process holds it (or it is no milvus-lite folder)."""
    import fcntl

    lock = Path(folder) / _LITE_LOCK_FILE
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pass  # held: by whom, below
    except OSError:
        return None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
    try:  # "1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF": the holder's pid, then device:inode
        inode = os.stat(lock).st_ino
        for line in Path("/proc/locks").read_text().splitlines():
            parts = line.split()
            if len(parts) > 5 and parts[1] == "FLOCK" and parts[5].rsplit(":", 1)[-1] == str(inode):
                return f" (process {parts[4]})"
    except (OSError, ValueError):
        pass
    return ""


class _LiteLockFilter(logging.Filter):
    """milvus-lite logs the traceback of a folder another process holds before pymilvus reports a bare "Open local
    milvus failed"; connect says what happened instead, so that traceback is left out."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return type(error).__name__ != "DataDirLockedError"


def _quiet_lite_lock_errors() -> None:
    logger = logging.getLogger("milvus_lite.server_manager")
    if not any(isinstance(f, _LiteLockFilter) for f in logger.filters):
        logger.addFilter(_LiteLockFilter())


def _public(address: str) -> str:
    """An address without credentials, for messages."""
    if "@" in address and "://" in address:
        scheme, rest = address.split("://", 1)
        return f"{scheme}://{rest.split('@', 1)[1]}"
    return address
