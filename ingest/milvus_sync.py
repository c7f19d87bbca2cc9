"""Ingest into Milvus (KB_STORE=milvus): make knowledge base KB_NAME hold exactly the parsed documents.

Only what changed is written: a document whose content hash is the one stored is left alone, a new or changed
one is written as a new version and published (kb/stores/milvus.py says how readers never see half of it), a
document no longer among the files is unpublished. Vectors come from the vector cache where it has them. Old
versions, and what an interrupted ingest left, are deleted at the end, after readers have had time to move to
the new ones. One ingest per knowledge base at a time: two writing the same document at once may leave it
without passages, so each ingest first claims its knowledge base (MilvusWriter.acquire_writer) and another waits.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from ingest.chunk import indexing_text
from ingest.embed import embed_with_reuse, open_vector_cache
from kb.config import Settings
from kb.embedding.embedder import Embedder
from kb.schema import Chunk, Document
from kb.stores.index_dir import IndexMismatchError, check_model
from kb.stores.milvus import REFRESH_SECONDS, same_layout
from kb.stores.milvus_writer import MilvusWriter, version_stamp
from kb.text.lexical import average_length
from kb.text.tokenize import tokenize

log = logging.getLogger(__name__)


def sync_to_milvus(documents: list[Document], chunks: list[Chunk], settings: Settings, embedder: Embedder,
                   progress: bool = False) -> int:
    """Write what changed; returns how many passages kept a vector (unchanged documents, and the vector cache's)."""
    started = version_stamp()
    store = MilvusWriter.connect(settings)
    writer = None
    try:
        store.create_collections(embedder.dimension)
        writer = store.acquire_writer()
        by_doc: dict[str, list[Chunk]] = {}
        for chunk in chunks:
            by_doc.setdefault(chunk.doc_id, []).append(chunk)
        base = store.read_base()
        live = store.live_documents() if base is not None else {}
        # first ingest, another model, or rows written another way (format, chunker, trait patterns)
        rewrite = base is None or not _same_model(base, embedder) or not same_layout(base)
        changed = [d for d in documents if rewrite or live.get(d.doc_id, ("", ""))[1] != d.content_hash]
        texts = {d.doc_id: [indexing_text(d, c) for c in by_doc[d.doc_id]] for d in changed}
        words = {doc_id: [Counter(tokenize(t)) for t in doc_texts] for doc_id, doc_texts in texts.items()}
        if base is None or rewrite:  # every document is written again, with a fresh BM25 norm (no base: rewrite)
            model = {"model_id": embedder.model_id, "fingerprint": embedder.fingerprint,
                     "dimension": embedder.dimension}
            lengths = [sum(counts.values()) for doc_words in words.values() for counts in doc_words]
            base = {"embedding": model, "avg_length": average_length(lengths)}
            store.write_base(base)
        removed = [doc_id for doc_id in live if doc_id not in {d.doc_id for d in documents}]
        reused = _write(store, changed, by_doc, texts, words, float(base["avg_length"]), settings, embedder,
                        progress, lambda: store.renew_writer(writer))
        for doc_id in removed:
            store.remove_document(doc_id)
        if changed or removed:
            time.sleep(2 * REFRESH_SECONDS)  # readers move to the new versions before the old ones go
        published = {doc_id: version for doc_id, (version, _) in store.live_documents().items()}
        store.drop_unpublished(sorted(set(published) | set(removed) | {d.doc_id for d in documents}), published,
                               before=started)
        store.flush()
        log.info("Milvus %s: %d documents written, %d removed, %d unchanged", settings.kb_name, len(changed),
                 len(removed), len(documents) - len(changed))
        return reused + sum(len(by_doc[d.doc_id]) for d in documents if d.doc_id not in texts)
    finally:
        if writer is not None:
            store.release_writer(writer)
        store.close()


def _same_model(base: dict, embedder: Embedder) -> bool:
    try:
        check_model(base, embedder.model_id, embedder.fingerprint, embedder.dimension)
        return True
    except IndexMismatchError:
        return False


def _write(store: MilvusWriter, changed: list[Document], by_doc: dict[str, list[Chunk]],
           texts: dict[str, list[str]], words: dict[str, list[Counter]], avg_length: float, settings: Settings,
           embedder: Embedder, progress: bool, still_writing: Callable[[], None]) -> int:
    """Embed (cache first) and publish each changed document, one at a time, so each is whole when it goes live."""
    cache = open_vector_cache(settings, embedder)
    reused = 0
    try:
        with tqdm(total=sum(len(by_doc[d.doc_id]) for d in changed), desc="写入 Milvus", unit="chunk",
                  disable=not progress) as bar:
            for document in changed:
                vectors, hits = embed_with_reuse(texts[document.doc_id], embedder, {}, cache)
                reused += hits
                store.publish_document(document, by_doc[document.doc_id], np.asarray(vectors),
                                       words[document.doc_id], avg_length, bar.update)
                still_writing()  # renew the claim: a long ingest keeps it
    finally:
        if cache is not None:
            cache.close()
    return reused
