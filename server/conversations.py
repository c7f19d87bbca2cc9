"""Short-lived conversations: the recent questions of a `conversation_id` (the JSON API) or of a WeChat user
(OpenID), so a follow-up such as 「那要是不满意呢？」 is read with the question before it.

What is kept of a conversation is what the library reads a follow-up with (its last KEPT_QUESTIONS questions,
each cut to its last EARLIER_CHARS characters), personal data masked (kb.text.personal), for a few minutes.

An API conversation travels with the client, so that any replica can read a follow-up: the conversation_id is
a token holding those questions and when it was issued, under a MAC (HMAC-SHA256, KB_CONVERSATION_SECRET) that
also covers the client's key (its address, server/clients.py). A token another client sends, one changed or
made up (like "1"), one signed under another secret or one older than the TTL is a new conversation instead,
so nobody can read or add to someone else's. Each answer returns the next token. The secret must be the same
on every replica; without one it is random per process, and a token is honoured only by the process that
issued it.

A WeChat user's conversation is kept by the server under their key: in memory (Conversations), or with
replicas in the shared PostgreSQL log (server/shared.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence

from kb.search.conversation import USED_EARLIER, earlier_questions
from kb.text.personal import mask_personal_data

#: Questions kept per conversation: as many as the library reads a follow-up with.
KEPT_QUESTIONS = USED_EARLIER
#: The longest conversation_id issued: the oldest question is left out of a token that would be longer.
MAX_TOKEN_CHARS = 4096
#: How far ahead of this replica's clock another replica's may be.
CLOCK_SKEW_S = 60
_TOKEN_FORMAT = 1
_MAC_BYTES = 16


def kept(questions: Sequence[str]) -> tuple[str, ...]:
    """What is kept of a conversation with these questions (oldest first): masked, then as the library reads
    them."""
    return tuple(earlier_questions([mask_personal_data(question) for question in questions]))


class ConversationTokens:
    """conversation_ids that carry their conversation (the module docstring says how)."""

    def __init__(self, secret: str = "", ttl_s: float = 600.0) -> None:
        self._secret = secret.encode() or secrets.token_bytes(32)
        self.ttl_s = ttl_s

    def _mac(self, payload: bytes, client: str) -> bytes:
        signed = json.dumps(client).encode() + payload  # the client's JSON string ends unambiguously
        return hmac.new(self._secret, signed, hashlib.sha256).digest()[:_MAC_BYTES]

    def issue(self, questions: Sequence[str], client: str) -> str:
        """The conversation_id of a conversation with these questions (oldest first), for `client` only."""
        carried = list(kept(questions))
        while True:
            payload = json.dumps([_TOKEN_FORMAT, int(time.time()), carried], ensure_ascii=False,
                                 separators=(",", ":")).encode()
            token = base64.urlsafe_b64encode(self._mac(payload, client) + payload).rstrip(b"=").decode()
            if len(token) <= MAX_TOKEN_CHARS or not carried:
                return token
            carried.pop(0)

    def read(self, token: str | None, client: str) -> tuple[str, ...]:
        """The questions of a valid token issued to `client`, oldest first; () for anything else."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return ()
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return ()
        mac, payload = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(payload, client)):
            return ()
        try:
            form, issued, questions = json.loads(payload)
        except ValueError:  # only this program's own tokens get here; a future format is a new conversation
            return ()
        age = time.time() - issued
        if form != _TOKEN_FORMAT or not -CLOCK_SKEW_S <= age <= self.ttl_s:
            return ()
        return tuple(questions)


class Conversations:
    """Conversations kept in this process's memory by key, for a few minutes after their last question and
    bounded in number: a restart or a quiet pause starts every conversation afresh."""

    def __init__(self, ttl_s: float = 600.0, max_conversations: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_conversations = max_conversations
        self._entries: OrderedDict[str, tuple[float, tuple[str, ...]]] = OrderedDict()
        self._lock = threading.Lock()

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
            earlier = self._entries.pop(key, (0.0, ()))[1]
            self._entries[key] = (time.monotonic(), kept((*earlier, question)))
            while len(self._entries) > self.max_conversations:
                self._entries.popitem(last=False)

    def forget(self, key: str) -> None:
        """Drop a conversation at its user's request, so that the next question is read on its own."""
        with self._lock:
            self._entries.pop(key, None)
