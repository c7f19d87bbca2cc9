"""Ingest into Milvus (KB_STORE=milvus): make knowledge base KB_NAME hold exactly the parsed documents.

Only what changed is written: a document whose content hash is the one stored is left alone, a new or changed
one is written as a new version and published (kb/stores/milvus.py says how readers never see half of it), a
document no longer among the files is unpublished. A document's attached questions (its sidecar) go with it; when
only they changed, or were never stored (written before Milvus held them), they alone are written and published.
Vectors come from the vector cache where it has them. Old versions, and what an interrupted ingest left, are
deleted at the end, after readers have had time to move to the new ones. One ingest per knowledge base at a time:
two writing the same document at once may leave it without passages, so each ingest first claims its knowledge
base (MilvusWriter.acquire_writer) and another waits.

BM25 built in steps is BM25 built in one go. A passage's BM25 weight depends on the knowledge base's average
passage length (the length norm), which every added, changed or removed document moves. Each ingest therefore
computes the norm over all the documents it is given, exactly as a one-go build does (unchanged documents' lengths
come from their rows), writes new documents with it, and when it moved, reweights every other document: its
passages' sparse vectors are recomputed from their terms (tokenized again here; the tokenizer depends on nothing
but the text) and upserted in place, same version, dense vectors untouched, no embedding. Each document row
records the norm its passages carry, so an ingest killed midway leaves documents the next ingest finds and
reweights. The alternative, storing raw term frequencies and applying the norm at query time, cannot be done by
Milvus' inner-product search over sparse vectors (the norm enters each term's weight non-linearly, per passage):
candidates would be chosen by other scores and rescored afterwards, slower and still not exact. So queries cost
what they cost before; what moved the norm costs an ingest a read and an upsert of the knowledge base's passages
(about as long as writing them, without embedding) and tokenizing them; an ingest that changes nothing writes
nothing.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
from tqdm import tqdm

from ingest.chunk import indexing_text
from ingest.embed import embed_with_reuse, open_vector_cache
from ingest.identity import IdentityChange
from ingest.vector_cache import VectorCache
from kb.config import Settings
from kb.embedding.embedder import Embedder
from kb.errors import IndexMismatchError
from kb.schema import Chunk, Document
from kb.stores.handles import Handle
from kb.stores.index_dir import check_model
from kb.stores.milvus import REFRESH_SECONDS, same_layout
from kb.stores.milvus_writer import LiveDocument, MilvusWriter, questions_digest, version_stamp
from kb.text.lexical import average_length
from kb.text.tokenize import tokenize

log = logging.getLogger(__name__)


def sync_to_milvus(documents: list[Document], chunks: list[Chunk], settings: Settings, embedder: Embedder,
                   progress: bool = False, identity: IdentityChange | None = None,
                   handles: Sequence[Handle] = ()) -> int:
    """Write what changed, the attached questions (`handles`) and the identity too (kept in the base row; without
    `identity`, as it was); returns how many passages kept a vector (unchanged documents, and the vector cache's)."""
    started = version_stamp()
    store = MilvusWriter.connect(settings)
    writer = None
    try:
        store.create_collections(embedder.dimension)
        writer = store.acquire_writer()
        by_doc: dict[str, list[Chunk]] = {}
        for chunk in chunks:
            by_doc.setdefault(chunk.doc_id, []).append(chunk)
        questions: dict[str, list[Handle]] = {d.doc_id: [] for d in documents}
        for handle in handles:
            questions[handle.doc_id].append(handle)
        base = store.read_base()
        live = store.live_documents() if base is not None else {}
        # first ingest, another model, or rows written another way (format, chunker, trait patterns)
        rewrite = base is None or not _same_model(base, embedder) or not same_layout(base)
        changed = [d for d in documents if rewrite or d.doc_id not in live
                   or live[d.doc_id].content_hash != d.content_hash]
        fresh = {d.doc_id for d in changed}
        words = _Words(by_doc)
        norm = _length_norm(documents, by_doc, {d: live[d] for d in live if d not in fresh}, words)
        own = (identity or IdentityChange()).applied_to(base.get("identity", {}) if base is not None else {})
        if base is None or rewrite:  # every document is written again (no base: rewrite)
            model = {"model_id": embedder.model_id, "fingerprint": embedder.fingerprint,
                     "dimension": embedder.dimension}
            base = {"embedding": model, "avg_length": norm, "identity": own}
            store.write_base(base)
        removed = [doc_id for doc_id in live if doc_id not in {d.doc_id for d in documents}]
        stale = [d for d in documents if d.doc_id not in fresh and live[d.doc_id].norm != norm]
        reweighted = 0
        for document in stale:  # the average passage length moved: the others' BM25 weights follow it
            reweighted_row = store.reweight_document(document.doc_id, live[document.doc_id], by_doc[document.doc_id],
                                                     words(document), norm)
            if reweighted_row is not None:
                live[document.doc_id] = reweighted_row
                reweighted += 1
            else:
                log.warning("Milvus %s: the stored passages of %s are not its chunks: writing it again",
                            settings.kb_name, document.source)
                changed.append(document)
            store.renew_writer(writer)
        written = {d.doc_id for d in changed}
        requestioned = [d for d in documents if d.doc_id not in written
                        and _recorded_digest(live[d.doc_id]) != questions_digest(questions[d.doc_id])]
        reused = _write(store, changed, requestioned, live, by_doc, questions, words, norm, settings, embedder,
                        progress, lambda: store.renew_writer(writer))
        for doc_id in removed:
            store.remove_document(doc_id)
        if (base.get("avg_length"), base.get("identity", {})) != (norm, own):
            store.write_base({**base, "avg_length": norm, "identity": own})
        if changed or removed or requestioned:
            time.sleep(2 * REFRESH_SECONDS)  # readers move to the new versions before the old ones go
        published = store.live_documents()
        store.drop_unpublished(sorted(set(published) | set(removed) | {d.doc_id for d in documents}), published,
                               before=started)
        store.flush()
        log.info("Milvus %s: %d documents written, %d reweighted, %d removed, %d unchanged; attached questions "
                 "of %d others written", settings.kb_name, len(changed), reweighted, len(removed),
                 len(documents) - len(changed) - reweighted, len(requestioned))
        return reused + sum(len(by_doc[d.doc_id]) for d in documents if d.doc_id not in written)
    finally:
        if writer is not None:
            store.release_writer(writer)
        store.close()


class _Words:
    """Each document's passages as BM25 counts its terms (what the embedding model sees, tokenized), each
    document tokenized once, when first asked for."""

    def __init__(self, by_doc: dict[str, list[Chunk]]) -> None:
        self.by_doc = by_doc
        self.counted: dict[str, list[Counter]] = {}

    def __call__(self, document: Document) -> list[Counter]:
        if document.doc_id not in self.counted:
            self.counted[document.doc_id] = [Counter(tokenize(indexing_text(document, c)))
                                             for c in self.by_doc[document.doc_id]]
        return self.counted[document.doc_id]


def _length_norm(documents: list[Document], by_doc: dict[str, list[Chunk]], unchanged: dict[str, LiveDocument],
                 words: _Words) -> float:
    """BM25's length norm for the knowledge base these documents make: the average passage length over all of
    them, as a one-go build computes it (kb.text.lexical.average_length). An unchanged document's length comes
    from its row; others are tokenized. Lengths are whole numbers, so their sum over their count is the very float
    the mean of their list is, in any order and however the documents came in."""
    total = count = 0
    for document in documents:
        stored = unchanged.get(document.doc_id)
        if stored is not None and stored.length is not None and stored.passages == len(by_doc[document.doc_id]):
            total += stored.length
        else:
            total += sum(sum(counts.values()) for counts in words(document))
        count += len(by_doc[document.doc_id])
    return average_length([total / count]) if count else average_length([])


def _recorded_digest(document: LiveDocument) -> str | None:
    """The digest of the attached questions its row records (None: written before Milvus held them)."""
    recorded = document.questions
    return recorded.digest if recorded is not None else None


def _question_vectors(questions: list[Handle], embedder: Embedder, cache: VectorCache | None) -> np.ndarray:
    """Attached questions embedded as a local build embeds them (ingest/build.py), the vector cache first."""
    return embed_with_reuse([h.question for h in questions], embedder, {}, cache, as_questions=True)[0]


def _same_model(base: dict, embedder: Embedder) -> bool:
    try:
        check_model(base, embedder.model_id, embedder.fingerprint, embedder.dimension)
        return True
    except IndexMismatchError:
        return False


def _write(store: MilvusWriter, changed: list[Document], requestioned: list[Document],
           live: dict[str, LiveDocument], by_doc: dict[str, list[Chunk]], questions: dict[str, list[Handle]],
           words: _Words, norm: float, settings: Settings, embedder: Embedder, progress: bool,
           still_writing: Callable[[], None]) -> int:
    """Embed (cache first) and publish each changed document with its attached questions, then the attached
    questions of the `requestioned` ones (their text as stored), one document at a time, so each is whole when
    it goes live. Returns how many passages reused a vector."""
    cache = open_vector_cache(settings, embedder)
    reused = 0
    try:
        with tqdm(total=sum(len(by_doc[d.doc_id]) for d in changed), desc="写入 Milvus", unit="chunk",
                  disable=not progress) as bar:
            for document in changed:
                texts = [indexing_text(document, c) for c in by_doc[document.doc_id]]
                vectors, hits = embed_with_reuse(texts, embedder, {}, cache)
                reused += hits
                attached = questions[document.doc_id]
                store.publish_document(document, by_doc[document.doc_id], np.asarray(vectors), words(document),
                                       norm, attached, _question_vectors(attached, embedder, cache), bar.update)
                still_writing()  # renew the claim: a long ingest keeps it
        for document in requestioned:
            attached = questions[document.doc_id]
            store.publish_questions(document.doc_id, live[document.doc_id], attached,
                                    _question_vectors(attached, embedder, cache))
            still_writing()
    finally:
        if cache is not None:
            cache.close()
    return reused
