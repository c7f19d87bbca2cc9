"""政务知识库问答: the library. `KnowledgeBase.open(index_dir).search(question)` is the whole public surface.

The names below load on first use, so a tool that needs only a light part of the library (the model file
reader, the configuration) can import it without FAISS, jieba or torch being installed.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

__all__ = ["Chunk", "Document", "Filters", "Hit", "KnowledgeBase", "QueryError"]
_HOME = {"KnowledgeBase": "kb.knowledge_base", "Filters": "kb.knowledge_base", "QueryError": "kb.knowledge_base",
         "Hit": "kb.schema", "Chunk": "kb.schema", "Document": "kb.schema"}

if TYPE_CHECKING:
    from kb.knowledge_base import Filters, KnowledgeBase, QueryError
    from kb.schema import Chunk, Document, Hit


def __getattr__(name: str) -> object:
    if name not in _HOME:
        raise AttributeError(f"module 'kb' has no attribute {name!r}")
    return getattr(import_module(_HOME[name]), name)
