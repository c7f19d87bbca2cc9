"""One base class for every error a user can cause or fix, so each edge (CLI, HTTP) reports them the same way."""


class KnowledgeBaseError(Exception):
    """An expected failure whose message tells the user what went wrong and what to do."""
