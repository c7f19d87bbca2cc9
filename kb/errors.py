"""One base class for every error a user can cause or fix, so each edge (CLI, HTTP) reports them the same way."""


class KnowledgeBaseError(Exception):
    """An expected failure whose message tells the user what went wrong and what to do."""


class QueryError(KnowledgeBaseError, ValueError):
    """A question or search parameter the knowledge base cannot take."""


class UnknownDocumentError(KnowledgeBaseError, LookupError):
    """No document (or no such article in it) under the id asked for."""


class StoreUnavailableError(KnowledgeBaseError):
    """The store (a Milvus server) cannot be reached for now: down, restarting or unreachable. Nothing is wrong
    with the question or the knowledge base; asking again later may succeed (HTTP 503 with Retry-After)."""

    def __init__(self, address: str, detail: str = "") -> None:
        self.address = address  # already without credentials
        cause = f" ({detail})" if detail else ""
        super().__init__(f"知识库存储暂时无法连接：Milvus {address} 没有响应（可能正在重启或已停止）。"
                         f"Milvus at {address} cannot be reached{cause}: check that it is running and that "
                         f"KB_MILVUS_URI points to it; requests succeed again once it is back")


class IndexProblem(KnowledgeBaseError):
    """A store's index cannot be used (missing, damaged, or written by another program or model); the message
    says what to run. Both stores raise these, so callers need not know which store they have."""


class IndexMissingError(IndexProblem):
    pass


class IndexCorruptError(IndexProblem):
    pass


class IndexMismatchError(IndexProblem):
    pass
