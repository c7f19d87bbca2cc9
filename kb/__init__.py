"""政务知识库问答: the library. `KnowledgeBase.open(index_dir).search(question)` is the whole public surface."""

from kb.knowledge_base import Filters, KnowledgeBase, QueryError
from kb.schema import Chunk, Document, Hit

__all__ = ["KnowledgeBase", "Filters", "QueryError", "Hit", "Chunk", "Document"]
