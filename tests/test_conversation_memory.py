"""Short-lived conversations: the server's memory (recent questions per key, forgotten after a while, bounded) and
the conversation_id tokens that carry a conversation from replica to replica."""

from __future__ import annotations

import base64
import re
import time

import pytest

from kb.search.conversation import EARLIER_CHARS
from server.conversations import KEPT_QUESTIONS, MAX_TOKEN_CHARS, Conversations, ConversationTokens


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


def test_a_conversation_id_carries_its_questions_to_the_client_it_was_issued_to_only() -> None:
    tokens = ConversationTokens(secret="server-secret")
    mine = tokens.issue(["信访事项多久办结？", "那要是不满意呢？"], "10.0.0.1")
    assert tokens.read(mine, "10.0.0.1") == ("信访事项多久办结？", "那要是不满意呢？")
    assert ConversationTokens(secret="server-secret").read(mine, "10.0.0.1") == tokens.read(mine, "10.0.0.1"), \
        "any replica with the secret reads it"
    assert re.fullmatch(r"[0-9A-Za-z_-]+", mine), "base64url, as the API's pattern allows"
    raw = bytearray(base64.urlsafe_b64decode(mine + "=" * (-len(mine) % 4)))
    raw[-5] ^= 1  # one bit of the questions changed
    tampered = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    for other in [tokens.read(mine, "10.0.0.2"), tokens.read("1", "10.0.0.1"), tokens.read(tampered, "10.0.0.1"),
                  tokens.read(None, "10.0.0.1"), tokens.read("!!", "10.0.0.1"), tokens.read(mine[:-3], "10.0.0.1"),
                  ConversationTokens(secret="another-secret").read(mine, "10.0.0.1")]:
        assert other == ()
    assert tokens.issue([], "10.0.0.1") != tokens.issue([], "10.0.0.2")


def test_a_conversation_id_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = ConversationTokens(secret="s", ttl_s=60)
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now)
    token = tokens.issue(["信访事项多久办结？"], "c")
    monkeypatch.setattr(time, "time", lambda: now + 59)
    assert tokens.read(token, "c") == ("信访事项多久办结？",)
    monkeypatch.setattr(time, "time", lambda: now + 61)
    assert tokens.read(token, "c") == ()
    monkeypatch.setattr(time, "time", lambda: now - 3600)
    assert tokens.read(token, "c") == (), "issued an hour ahead of this clock: not honoured"


def test_a_conversation_id_holds_only_what_is_read_masked_and_bounded() -> None:
    tokens = ConversationTokens(secret="s")
    questions = [f"问题{n}，我的手机13800138000" + "长" * 600 for n in range(5)] + ["身份证11010519491231002X怎么补办？"]
    token = tokens.issue(questions, "c")
    assert len(token) <= MAX_TOKEN_CHARS
    carried = tokens.read(token, "c")
    decoded = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode(errors="replace")
    assert len(carried) == KEPT_QUESTIONS and all(len(q) <= EARLIER_CHARS for q in carried)
    assert carried[-1] == "身份证[身份证号]怎么补办？"
    assert "13800138000" not in decoded and "11010519491231002X" not in decoded
    controls = ConversationTokens(secret="s").issue(["\x01" * 500, "\x02" * 500], "c")
    assert len(controls) <= MAX_TOKEN_CHARS, "JSON escapes cannot make it longer than the bound"


def test_the_server_keeps_masked_questions() -> None:
    conversations = Conversations()
    conversations.add("a", "我的手机13800138000，社保卡怎么补办？")
    assert conversations.history("a") == ("我的手机138****8000，社保卡怎么补办？",)


def test_what_a_follow_up_costs_is_bounded_whatever_history_is_sent() -> None:
    from kb.search.conversation import EARLIER_CHARS, USED_EARLIER, earlier_questions, retrievals_for

    huge = [f"问题{n}" + "长" * 490 for n in range(10)]
    used = earlier_questions(huge)
    assert len(used) == USED_EARLIER and all(len(q) <= EARLIER_CHARS for q in used)
    assert used[-1].endswith("长") and earlier_questions(["短问题？", "  "]) == ["短问题？"]
    assert retrievals_for([]) == 1 and retrievals_for(["一"]) == 6 and retrievals_for(huge) == 11
    assert KEPT_QUESTIONS == USED_EARLIER, "the server keeps only what is read"
