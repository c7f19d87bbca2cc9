"""The checks that tell a passage that answers from one that is only related: year, place, what is asked for."""

from __future__ import annotations

import pytest

from kb.answers.evidence import named_places, shortfall
from kb.schema import Hit

REPORT = Hit(chunk_id="r1", doc_id="r", doc_title="雁石坪镇2024年法治政府建设情况报告", doc_kind="report",
             doc_date="2024", section="", article=None, article_no=None,
             citation="《雁石坪镇2024年法治政府建设情况报告》", text="", score=1.0, start=0, end=0)
LAW = Hit(chunk_id="l1", doc_id="l", doc_title="信访工作条例", doc_kind="law", doc_date="2022-02-25", section="",
          article="第三十四条", article_no=34, citation="《信访工作条例》第三十四条", text="", score=1.0, start=0, end=0)
KNOWN = {"雁石坪镇", "雁石坪"}


def check(question: str, quoted: str, hit: Hit = REPORT):
    return shortfall(question, quoted, hit, lambda name: name in KNOWN)


@pytest.mark.parametrize("question, places", [
    ("唐古拉山镇2024年调解了多少起纠纷？", ["唐古拉山镇"]),
    ("安多县法律援助中心在哪里？", ["安多县"]),
    ("拉萨市城关区的信访局电话是多少？", ["拉萨市"]),
    ("在超市买到假货怎么办？", []),
    ("各乡镇人民政府负责什么？", []),
    ("报告里说镇干部在法治方面有什么不足？", []),
])
def test_named_places(question: str, places: list[str]) -> None:
    assert named_places(question) == places


def test_a_report_of_another_year_is_only_related() -> None:
    gap = check("雁石坪镇2023年调处了多少件矛盾纠纷？", "全镇共排查调处各类矛盾纠纷53件")
    assert gap is not None and gap.reason == "year" and gap.note.startswith("知识库中只有2024年的数据")
    assert check("雁石坪镇2024年调处了多少件矛盾纠纷？", "全镇共排查调处各类矛盾纠纷53件") is None


def test_a_law_has_no_year_to_mismatch() -> None:
    assert check("2023年信访事项多少天内办结？", "应当自受理之日起60日内办结", LAW) is None


def test_an_unknown_place_is_only_related_a_known_one_is_fine() -> None:
    assert check("唐古拉山镇2024年调解了多少起纠纷？", "调处各类矛盾纠纷53件").reason == "place"
    assert check("雁石坪镇2024年调解了多少起纠纷？", "调处各类矛盾纠纷53件") is None


@pytest.mark.parametrize("question, quoted, reason", [
    ("镇公共法律服务站的电话是多少？", "加强镇公共法律服务站建设", "phone"),
    ("镇政府的办公地址在哪里？", "镇政府设在镇上", "address"),
    ("镇政府周末上班吗？", "定期接待群众来访", "hours"),
    ("镇长叫什么名字？", "镇长为副组长", "person"),
    ("雁石坪镇有多少常住人口？", "2024年，雁石坪镇在上级党委领导下", "figure"),
])
def test_what_is_asked_for_must_be_in_the_quote(question: str, quoted: str, reason: str) -> None:
    assert check(question, quoted).reason == reason


@pytest.mark.parametrize("question, quoted", [
    ("法律援助热线电话是多少？", "拨打12348公共法律服务热线"),
    ("调解纠纷要交多少钱？", "人民调解委员会调解民间纠纷，不收取任何费用。"),
    ("村委会几年选一次？", "村民委员会每届任期五年"),
    ("能不能打电话信访？", "可以采用信息网络、书信、电话、传真、走访等形式"),
])
def test_a_quote_holding_what_is_asked_passes(question: str, quoted: str) -> None:
    assert check(question, quoted, LAW) is None
