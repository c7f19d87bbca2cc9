"""Writing a knowledge base into Milvus (kb.stores.milvus says what is stored and how readers use it).

The collections are created on first use. A document is written as a new version (passages in batches, then its
text and term statistics) and published by one upsert of its "document" row; the base row's new generation then
tells readers to look. What is not published (old versions, what a killed ingest wrote) is deleted by
drop_unpublished. Ingests of one knowledge base take turns through a claim kept in Milvus (acquire_writer).
Used by ingest/milvus_sync.py.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Sequence

import numpy as np

from kb.schema import Chunk, Document
from kb.stores.index_dir import IndexMismatchError, IndexProblem
from kb.stores.milvus import LAYOUT, MilvusStore, literal, term_id
from kb.text.lexical import saturated_tf
from kb.text.traits import TRAITS, chunk_traits

#: Passages per insert.
WRITE_BATCH = 256
HNSW_BUILD = {"M": 16, "efConstruction": 200}
#: Characters per stored piece of a document's text or statistics (VARCHAR holds at most 65,535 bytes).
PIECE_CHARS = 8000
#: How long an ingest's claim on its knowledge base lasts unless renewed (a killed ingest's claim runs out), and
#: how long another ingest waits for it.
WRITER_LEASE_SECONDS = 600
WRITER_WAIT_SECONDS = 600


def version_stamp() -> str:
    """Now, as the start of a version name: versions sort by when they were written."""
    return f"{time.time_ns():019d}"


def _pieces(text: str) -> list[str]:
    return [text[i:i + PIECE_CHARS] for i in range(0, len(text), PIECE_CHARS)] or [""]


class MilvusWriter(MilvusStore):
    """A connection that writes one knowledge base (and can read it like any store)."""

    def create_collections(self, dimension: int) -> None:
        """The two collections, when this deployment has none yet (created loaded; connect loads existing ones);
        refuses another vector dimension."""
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

    def _record(self, kind: str, key: str, body: str, doc_id: str = "", version: str = "", piece: int = 0) -> dict:
        return {"key": key, "kb": self.kb_name, "kind": kind, "doc_id": doc_id, "version": version, "piece": piece,
                "body": body, "unused": [0.0, 0.0]}

    def write_base(self, base: dict) -> None:
        """Record the knowledge base's model and BM25 norm, with a new generation that tells readers to look."""
        base = {**base, **LAYOUT,
                "generation": f"{time.time_ns()}", "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self.client.upsert(self.records_collection, [self._record("base", self._key("base"), json.dumps(base))])

    def acquire_writer(self) -> str:
        """Claim the knowledge base for one ingest (API replicas and `kb ingest` may start one at once); waits
        up to WRITER_WAIT_SECONDS for another's claim to be released or to run out. Returns the claim."""
        owner = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
        deadline = time.monotonic() + WRITER_WAIT_SECONDS
        while True:
            holder = self._read_writer()
            if holder is None or _abandoned(holder):
                self.renew_writer(owner)
                time.sleep(0.3)  # two claims written at once: the later one stands, the other waits
                if (self._read_writer() or {}).get("owner") == owner:
                    return owner
            if time.monotonic() > deadline:
                raise IndexProblem(f"another ingest of knowledge base {self.kb_name!r} is running "
                                   f"({(holder or {}).get('owner')}); try again when it has finished")
            time.sleep(1.0)

    def _read_writer(self) -> dict | None:
        rows = self.client.query(self.records_collection, filter=f'key == {literal(self._key("writer"))}',
                                 output_fields=["body"])
        return json.loads(rows[0]["body"]) if rows else None

    def renew_writer(self, owner: str) -> None:
        body = json.dumps({"owner": owner, "expires": time.time() + WRITER_LEASE_SECONDS})
        self.client.upsert(self.records_collection, [self._record("writer", self._key("writer"), body)])

    def release_writer(self, owner: str) -> None:
        if (self._read_writer() or {}).get("owner") == owner:
            self.client.delete(self.records_collection, filter=f'key == {literal(self._key("writer"))}')

    def touch(self) -> None:
        """A new generation: readers re-read the documents within REFRESH_SECONDS."""
        base = self.read_base()
        if base is not None:
            self.write_base(base)

    def live_documents(self) -> dict[str, tuple[str, str]]:
        """{doc_id: (published version, content hash)} as stored now."""
        rows = self._query_all(self.records_collection, 'kind == "document"', ["doc_id", "version", "body"])
        return {r["doc_id"]: (r["version"], json.loads(r["body"])["content_hash"]) for r in rows}

    def publish_document(self, document: Document, chunks: Sequence[Chunk], vectors: np.ndarray,
                         term_counts: Sequence[dict[str, int]], avg_length: float,
                         progress: Callable[[int], None] = lambda n: None) -> str:
        """Write a new version of `document`, then make it the live one. Returns the version."""
        version = f"{version_stamp()}-{document.content_hash[:12]}"
        spans: dict[int, tuple[int, int]] = {}
        for c in chunks:
            if c.article_no is not None:
                low, high = spans.get(c.article_no, (c.start, c.end))
                spans[c.article_no] = (min(low, c.start), max(high, c.end))
        traits = chunk_traits(list(chunks)) @ (1 << np.arange(len(TRAITS)))
        rows = []
        for n, (chunk, vector, counts) in enumerate(zip(chunks, vectors, term_counts)):
            length = sum(counts.values())
            span = spans[chunk.article_no] if chunk.article_no is not None else (chunk.start, chunk.end)
            rows.append({
                "key": self._key(document.doc_id, version, chunk.seq), "kb": self.kb_name, "doc_id": document.doc_id,
                "version": version, "chunk_id": chunk.chunk_id, "seq": chunk.seq, "section": chunk.section,
                "article": chunk.article or "", "article_no": -1 if chunk.article_no is None else chunk.article_no,
                "part": chunk.part, "start": chunk.start, "stop": chunk.end, "span_start": span[0],
                "span_end": span[1], "text": chunk.text, "traits": int(traits[n]),
                "dense": np.asarray(vector, dtype=np.float32).tolist(),
                "sparse": {term_id(t): float(saturated_tf(tf, length, avg_length)) for t, tf in counts.items()},
            })
        for start in range(0, len(rows), WRITE_BATCH):
            self.client.insert(self.passages_collection, rows[start:start + WRITE_BATCH])
            progress(len(rows[start:start + WRITE_BATCH]))
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
                "dates": [e.__dict__ for e in document.dates], "passages": len(chunks)}
        # The publishing step: one row, written at once; readers switch to this version when they see it.
        self.client.upsert(self.records_collection, [self._record(
            "document", self._key("document", document.doc_id), json.dumps(body, ensure_ascii=False),
            document.doc_id, version)])
        self.touch()
        return version

    def remove_document(self, doc_id: str) -> None:
        """Unpublish: readers stop seeing it at their next refresh; drop_unpublished deletes its rows."""
        self.client.delete(self.records_collection, filter=f'key == {literal(self._key("document", doc_id))}')
        self.touch()

    def drop_unpublished(self, doc_ids: Sequence[str], live: dict[str, str], before: str) -> None:
        """Delete the passages, texts and statistics of these documents that were written before `before` (a
        version_stamp) and are not their live version: old versions, and whatever an interrupted ingest wrote.
        A version another ingest is writing now is newer, and left alone."""
        for start in range(0, len(doc_ids), 100):
            batch = doc_ids[start:start + 100]
            condition = (f"kb == {literal(self.kb_name)} and doc_id in [{', '.join(map(literal, batch))}] "
                         f"and version < {literal(before)}")
            keep = [live[d] for d in batch if d in live]
            if keep:
                condition += f" and version not in [{', '.join(map(literal, keep))}]"
            self.client.delete(self.passages_collection, filter=condition)
            self.client.delete(self.records_collection, filter=f'{condition} and kind != "document"')

    def flush(self) -> None:
        """Seal what was written, so searches read indexed segments rather than scanning growing ones."""
        for collection in (self.passages_collection, self.records_collection):
            self.client.flush(collection)


def _abandoned(claim: dict) -> bool:
    """A writer's claim that has run out, or whose process on this machine has ended (killed, crashed)."""
    if claim["expires"] < time.time():
        return True
    host, pid, _ = claim["owner"].rsplit(":", 2)
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


