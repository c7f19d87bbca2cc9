"""Short-lived conversations kept by the server: the recent questions of a `conversation_id` (the JSON API) or
of a WeChat user (OpenID), so a follow-up such as 「那要是不满意呢？」 is read with the question before it.

Held in memory only, for a few minutes after the last question, and bounded in number: a restart or a quiet
pause starts every conversation afresh, and nothing of it is written anywhere.

A conversation_id is issued by the server only and belongs to the client it was issued to: 128 random bits and
a MAC over them and the client's key (its address, server/clients.py) under a server secret. Another client
sending it — or a client choosing one, like "1" — is given a new conversation instead, so nobody can read or add
to someone else's. The secret is KB_CONVERSATION_SECRET (the same on every replica) or else random per process.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict

from kb.search.conversation import USED_EARLIER

#: Questions kept per conversation: as many as the library reads a follow-up with.
KEPT_QUESTIONS = USED_EARLIER


_ID_RE = re.compile(r"[0-9a-f]{64}")


class Conversations:
    def __init__(self, ttl_s: float = 600.0, max_conversations: int = 10_000, secret: str = "") -> None:
        self.ttl_s = ttl_s
        self.max_conversations = max_conversations
        self._secret = secret.encode() or secrets.token_bytes(32)
        self._entries: OrderedDict[str, tuple[float, tuple[str, ...]]] = OrderedDict()
        self._lock = threading.Lock()

    def _mac(self, nonce: str, client: str) -> str:
        return hmac.new(self._secret, f"{nonce}|{client}".encode(), hashlib.sha256).hexdigest()[:32]

    def new_id(self, client: str) -> str:
        """A fresh conversation for `client`."""
        nonce = secrets.token_hex(16)
        return nonce + self._mac(nonce, client)

    def claim(self, conversation_id: str | None, client: str) -> str:
        """The id a request continues: its own if it was issued to this client, else a new one."""
        if conversation_id and _ID_RE.fullmatch(conversation_id):
            nonce, mac = conversation_id[:32], conversation_id[32:]
            if hmac.compare_digest(mac, self._mac(nonce, client)):
                return conversation_id
        return self.new_id(client)

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
