"""What one service process holds: the loaded knowledge base (swappable on reload), the question log and
the rate limiter."""

from __future__ import annotations

import threading

from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from kb.querylog import QueryLog
from server.ratelimit import RateLimiter


class ServiceState:
    def __init__(self, settings: Settings, kb: KnowledgeBase, query_log: QueryLog) -> None:
        self.settings = settings
        self._kb = kb
        self._reload_lock = threading.Lock()
        self.query_log = query_log
        self.rate_limiter = RateLimiter(settings.server.rate_per_minute, settings.server.rate_burst)

    @property
    def kb(self) -> KnowledgeBase:
        """The current knowledge base. A request keeps the one it started with, so a reload drops nothing."""
        return self._kb

    def reload(self) -> KnowledgeBase:
        """Load the newest index beside the old one, then swap; on failure the old one stays in use."""
        with self._reload_lock:
            fresh = KnowledgeBase.open(settings=self.settings, embedder=self._kb.embedder)
            self._kb = fresh
            return fresh
