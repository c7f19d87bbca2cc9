"""The notice every answer carries: where it comes from, what the service is not, where a person helps, and, when
the question speaks of danger, 110 and the help line for its kind first (the kind decided by kb/answers/safety.py from the
question's meaning, with the real model)."""

from __future__ import annotations

from fnmatch import fnmatch

import pytest
from conftest import make_small_corpus

from ingest.build import ingest
from kb.answers.notice import (
    DANGER_NOW,
    EXTRACTIVE,
    GENERATIVE,
    HELP_LINES,
    NOT_A_CHANNEL,
    danger_lines,
    help_line,
    notice,
)
from kb.answers.safety import PHRASINGS, Danger, SafetyCheck
from kb.config import PROJECT_ROOT, Identity, Settings
from kb.embedding.embedder import Embedder
from kb.knowledge_base import KnowledgeBase
from server.reply import reply_text

TOWNSHIP = Identity()
#: The numbers each kind of danger must show (110 for every one).
NUMBERS = {Danger.VIOLENCE: ("110",), Danger.DOMESTIC: ("110", "12338"), Danger.CHILD: ("110", "12355"),
           Danger.SELF_HARM: ("110", "12356", "120"), Danger.ELDER: ("110", "12345", "村委会")}


def test_an_extracted_answer_says_it_was_selected_automatically_and_where_to_get_help() -> None:
    text = notice("extractive", TOWNSHIP)
    assert text.startswith("以上内容由系统从知识库原文中自动摘录，仅供参考，以法律法规原文为准")
    assert "本服务不受理信访和投诉" in text and "12348 公共法律服务热线" in text
    assert "雁石坪镇公共法律服务站" in text and "110" not in text


def test_a_generated_answer_is_labelled_as_written_by_a_language_model() -> None:
    text = notice("generative", TOWNSHIP)
    assert text.startswith(GENERATIVE) and "人工智能" in text and "自动摘录" not in text


def test_the_township_configures_its_contacts_in_one_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_TOWNSHIP", "青山镇")
    monkeypatch.setenv("KB_HELP_PHONE", "0999-1234567")
    monkeypatch.setenv("KB_HELP_ADDRESS", "青山镇政府一楼")
    monkeypatch.setenv("KB_HELP_HOURS", "工作日 9:00–17:00")
    text = notice("extractive", Identity())
    assert "青山镇公共法律服务站（电话 0999-1234567，地址 青山镇政府一楼，工作日 9:00–17:00）" in text
    assert "雁石坪" not in text


@pytest.mark.parametrize("danger", list(Danger))
def test_each_kind_of_danger_puts_110_and_its_own_help_line_first(danger: Danger) -> None:
    text = notice("extractive", TOWNSHIP, danger)
    assert text.startswith(DANGER_NOW) and all(number in text for number in NUMBERS[danger])
    others = {line for kind, line in HELP_LINES.items() if kind != danger}
    assert not any(line in text for line in others)  # one line per kind, no other kind's
    assert text.endswith(EXTRACTIVE + NOT_A_CHANNEL + help_line(TOWNSHIP))  # the source, not-a-channel, 12348


def test_every_kind_but_violence_has_a_help_line_of_its_own() -> None:
    assert set(HELP_LINES) == set(Danger) - {Danger.VIOLENCE}


def test_chat_and_wechat_replies_end_with_the_notice() -> None:
    answer = {"answer": "应当自受理之日起60日内办结。[1]", "notice": notice("extractive", TOWNSHIP),
              "citations": [{"n": 1, "citation": "《信访工作条例》第三十四条", "doc_date": "2022-02-25"}]}
    text = reply_text(answer)
    assert text.index("参考依据") < text.index("【提示】以上内容由系统") and text.endswith("公共法律服务站。")
    assert reply_text({**answer, "citations": [], "notice": ""}) == answer["answer"]


def test_a_reply_shows_the_danger_lines_as_the_notice_gives_them() -> None:
    answer = {"answer": "知识库中没有找到能回答这个问题的内容。", "citations": [],
              "notice": notice("extractive", TOWNSHIP, Danger.CHILD)}
    assert reply_text(answer).endswith("【提示】" + answer["notice"])


# --- the danger check, with the real model ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def safety(embedder: Embedder) -> SafetyCheck:
    return SafetyCheck.for_embedder(embedder)


@pytest.mark.slow
@pytest.mark.parametrize(("question", "kinds"), [
    # The examples: never among the training phrasings.
    ("我被老公打了怎么办", {Danger.DOMESTIC}),
    ("他说要弄死我", {Danger.VIOLENCE, Danger.DOMESTIC}),  # 「他」 may be her husband: 110 either way
    ("孩子身上老有伤", {Danger.CHILD}),
    ("家暴怎么办", {Danger.DOMESTIC}),
    ("老公家暴怎么办", {Danger.DOMESTIC}),
    ("他喝醉了就打我", {Danger.VIOLENCE, Danger.DOMESTIC}),
    ("邻居威胁要烧我家房子", {Danger.VIOLENCE}),
    ("我不想活了", {Danger.SELF_HARM}),
    ("孩子被拐卖了去哪里报案", {Danger.CHILD}),
])
def test_danger_however_worded_gets_its_help_lines(safety: SafetyCheck, question: str, kinds: set[Danger]) -> None:
    assert safety.danger(question) in kinds


@pytest.mark.slow
@pytest.mark.parametrize("question", ["信访事项多久办结？", "离婚后孩子抚养费怎么算？", "打官司要多少钱",
                                      "殴打他人会被怎么处罚", "打工被欠薪了怎么办", "被罚款了不服怎么办",
                                      "娃打疫苗要带什么", "离婚财产怎么分", "威望高的村干部能连任吗", "杀价算不算欺诈"])
def test_ordinary_questions_do_not_raise_an_alarm(safety: SafetyCheck, question: str) -> None:
    assert safety.danger(question) is None


@pytest.mark.slow
def test_the_threshold_is_chosen_on_the_training_phrasings(safety: SafetyCheck) -> None:
    """Leave-one-out on the shipped phrasings: most danger found, few ordinary questions alarmed."""
    model = safety.model()
    found = [model.decide(scores) is not None for scores in model.training_scores]
    danger = model.training_groups < len(Danger)
    recall = sum(f for f, d in zip(found, danger) if d) / danger.sum()
    false_alarms = sum(f for f, d in zip(found, danger) if not d) / (~danger).sum()
    assert recall >= 0.9 and false_alarms <= 0.1


@pytest.mark.slow
def test_an_answer_to_a_citizen_in_danger_starts_with_the_help_lines(
        tmp_path_factory: pytest.TempPathFactory, settings: Settings, embedder: Embedder) -> None:
    root = tmp_path_factory.mktemp("notice_kb")
    index_dir = root / "index"
    ingest([make_small_corpus(root)], settings.with_(index_dir=index_dir), embedder=embedder)
    kb = KnowledgeBase.open(index_dir, settings=settings.with_(index_dir=index_dir), embedder=embedder)
    assert kb.safety is SafetyCheck.for_embedder(embedder)  # the phrasings are embedded once per model
    in_danger = kb.ask("我被老公打了怎么办").notice
    assert in_danger.startswith(danger_lines(Danger.DOMESTIC) + EXTRACTIVE)
    assert NOT_A_CHANNEL in in_danger and "12348 公共法律服务热线" in in_danger
    assert kb.ask("集市摊位费每天多少钱").notice == notice("extractive", kb.identity)


def test_the_phrasings_ship_with_the_package() -> None:
    """Without them an installed package could not tell danger (kb/answers/safety.py reads them at the first question)."""
    import tomllib

    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["kb"]
    shipped = PHRASINGS.relative_to(PROJECT_ROOT / "kb").as_posix()
    assert any(fnmatch(shipped, pattern) for pattern in patterns)
