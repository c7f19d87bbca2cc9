"""The server's short-lived conversation memory: recent questions per key, forgotten after a while, bounded."""

from __future__ import annotations

import time

import pytest

from server.conversations import KEPT_QUESTIONS, Conversations


def test_questions_are_kept_oldest_first_and_only_the_last_few() -> None:
    conversations = Conversations()
    for n in range(KEPT_QUESTIONS + 2):
        conversations.add("a", f"问题{n}")
    assert conversations.history("a") == tuple(f"问题{n}" for n in range(2, KEPT_QUESTIONS + 2))
    assert conversations.history("b") == ()


def test_a_quiet_conversation_is_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    conversations = Conversations(ttl_s=60)
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now)
    conversations.add("a", "信访事项多久办结？")
    monkeypatch.setattr(time, "monotonic", lambda: now + 59)
    assert conversations.history("a") == ("信访事项多久办结？",)
    monkeypatch.setattr(time, "monotonic", lambda: now + 61)
    assert conversations.history("a") == ()


def test_the_least_recently_used_conversation_goes_first() -> None:
    conversations = Conversations(max_conversations=2)
    conversations.add("a", "一")
    conversations.add("b", "二")
    conversations.add("a", "三")
    conversations.add("c", "四")
    assert conversations.history("b") == () and conversations.history("a") == ("一", "三")
    assert conversations.history("c") == ("四",)


def test_a_forgotten_conversation_starts_afresh_and_leaves_the_others() -> None:
    conversations = Conversations()
    conversations.add("a", "信访事项多久办结？")
    conversations.add("b", "法律援助向哪里申请？")
    conversations.forget("a")
    conversations.forget("never-seen")
    assert conversations.history("a") == ()
    assert conversations.history("b") == ("法律援助向哪里申请？",)
    conversations.add("a", "离婚后孩子归谁抚养？")
    assert conversations.history("a") == ("离婚后孩子归谁抚养？",)
