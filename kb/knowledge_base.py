"""The library's front door: open an index, search it, ask it, browse its documents.

A thin facade: the loaded index and its views live in kb.index_view, retrieval in kb.retrieve, answers in
kb.answer. The CLI, the HTTP API, WeChat and any embedding backend only translate to these few methods.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from kb.answer import Answer, answer
from kb.answerable import AnswerModel
from kb.config import AnswerParams, ContactSettings, FollowUpParams, RetrievalParams, Settings, load_settings
from kb.conversation import retrieve_in_context
from kb.embed import Embedder
from kb.errors import QueryError, UnknownDocumentError
from kb.generate import GeneratorConfig
from kb.index_view import Filters, IndexView
from kb.notice import notice
from kb.retrieve import MAX_TOP_K, METHODS, Retrieval, Retriever
from kb.schema import Chunk, Document, Hit
from kb.store import check_model, load_index

__all__ = ["KnowledgeBase", "Filters", "QueryError", "UnknownDocumentError", "MAX_TOP_K", "METHODS"]


class KnowledgeBase:
    """A loaded index and the model that made it. Thread-safe for concurrent searches."""

    def __init__(self, view: IndexView, embedder: Embedder, params: RetrievalParams | None = None,
                 answer_params: AnswerParams | None = None, generator: GeneratorConfig | None = None,
                 contacts: ContactSettings | None = None) -> None:
        check_model(view.manifest, embedder.model_id, embedder.fingerprint, embedder.dimension)
        self.view = view
        self.embedder = embedder
        self.answer_params = answer_params or AnswerParams()
        self.generator = generator
        self.contacts = contacts or ContactSettings()
        self.follow_up_params = FollowUpParams()
        # Fitted for the default model (kb/answer_models/); another model weighs closeness and shared words only.
        self.answer_model = AnswerModel.for_model(embedder.fingerprint) or AnswerModel.from_params(self.answer_params)
        self.retriever = Retriever(view, embedder, params or RetrievalParams())

    @classmethod
    def open(cls, index_dir: str | Path | None = None, settings: Settings | None = None,
             embedder: Embedder | None = None) -> "KnowledgeBase":
        """Load the index (checked: format, chunker, checksums, model) and the model, once."""
        settings = settings or load_settings()
        view = IndexView(load_index(Path(index_dir) if index_dir else settings.index_dir))
        return cls(view, embedder or Embedder(settings), settings.retrieval, settings.answer, settings.llm.generator(),
                   settings.contacts)

    @property
    def params(self) -> RetrievalParams:
        return self.retriever.params

    def with_params(self, params: RetrievalParams) -> "KnowledgeBase":
        """The same loaded index and model, searched with other retrieval parameters (benchmarks, tuning)."""
        return KnowledgeBase(self.view, self.embedder, params, self.answer_params, self.generator, self.contacts)

    @property
    def documents(self) -> dict[str, Document]:
        return self.view.documents

    @property
    def chunks(self) -> list[Chunk]:
        return self.view.chunks

    def search(self, query: str, top_k: int = 5, filters: Mapping | Filters | None = None,
               method: str | None = None) -> list[Hit]:
        """The passages that best answer `query`, best first, one hit per 条."""
        return self.retrieve(query, top_k, filters, method).hits

    def retrieve(self, query: str, top_k: int = 5, filters: Mapping | Filters | None = None,
                 method: str | None = None) -> Retrieval:
        """Hits plus the evidence the answer stage weighs (how close in meaning the best passage is)."""
        filters = filters if isinstance(filters, Filters) else Filters.from_mapping(filters)
        return self.retriever.retrieve(query, top_k, filters, method)

    def ask(self, question: str, filters: Mapping | Filters | None = None, passages: int | None = None,
            history: Sequence[str] = ()) -> Answer:
        """An extractive answer with [n] citations, or a plain "no answer" when the evidence is weak.

        `history`: the conversation's earlier questions, oldest first; a follow-up such as 「那要是不满意呢？」
        is then read with the previous question (kb/conversation.py), a new topic on its own."""
        started = time.perf_counter()
        filters = filters if isinstance(filters, Filters) else Filters.from_mapping(filters)
        found = retrieve_in_context(question, history, passages or self.answer_params.passages, filters,
                                    self.retrieve, self.follow_up_params)
        result = answer(question, found.retrieval, self.view.lexical, self.answer_params, self.generator,
                        found.follow_up_of, self.view.mentions, self.answer_model)
        result.notice = notice(question, result.mode, self.contacts)
        result.took_ms = round((time.perf_counter() - started) * 1000, 1)
        return result

    def query_terms(self, query: str) -> list[str]:
        """The words of `query` the lexical index knows (for highlighting)."""
        return self.view.lexical.query_terms(query)

    def document(self, doc_id: str) -> Document:
        return self.view.document(doc_id)

    def document_chunks(self, doc_id: str) -> list[Chunk]:
        return [self.chunks[r] for r in self.view.rows_of(self.document(doc_id).doc_id)]

    def article(self, doc_id: str, article_no: int) -> Hit:
        """One 条 of a law as a hit (all its parts), for links such as 《信访工作条例》第三十四条."""
        return self.view.article(doc_id, article_no)

    def info(self) -> dict:
        """What the index holds: where, when built, with which model and chunker, and its documents."""
        manifest = self.view.manifest
        counts = np.bincount(self.view.row_doc, minlength=len(self.documents))
        return {
            "index_dir": str(self.view.path),
            "built_at": manifest.get("built_at"),
            "embedding": manifest.get("embedding"),
            # Questions may be embedded with a tuned encoder (kb/model/tuning.py); this names it.
            "question_encoder": self.embedder.query_fingerprint,
            "chunker_version": manifest.get("chunker_version"),
            "documents": [
                {"doc_id": d.doc_id, "title": d.title, "kind": d.kind, "date": d.doc_date, "source": d.source,
                 "chunks": int(counts[i])}
                for i, d in enumerate(self.documents.values())
            ],
            "chunks": len(self.chunks),
        }
