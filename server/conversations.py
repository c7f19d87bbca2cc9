"""Short-lived conversations kept by the server: the recent questions of a `conversation_id` (the JSON API) or
of a WeChat user (OpenID), so a follow-up such as 「那要是不满意呢？」 is read with the question before it.

Held in memory only, for a few minutes after the last question, and bounded in number: a restart or a quiet
pause starts every conversation afresh, and nothing of it is written anywhere.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict

#: Questions kept per conversation (the library reads a follow-up with the most recent one).
KEPT_QUESTIONS = 3


class Conversations:
    def __init__(self, ttl_s: float = 600.0, max_conversations: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_conversations = max_conversations
        self._entries: OrderedDict[str, tuple[float, tuple[str, ...]]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    def history(self, key: str) -> tuple[str, ...]:
        """The conversation's recent questions, oldest first; () when unknown or expired."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or time.monotonic() - entry[0] > self.ttl_s:
                self._entries.pop(key, None)
                return ()
            return entry[1]

    def add(self, key: str, question: str) -> None:
        """Remember a question; the least recently used conversation goes when there are too many."""
        with self._lock:
            kept = self._entries.pop(key, (0.0, ()))[1]
            self._entries[key] = (time.monotonic(), (*kept, question)[-KEPT_QUESTIONS:])
            while len(self._entries) > self.max_conversations:
                self._entries.popitem(last=False)

    def forget(self, key: str) -> None:
        """Drop a conversation at its user's request, so that the next question is read on its own."""
        with self._lock:
            self._entries.pop(key, None)
