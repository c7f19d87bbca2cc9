"""Writing a knowledge base into Milvus (kb.stores.milvus says what is stored and how readers use it).

The collections are created on first use. A document is written as a new version (passages in batches, then its
attached questions, text and term statistics) and published by one upsert of its "document" row; the base row's
new generation then tells readers to look. When only its attached questions changed (its sidecar), they alone are
written, under a version of their own, and published the same way (publish_questions). What is not published
(old versions, what a killed ingest wrote) is deleted by drop_unpublished. Ingests of one knowledge base take
turns through a claim kept in Milvus (acquire_writer). Used by ingest/milvus_sync.py.

BM25's length norm (the average passage length) is the knowledge base's own, as a one-go build computes it from
all its passages: each document row records the norm its passages' sparse vectors were weighted with ("norm")
and its passages' total length ("length"), and when an ingest changes the average, reweight_document rewrites
the sparse vectors of every other document in place (ingest/milvus_sync.py says why this design).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from kb.errors import IndexMismatchError, IndexProblem
from kb.schema import Chunk, Document
from kb.stores.handles import Handle
from kb.stores.milvus import _PASSAGE_FIELDS, LAYOUT, MilvusStore, QuestionSet, literal, term_id
from kb.text.lexical import saturated_tf
from kb.text.traits import TRAITS, chunk_traits

#: Passages (or attached questions) per insert.
WRITE_BATCH = 256
HNSW_BUILD = {"M": 16, "efConstruction": 200}
#: Characters per stored piece of a document's text or statistics (VARCHAR holds at most 65,535 bytes).
PIECE_CHARS = 8000
#: How long an ingest's claim on its knowledge base lasts unless renewed. A running ingest renews it every quarter
#: of that (a thread, so long embeddings keep it too), so a claim whose process died on another machine blocks
#: others for at most this long; one whose process is gone on this machine is taken over at once. The machines'
#: clocks must agree to well within it.
WRITER_LEASE_SECONDS = 60.0
#: How long an ingest waits for another's claim (a running ingest's) before giving up.
WRITER_WAIT_SECONDS = 600.0
#: Keys per delete request (drop_unpublished).
DELETE_BATCH = 1000

log = logging.getLogger(__name__)


def version_stamp() -> str:
    """Now, as the start of a version name: versions sort by when they were written."""
    return f"{time.time_ns():019d}"


def _pieces(text: str) -> list[str]:
    return [text[i:i + PIECE_CHARS] for i in range(0, len(text), PIECE_CHARS)] or [""]


def questions_digest(questions: Sequence[Handle]) -> str:
    """What a document's attached questions are (words, passages, forms, order), in short: an ingest compares it
    with the one its row records to tell whether they changed."""
    rows = [[h.question, h.target, h.form] for h in questions]
    return hashlib.blake2b(json.dumps(rows, ensure_ascii=False).encode("utf-8"), digest_size=16).hexdigest()


def sparse_vector(counts: Mapping[str, int], norm: float) -> dict[int, float]:
    """A passage's BM25 sparse vector: each term's saturated frequency under the length norm `norm`."""
    length = sum(counts.values())
    return {term_id(t): float(saturated_tf(tf, length, norm)) for t, tf in counts.items()}


@dataclass(frozen=True)
class LiveDocument:
    """A published document as its "document" row records it."""

    version: str
    body: dict

    @property
    def content_hash(self) -> str:
        return str(self.body["content_hash"])

    @property
    def passages(self) -> int:
        return int(self.body["passages"])

    @property
    def length(self) -> int | None:
        """Its passages' total length in terms (None: written before lengths were recorded)."""
        return self.body.get("length")

    @property
    def norm(self) -> float | None:
        """The length norm its passages' sparse vectors were weighted with (None: not recorded)."""
        return self.body.get("norm")

    @property
    def questions(self) -> QuestionSet | None:
        """Its attached questions (None: written before Milvus held them)."""
        return QuestionSet.of(self.body)


class MilvusWriter(MilvusStore):
    """A connection that writes one knowledge base (and can read it like any store)."""

    def __init__(self, client: object, kb_name: str, address: str) -> None:
        super().__init__(client, kb_name, address)
        self._claim: _Claim | None = None
        self._claim_lock = threading.Lock()

    def create_collections(self, dimension: int) -> None:
        """The collections this deployment lacks (created loaded; connect loads existing ones); refuses another
        vector dimension than its passages'."""
        from pymilvus import DataType

        client = self.client
        if client.has_collection(self.passages_collection):
            fields = client.describe_collection(self.passages_collection)["fields"]
            dense = next(f for f in fields if f["name"] == "dense")
            if int(dense["params"]["dim"]) != dimension:
                raise IndexMismatchError(
                    f"the Milvus collection {self.passages_collection} holds {dense['params']['dim']}-dimensional "
                    f"vectors; the configured model makes {dimension}: use the model it was built with")
        else:
            schema = client.create_schema(auto_id=False)
            schema.add_field("key", DataType.VARCHAR, max_length=512, is_primary=True)
            schema.add_field("kb", DataType.VARCHAR, max_length=64, is_partition_key=True)
            for name, length in (("doc_id", 64), ("version", 64), ("chunk_id", 128), ("section", 4096),
                                 ("article", 128), ("text", 65535)):
                schema.add_field(name, DataType.VARCHAR, max_length=length)
            for name in ("seq", "article_no", "part", "start", "stop", "span_start", "span_end", "traits"):
                schema.add_field(name, DataType.INT64)
            schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dimension)
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            index = client.prepare_index_params()
            index.add_index("dense", index_type="HNSW", metric_type="IP", params=HNSW_BUILD)
            index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
            client.create_collection(self.passages_collection, schema=schema, index_params=index)
        if not client.has_collection(self.records_collection):
            schema = client.create_schema(auto_id=False)
            schema.add_field("key", DataType.VARCHAR, max_length=512, is_primary=True)
            schema.add_field("kb", DataType.VARCHAR, max_length=64, is_partition_key=True)
            for name, length in (("kind", 16), ("doc_id", 64), ("version", 64), ("body", 65535)):
                schema.add_field(name, DataType.VARCHAR, max_length=length)
            schema.add_field("piece", DataType.INT64)
            schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector in every collection
            index = client.prepare_index_params()
            index.add_index("unused", index_type="FLAT", metric_type="L2")
            client.create_collection(self.records_collection, schema=schema, index_params=index)
        if not client.has_collection(self.handles_collection):
            schema = client.create_schema(auto_id=False)
            schema.add_field("key", DataType.VARCHAR, max_length=512, is_primary=True)
            schema.add_field("kb", DataType.VARCHAR, max_length=64, is_partition_key=True)
            for name, length in (("doc_id", 64), ("version", 64), ("question", 4096), ("chunk_id", 128),
                                 ("form", 32)):
                schema.add_field(name, DataType.VARCHAR, max_length=length)
            for name in ("seq", "article_no"):
                schema.add_field(name, DataType.INT64)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
            index = client.prepare_index_params()  # read whole, never searched in Milvus: the plainest index
            index.add_index("vector", index_type="FLAT", metric_type="IP")
            client.create_collection(self.handles_collection, schema=schema, index_params=index)

    def _record(self, kind: str, key: str, body: str, doc_id: str = "", version: str = "", piece: int = 0) -> dict:
        return {"key": key, "kb": self.kb_name, "kind": kind, "doc_id": doc_id, "version": version, "piece": piece,
                "body": body, "unused": [0.0, 0.0]}

    def write_base(self, base: dict) -> None:
        """Record the knowledge base's model, BM25 norm and identity, with a new generation that tells readers to
        look."""
        base = {**base, **LAYOUT,
                "generation": f"{time.time_ns()}", "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self.client.upsert(self.records_collection, [self._record("base", self._key("base"), json.dumps(base))])

    # -- the writer's claim ------------------------------------------------------------------------------------------

    def acquire_writer(self) -> str:
        """Claim the knowledge base for one ingest (API replicas and `kb ingest` may start one at once); waits up
        to WRITER_WAIT_SECONDS for another's claim to be released or abandoned (_abandoned). Returns the claim,
        which a thread renews until release_writer.

        Each claimant writes its own row (kind "writer", keyed by its owner), then reads every claim row with
        Strong consistency: it holds the knowledge base when no other live claim is there; otherwise it deletes
        its row and tries again after a random pause. Two claimants cannot both win: each wrote before it read,
        so the later of the two reads sees the other's row. Rows of abandoned claims are deleted on the way."""
        if self._claim is not None:
            raise RuntimeError("this connection already holds the writer's claim")
        owner = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
        deadline = time.monotonic() + WRITER_WAIT_SECONDS
        while True:
            others = self._live_claims(owner)
            if not others:
                expires = self._write_claim(owner)
                others = self._live_claims(owner)
                if not others:
                    claim = _Claim(owner, expires)
                    self._claim = claim
                    claim.heartbeat = threading.Thread(target=self._keep_claim, args=(claim,), daemon=True,
                                                       name=f"writer-claim-{self.kb_name}")
                    claim.heartbeat.start()
                    return owner
                self._delete_claim(owner)  # claimed at the same moment as another: both step back
            if time.monotonic() > deadline:
                raise IndexProblem(f"another ingest of knowledge base {self.kb_name!r} is running "
                                   f"({others[0]['owner']}); try again when it has finished")
            time.sleep(random.uniform(0.3, 1.0))

    def renew_writer(self, owner: str) -> None:
        """Keep the claim (called between documents; a thread renews it as well). Raises IndexProblem when the
        claim was lost: it ran out before it was renewed (this process stalled) and another ingest took over."""
        with self._claim_lock:
            claim = self._claim
            if claim is None or claim.owner != owner:
                raise IndexProblem(f"this ingest holds no claim on knowledge base {self.kb_name!r}")
            if claim.lost:
                raise IndexProblem(claim.lost)
            now = time.time()
            if now - claim.renewed < WRITER_LEASE_SECONDS / 4:
                return  # renewed lately
            if now > claim.expires:
                claim.lost = (f"this ingest's claim on knowledge base {self.kb_name!r} ran out before it was renewed "
                              f"(the process stalled for over {WRITER_LEASE_SECONDS:g} s); another ingest may have "
                              f"taken over: run the ingest again")
            elif not any(c["owner"] == owner for c in self._claims()):
                claim.lost = (f"this ingest's claim on knowledge base {self.kb_name!r} was taken over by another "
                              f"ingest: run the ingest again")
            if claim.lost:
                raise IndexProblem(claim.lost)
            claim.expires, claim.renewed = self._write_claim(owner), now

    def release_writer(self, owner: str) -> None:
        """Give the claim up (its row is deleted, so another ingest may start at once)."""
        claim = self._claim
        if claim is None or claim.owner != owner:
            return
        claim.stop.set()
        if claim.heartbeat is not None:
            claim.heartbeat.join(timeout=30)
        with self._claim_lock:
            self._claim = None
        self._delete_claim(owner)

    def _keep_claim(self, claim: _Claim) -> None:
        """The renewing thread: every quarter lease, until released or lost."""
        while not claim.stop.wait(WRITER_LEASE_SECONDS / 4):
            try:
                self.renew_writer(claim.owner)
            except IndexProblem:
                return  # lost: the ingest finds out at its next renew_writer
            except Exception as exc:  # noqa: BLE001 - Milvus unreachable for a moment: try again at the next turn
                log.warning("could not renew the claim on knowledge base %r: %s", self.kb_name, exc)

    def _claims(self) -> list[dict]:
        """Every claim on this knowledge base, as it stands (Strong: every write acknowledged before is seen)."""
        rows = self._query_all(self.records_collection, 'kind == "writer"', ["body"], consistency_level="Strong")
        return [{**json.loads(r["body"]), "key": r["key"]} for r in rows]

    def _live_claims(self, owner: str) -> list[dict]:
        """Other claimants' claims; abandoned ones are deleted."""
        others = [c for c in self._claims() if c["owner"] != owner]
        gone = [c["key"] for c in others if _abandoned(c)]
        if gone:
            log.info("taking over abandoned claims on knowledge base %r: %s", self.kb_name, gone)
            self.client.delete(self.records_collection, ids=gone)
        return [c for c in others if c["key"] not in gone]

    def _write_claim(self, owner: str) -> float:
        expires = time.time() + WRITER_LEASE_SECONDS
        body = json.dumps({"owner": owner, "expires": expires})
        self.client.upsert(self.records_collection, [self._record("writer", self._key("writer", owner), body)])
        return expires

    def _delete_claim(self, owner: str) -> None:
        self.client.delete(self.records_collection, ids=[self._key("writer", owner)])

    # -- documents ---------------------------------------------------------------------------------------------------

    def touch(self) -> None:
        """A new generation: readers re-read the documents within REFRESH_SECONDS."""
        base = self.read_base()
        if base is not None:
            self.write_base(base)

    def live_documents(self) -> dict[str, LiveDocument]:
        """The published documents as stored now (Strong: this ingest decides from them what to write)."""
        rows = self._query_all(self.records_collection, 'kind == "document"', ["doc_id", "version", "body"],
                               consistency_level="Strong")
        return {r["doc_id"]: LiveDocument(r["version"], json.loads(r["body"])) for r in rows}

    def publish_document(self, document: Document, chunks: Sequence[Chunk], vectors: np.ndarray,
                         term_counts: Sequence[Mapping[str, int]], norm: float, questions: Sequence[Handle],
                         question_vectors: np.ndarray, progress: Callable[[int], None] = lambda n: None) -> str:
        """Write a new version of `document`, its passages' BM25 weighted with the length norm `norm`, and its
        attached questions, then make it the live one. Returns the version."""
        version = f"{version_stamp()}-{document.content_hash[:12]}"
        spans: dict[int, tuple[int, int]] = {}
        for c in chunks:
            if c.article_no is not None:
                low, high = spans.get(c.article_no, (c.start, c.end))
                spans[c.article_no] = (min(low, c.start), max(high, c.end))
        traits = chunk_traits(list(chunks)) @ (1 << np.arange(len(TRAITS)))
        rows = []
        for n, (chunk, vector, counts) in enumerate(zip(chunks, vectors, term_counts)):
            span = spans[chunk.article_no] if chunk.article_no is not None else (chunk.start, chunk.end)
            rows.append({
                "key": self._key(document.doc_id, version, chunk.seq), "kb": self.kb_name, "doc_id": document.doc_id,
                "version": version, "chunk_id": chunk.chunk_id, "seq": chunk.seq, "section": chunk.section,
                "article": chunk.article or "", "article_no": -1 if chunk.article_no is None else chunk.article_no,
                "part": chunk.part, "start": chunk.start, "stop": chunk.end, "span_start": span[0],
                "span_end": span[1], "text": chunk.text, "traits": int(traits[n]),
                "dense": np.asarray(vector, dtype=np.float32).tolist(),
                "sparse": sparse_vector(counts, norm),
            })
        for start in range(0, len(rows), WRITE_BATCH):
            self.client.insert(self.passages_collection, rows[start:start + WRITE_BATCH])
            progress(len(rows[start:start + WRITE_BATCH]))
        attached = self._write_questions(document.doc_id, version, questions, question_vectors)
        doc_freq: dict[int, int] = {}
        for counts in term_counts:
            for term in counts:
                doc_freq[term_id(term)] = doc_freq.get(term_id(term), 0) + 1
        ordered = sorted(doc_freq)
        records = [self._record("text", self._key("text", document.doc_id, version, i), piece, document.doc_id,
                                version, i) for i, piece in enumerate(_pieces(document.text))]
        records += [self._record("terms", self._key("terms", document.doc_id, version, i), piece, document.doc_id,
                                 version, i)
                    for i, piece in enumerate(_pieces(json.dumps([ordered, [doc_freq[t] for t in ordered]])))]
        for start in range(0, len(records), 64):
            self.client.insert(self.records_collection, records[start:start + 64])
        body = {"title": document.title, "kind": document.kind, "source": document.source,
                "content_hash": document.content_hash, "doc_date": document.doc_date,
                "dates": [e.__dict__ for e in document.dates], "passages": len(chunks),
                "length": sum(sum(counts.values()) for counts in term_counts), "norm": norm, "questions": attached}
        self._publish(document.doc_id, version, body)
        self.touch()
        return version

    def publish_questions(self, doc_id: str, live: LiveDocument, questions: Sequence[Handle],
                          vectors: np.ndarray) -> LiveDocument:
        """Give a published document other attached questions (its sidecar changed, its text did not): they are
        written under a version of their own and published by its row, its passages left as they are."""
        version = f"{version_stamp()}-{questions_digest(questions)[:12]}"
        published = self._publish(doc_id, live.version, {
            **live.body, "questions": self._write_questions(doc_id, version, questions, vectors)})
        self.touch()
        return published

    def _write_questions(self, doc_id: str, version: str, questions: Sequence[Handle], vectors: np.ndarray) -> dict:
        """Write a document's attached questions under `version`, in order; returns what its row records of them."""
        rows = [{"key": self._key(doc_id, version, seq), "kb": self.kb_name, "doc_id": doc_id, "version": version,
                 "seq": seq, "question": handle.question, "form": handle.form,
                 "article_no": handle.target if isinstance(handle.target, int) else -1,
                 "chunk_id": handle.target if isinstance(handle.target, str) else "",
                 "vector": np.asarray(vector, dtype=np.float32).tolist()}
                for seq, (handle, vector) in enumerate(zip(questions, vectors, strict=True))]
        for start in range(0, len(rows), WRITE_BATCH):
            self.client.insert(self.handles_collection, rows[start:start + WRITE_BATCH])
        return asdict(QuestionSet(version, len(rows), questions_digest(questions)))

    def _publish(self, doc_id: str, version: str, body: dict) -> LiveDocument:
        """The publishing step: the document's row, one upsert; readers switch to what it names when they see it."""
        self.client.upsert(self.records_collection, [self._record(
            "document", self._key("document", doc_id), json.dumps(body, ensure_ascii=False), doc_id, version)])
        return LiveDocument(version, body)

    def remove_document(self, doc_id: str) -> None:
        """Unpublish: readers stop seeing it at their next refresh; drop_unpublished deletes its rows."""
        self.client.delete(self.records_collection, filter=f'key == {literal(self._key("document", doc_id))}')
        self.touch()

    def reweight_document(self, doc_id: str, live: LiveDocument, chunks: Sequence[Chunk],
                          term_counts: Sequence[Mapping[str, int]], norm: float) -> LiveDocument | None:
        """Give the published version of a document the BM25 weights of another length norm: its passages are
        read back and upserted in place with new sparse vectors (same keys, same version, vectors untouched),
        then its document row records the norm; returns it as it is now. None, and nothing written, when the
        stored passages are not these chunks (then the document must be written anew)."""
        rows = self._query_all(self.passages_collection, f"doc_id == {literal(doc_id)} and version == "
                               f"{literal(live.version)}", [*_PASSAGE_FIELDS, "kb", "dense"],
                               consistency_level="Strong")
        counts = {c.seq: (c.chunk_id, n) for c, n in zip(chunks, term_counts)}
        if len(rows) != len(chunks) or any(counts.get(int(r["seq"]), ("",))[0] != r["chunk_id"] for r in rows):
            return None
        for row in rows:
            row["dense"] = np.asarray(row["dense"], dtype=np.float32).tolist()
            row["sparse"] = sparse_vector(counts[int(row["seq"])][1], norm)
        for start in range(0, len(rows), WRITE_BATCH):
            self.client.upsert(self.passages_collection, rows[start:start + WRITE_BATCH])
        return self._publish(doc_id, live.version,
                             {**live.body, "length": sum(sum(n.values()) for n in term_counts), "norm": norm})

    def drop_unpublished(self, doc_ids: Sequence[str], live: Mapping[str, LiveDocument], before: str) -> None:
        """Delete the passages, attached questions, texts and statistics of these documents that were written
        before `before` (a version_stamp) and are not their live version (the attached questions': the version
        the row records for them): old versions, and whatever an interrupted ingest wrote. A version another
        ingest is writing now is newer, and left alone. The rows are found page by page and deleted by key, so
        none is left however many there are."""
        for start in range(0, len(doc_ids), 100):
            batch = doc_ids[start:start + 100]
            condition = f"doc_id in [{', '.join(map(literal, batch))}] and version < {literal(before)}"
            published = [live[d] for d in batch if d in live]
            versions = [d.version for d in published]
            question_versions = [q.version for d in published if (q := d.questions) is not None]
            for collection, keep, only in ((self.passages_collection, versions, ""),
                                           (self.handles_collection, question_versions, ""),
                                           (self.records_collection, versions, ' and kind != "document"')):
                unkept = f" and version not in [{', '.join(map(literal, keep))}]" if keep else ""
                keys = [r["key"] for r in self._query_all(collection, condition + unkept + only, ["key"],
                                                          consistency_level="Strong")]
                for first in range(0, len(keys), DELETE_BATCH):
                    self.client.delete(collection, ids=keys[first:first + DELETE_BATCH])

    def flush(self) -> None:
        """Seal what was written, so searches read indexed segments rather than scanning growing ones."""
        for collection in (self.passages_collection, self.records_collection, self.handles_collection):
            self.client.flush(collection)


@dataclass
class _Claim:
    """The writer's claim this connection holds."""

    owner: str
    expires: float  # as written in its row (time.time())
    renewed: float = 0.0
    lost: str = ""  # why, once lost
    stop: threading.Event = field(default_factory=threading.Event)
    heartbeat: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.renewed = self.renewed or time.time()


def _abandoned(claim: dict) -> bool:
    """A writer's claim that has run out, or whose process on this machine has ended (killed, crashed)."""
    if float(claim["expires"]) < time.time():
        return True
    parts = str(claim["owner"]).rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, OverflowError):
        return False
    return False


