"""The library's front door: open an index, search it, ask it, browse its documents.

A thin facade: the passages live in a store (kb/stores: the local index directory, or Milvus, chosen by KB_STORE),
retrieval is kb/search, and a question's whole way from reading to answer is kb/answers/asker.py. The CLI, the
HTTP API, WeChat and any embedding backend only translate to these few methods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from kb.answers.answer import Answer
from kb.answers.answerable import AnswerModel
from kb.answers.asker import Asker
from kb.answers.safety import SafetyCheck
from kb.config import (
    AnswerParams,
    GeneratorConfig,
    Identity,
    RetrievalParams,
    Settings,
    load_settings,
)
from kb.embedding.embedder import Embedder
from kb.errors import QueryError, UnknownDocumentError
from kb.schema import Chunk, Document, Hit, citation_for
from kb.search.conversation import ConversationReader
from kb.search.retrieve import MAX_TOP_K, METHODS, Retrieval, Retriever
from kb.stores.base import Filters, PassageStore
from kb.stores.index_dir import check_model, load_index
from kb.stores.local import IndexView
from kb.text.numerals import article_label
from kb.text.personal import without_personal_details

__all__ = ["MAX_TOP_K", "METHODS", "Filters", "KnowledgeBase", "QueryError", "UnknownDocumentError"]


class KnowledgeBase:
    """A store of passages and the model that made them. Thread-safe for concurrent searches."""

    def __init__(self, store: PassageStore, embedder: Embedder, params: RetrievalParams | None = None,
                 answer_params: AnswerParams | None = None, generator: GeneratorConfig | None = None,
                 default_identity: Identity | None = None) -> None:
        check_model(store.manifest, embedder.model_id, embedder.fingerprint, embedder.dimension)
        self.store = store
        self.embedder = embedder
        self.answer_params = answer_params or AnswerParams()
        self.generator = generator
        #: Whether a question speaks of danger, for the notice's help lines (kb/answers/safety.py); one per embedder.
        self.safety = SafetyCheck.for_embedder(embedder)
        # Fitted for the default model (kb/answers/answer_models/); another model weighs closeness and shared
        # words only.
        self.answer_model = AnswerModel.for_model(embedder.fingerprint) or AnswerModel.from_params(self.answer_params)
        self.retriever = Retriever(store, embedder, params or RetrievalParams())
        self.asker = Asker(self.retriever, self.answer_model, self.answer_params, generator,
                           default_identity or Identity(), self.safety)

    @classmethod
    def open(cls, index_dir: str | Path | None = None, settings: Settings | None = None,
             embedder: Embedder | None = None) -> KnowledgeBase:
        """Open the store (checked: format, chunker, model; a local index's checksums too) and the model, once.

        KB_STORE=local (the default) loads the index directory (`index_dir`, or KB_INDEX); KB_STORE=milvus
        connects to KB_MILVUS_URI and serves the knowledge base KB_NAME."""
        settings = settings or load_settings()
        store: PassageStore
        if settings.store == "milvus" and index_dir is None:
            from kb.stores.milvus import MilvusStore  # pymilvus is only imported by those who use it

            store = MilvusStore.open(settings)
        else:
            store = IndexView(load_index(Path(index_dir) if index_dir else settings.index_dir))
        return cls(store, embedder or Embedder(settings), settings.retrieval, settings.answer, settings.llm.generator(),
                   settings.identity)

    @property
    def params(self) -> RetrievalParams:
        return self.retriever.params

    def with_params(self, params: RetrievalParams) -> KnowledgeBase:
        """The same loaded index and model, searched with other retrieval parameters (benchmarks, tuning)."""
        return KnowledgeBase(self.store, self.embedder, params, self.answer_params, self.generator,
                             self.asker.default_identity)

    @property
    def identity(self) -> Identity:
        """Whom this knowledge base speaks for and where a person helps (the page, the notice, the no-answer
        message): its own, set at ingest, and the deployment's (KB_TOWNSHIP, KB_HELP_*) for what it does not set."""
        return self.asker.identity

    @property
    def documents(self) -> Mapping[str, Document]:
        """Every document's metadata by id (`document()` has the text)."""
        return self.store.documents

    def passage_count(self) -> int:
        return self.store.passage_count()

    def search(self, query: str, top_k: int = 5, filters: Mapping | Filters | None = None,
               method: str | None = None) -> list[Hit]:
        """The passages that best answer `query`, best first, one hit per 条."""
        return self.retrieve(query, top_k, filters, method).hits

    def retrieve(self, query: str, top_k: int = 5, filters: Mapping | Filters | None = None,
                 method: str | None = None) -> Retrieval:
        """Hits plus the evidence the answer stage weighs (how close in meaning the best passage is). The asker's
        name, address and numbers are left out: who asks does not change which passages answer (kb/text/personal.py)."""
        filters = filters if isinstance(filters, Filters) else Filters.from_mapping(filters)
        query = without_personal_details(query) if isinstance(query, str) else query  # the retriever refuses others
        return self.retriever.retrieve(query, top_k, filters, method)

    def ask(self, question: str, filters: Mapping | Filters | None = None, passages: int | None = None,
            history: Sequence[str] = ()) -> Answer:
        """An extractive answer with [n] citations, or a plain "no answer" when the evidence is weak.

        `history`: the conversation's earlier questions, oldest first; a follow-up such as 「那要是不满意呢？」
        is then read with the previous question (kb/search/conversation.py), a new topic on its own. The whole
        sequence is kb/answers/asker.py's."""
        filters = filters if isinstance(filters, Filters) else Filters.from_mapping(filters)
        return self.asker.ask(question, filters, passages, history)

    @property
    def conversation(self) -> ConversationReader:
        """How questions are read in their conversation (benchmarks learn its ranker and gate from it)."""
        return self.asker.reader

    def query_terms(self, query: str) -> list[str]:
        """The words of `query` the lexical index knows (for highlighting)."""
        return self.store.query_terms(query)

    def document(self, doc_id: str) -> Document:
        return self.store.document(doc_id)

    def document_chunks(self, doc_id: str) -> list[Chunk]:
        return self.store.document_chunks(doc_id)

    def article(self, doc_id: str, article_no: int) -> Hit:
        """One 条 of a law as a hit (all its parts), for links such as 《信访工作条例》第三十四条."""
        document = self.document(doc_id)
        parts = self.store.article_chunks(document.doc_id, article_no)
        if not parts:
            raise UnknownDocumentError(f"《{document.title}》没有第{article_no}条")
        return self.store.hit(parts[0], 1.0)

    def info(self) -> dict:
        """What the store holds: where, when built, with which model and chunker, and its documents."""
        manifest = self.store.manifest
        counts = self.store.chunk_counts()
        handles = self.store.handles
        questions = handles.count_by_document() if handles is not None else {}
        return {
            **self.store.describe(),
            "built_at": manifest.get("built_at"),
            "embedding": manifest.get("embedding"),
            # Questions may be embedded with a tuned encoder (kb/embedding/model/tuning.py); this names it.
            "question_encoder": self.embedder.query_fingerprint,
            "chunker_version": manifest.get("chunker_version"),
            "identity": asdict(self.identity),
            # Which of them the knowledge base sets itself; the others are the deployment's settings.
            "identity_own": sorted(manifest.get("identity", {})),
            "documents": [
                {"doc_id": d.doc_id, "title": d.title, "kind": d.kind, "date": d.doc_date, "source": d.source,
                 "chunks": counts.get(doc_id, 0), "questions": questions.get(doc_id, 0)}
                for doc_id, d in self.documents.items()
            ],
            "chunks": self.passage_count(),
            "questions": len(handles) if handles is not None else 0,
        }

    def attached_questions(self, doc_id: str) -> list[dict]:
        """The questions attached to a document's passages (its sidecar, as indexed), in passage order:
        {"q", "citation", "article_no" or "chunk_id", "form"}."""
        document = self.document(doc_id)
        handles = self.store.handles
        if handles is None:
            return []
        rows = [h for h in handles.handles if h.doc_id == doc_id]
        order = {c.article_no if c.article_no is not None else c.chunk_id: c.seq
                 for c in reversed(self.document_chunks(doc_id))}
        rows.sort(key=lambda h: order.get(h.target, 0))
        return [{"q": h.question, "citation": citation_for(document.title, article_label(h.target))
                 if isinstance(h.target, int) else citation_for(document.title, None),
                 **({"article_no": h.target} if isinstance(h.target, int) else {"chunk_id": h.target}),
                 "form": h.form} for h in rows]
