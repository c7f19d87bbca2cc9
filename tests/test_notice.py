"""The notice every answer carries: where it comes from, what the service is not, and where a person helps."""

from __future__ import annotations

import pytest

from kb.config import ContactSettings
from kb.notice import EMERGENCY, GENERATIVE, notice
from server.reply import reply_text

TOWNSHIP = ContactSettings()


def test_an_extracted_answer_says_it_was_selected_automatically_and_where_to_get_help() -> None:
    text = notice("信访事项多久办结？", "extractive", TOWNSHIP)
    assert text.startswith("以上内容由系统从知识库原文中自动摘录，仅供参考，以法律法规原文为准")
    assert "本服务不受理信访和投诉" in text and "12348 公共法律服务热线" in text
    assert "雁石坪镇公共法律服务站" in text and "110" not in text


def test_a_generated_answer_is_labelled_as_written_by_a_language_model() -> None:
    text = notice("信访事项多久办结？", "generative", TOWNSHIP)
    assert text.startswith(GENERATIVE) and "人工智能" in text and "自动摘录" not in text


def test_the_township_configures_its_contacts_in_one_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_TOWNSHIP", "青山镇")
    monkeypatch.setenv("KB_HELP_PHONE", "0999-1234567")
    monkeypatch.setenv("KB_HELP_ADDRESS", "青山镇政府一楼")
    monkeypatch.setenv("KB_HELP_HOURS", "工作日 9:00–17:00")
    text = notice("怎么申请法律援助？", "extractive", ContactSettings())
    assert "青山镇公共法律服务站（电话 0999-1234567，地址 青山镇政府一楼，工作日 9:00–17:00）" in text
    assert "雁石坪" not in text


@pytest.mark.parametrize("question", ["老公家暴怎么办", "他喝醉了就打我", "邻居威胁要烧我家房子", "我不想活了",
                                      "孩子被拐卖了去哪里报案"])
def test_violence_or_danger_brings_the_emergency_numbers_first(question: str) -> None:
    text = notice(question, "extractive", TOWNSHIP)
    assert text.startswith(EMERGENCY) and "110" in text and "12338" in text


@pytest.mark.parametrize("question", ["打官司要多少钱", "威望高的村干部能连任吗", "杀价算不算欺诈"])
def test_ordinary_questions_do_not_raise_an_alarm(question: str) -> None:
    assert "110" not in notice(question, "extractive", TOWNSHIP)


def test_chat_and_wechat_replies_end_with_the_notice() -> None:
    answer = {"answer": "应当自受理之日起60日内办结。[1]", "notice": notice("信访多久办结", "extractive", TOWNSHIP),
              "citations": [{"n": 1, "citation": "《信访工作条例》第三十四条", "doc_date": "2022-02-25"}]}
    text = reply_text(answer)
    assert text.index("参考依据") < text.index("【提示】以上内容由系统") and text.endswith("公共法律服务站。")
    assert reply_text({**answer, "citations": [], "notice": ""}) == answer["answer"]
