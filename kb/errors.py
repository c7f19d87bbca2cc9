"""One base class for every error a user can cause or fix, so each edge (CLI, HTTP) reports them the same way."""


class KnowledgeBaseError(Exception):
    """An expected failure whose message tells the user what went wrong and what to do."""


class QueryError(KnowledgeBaseError, ValueError):
    """A question or search parameter the knowledge base cannot take."""


class UnknownDocumentError(KnowledgeBaseError, LookupError):
    """No document (or no such article in it) under the id asked for."""
