"""What one service process holds: the loaded knowledge base (swappable on reload), the question log and
the rate limiter."""

from __future__ import annotations

import threading

from ingest.build import ingest
from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from kb.querylog import QueryLog
from server.jobs import JobRunner
from server.ratelimit import RateLimiter


class ServiceState:
    def __init__(self, settings: Settings, kb: KnowledgeBase, query_log: QueryLog) -> None:
        self.settings = settings
        self._kb = kb
        self._reload_lock = threading.Lock()
        self.query_log = query_log
        self.rate_limiter = RateLimiter(settings.server.rate_per_minute, settings.server.rate_burst)
        self.jobs = JobRunner()

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

    def rebuild(self) -> str:
        """Re-ingest the corpus folder, then reload; the old index answers until the new one is in."""
        report = ingest([self.settings.corpus_dir], self.settings, embedder=self._kb.embedder)
        kb = self.reload()
        return (f"{report.documents} 个文档, {report.chunks} 个片段（新嵌入 {report.chunks - report.reused} 个）, "
                f"用时 {report.seconds:.1f} 秒; 已载入 {len(kb.documents)} 个文档")
