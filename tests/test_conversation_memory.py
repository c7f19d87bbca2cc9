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


def test_a_conversation_id_belongs_to_the_client_it_was_issued_to() -> None:
    conversations = Conversations(secret="server-secret")
    mine = conversations.new_id("10.0.0.1")
    assert conversations.claim(mine, "10.0.0.1") == mine
    assert conversations.new_id("10.0.0.1") != mine, "unguessable: 128 random bits each"
    for other in [conversations.claim(mine, "10.0.0.2"), conversations.claim("1", "10.0.0.1"),
                  conversations.claim(mine[:32] + "0" * 32, "10.0.0.1"), conversations.claim(None, "10.0.0.1"),
                  Conversations(secret="another-secret").claim(mine, "10.0.0.1")]:
        assert other != mine and len(other) == 64
    assert Conversations(secret="server-secret").claim(mine, "10.0.0.1") == mine, "replicas share the secret"


def test_what_a_follow_up_costs_is_bounded_whatever_history_is_sent() -> None:
    from kb.search.conversation import EARLIER_CHARS, USED_EARLIER, earlier_questions, retrievals_for

    huge = [f"问题{n}" + "长" * 490 for n in range(10)]
    used = earlier_questions(huge)
    assert len(used) == USED_EARLIER and all(len(q) <= EARLIER_CHARS for q in used)
    assert used[-1].endswith("长") and earlier_questions(["短问题？", "  "]) == ["短问题？"]
    assert retrievals_for([]) == 1 and retrievals_for(["一"]) == 6 and retrievals_for(huge) == 11
    assert KEPT_QUESTIONS == USED_EARLIER, "the server keeps only what is read"
