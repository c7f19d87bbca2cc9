"""The asker's name, address and numbers do not change the answer: they are left out before retrieval and the
answer/no-answer decision (kb/text/personal.py), and nothing else of the question is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import CORPUS_DIR, DEV_SET

from kb.config import PROJECT_ROOT
from kb.knowledge_base import KnowledgeBase
from kb.text.personal import mask_personal_data, without_personal_details

QUESTION = "信访事项多久办结？"


@pytest.mark.parametrize(
    ("asked", "left"),
    [
        # the example: name, phone and address before the question
        ("我叫王建国，电话13912345678，家住雁石坪镇东风村三组，信访事项多久办结？", QUESTION),
        # names: every way of introducing oneself
        ("我叫王建国，信访事项多久办结？", QUESTION),
        ("我名叫王建国，信访事项多久办结？", QUESTION),
        ("我是王建国，信访事项多久办结？", QUESTION),
        ("本人王建国，信访事项多久办结？", QUESTION),
        ("本人是李秀英。信访事项多久办结？", QUESTION),
        ("姓名：王建国，信访事项多久办结？", QUESTION),
        ("姓名:王建国 信访事项多久办结？", QUESTION),
        ("我的名字是李秀英，信访事项多久办结？", QUESTION),
        ("本人姓名王建国，信访事项多久办结？", QUESTION),
        ("我姓王，叫王建国，信访事项多久办结？", QUESTION),
        ("我姓王，信访事项多久办结？", QUESTION),
        ("我姓王，叫建国，信访事项多久办结？", QUESTION),
        ("我姓欧阳，叫欧阳建国，信访事项多久办结？", QUESTION),
        ("我叫扎西多吉，信访事项多久办结？", QUESTION),  # Tibetan names have no surname
        ("我是卓玛，信访事项多久办结？", QUESTION),
        ("我叫王建国。信访事项多久办结？", QUESTION),  # a sentence of its own goes with its 。
        # addresses, down to the house
        ("家住雁石坪镇东风村三组，信访事项多久办结？", QUESTION),
        ("我家住在雁石坪镇东风村三组5号，信访事项多久办结？", QUESTION),
        ("住址：青海省格尔木市唐古拉山镇，信访事项多久办结？", QUESTION),
        ("地址：西宁市城中区幸福路12号3单元201室，信访事项多久办结？", QUESTION),
        ("我住在东风村，信访事项多久办结？", QUESTION),
        # numbers with their labels, half- or full-width
        ("电话：13912345678，信访事项多久办结？", QUESTION),
        ("我的手机号是138 0013 8000，信访事项多久办结？", QUESTION),
        ("手机号码１３９１２３４５６７８，信访事项多久办结？", QUESTION),
        ("联系方式：0979-8412345，信访事项多久办结？", QUESTION),
        ("身份证号11010519491231002X，信访事项多久办结？", QUESTION),
        ("银行卡号6222 0212 3456 7890 123，信访事项多久办结？", QUESTION),
        ("邮箱wangjg@163.com，信访事项多久办结？", QUESTION),
        ("13912345678，信访事项多久办结？", QUESTION),  # a number with no label
        # details after the question, or between its clauses
        ("信访事项多久办结？我叫王建国，电话13912345678。", QUESTION),
        ("信访事项多久办结？我的手机号是138 0013 8000，邮箱wangjg@163.com。", QUESTION),
        ("信访事项多久办结，我叫王建国，电话13912345678。", "信访事项多久办结。"),
        ("信访事项多久办结 13912345678", "信访事项多久办结"),
        ("您好，我叫王建国，信访事项多久办结？", "您好，信访事项多久办结？"),
        ("我叫王建国想问一下信访事项多久办结？", "想问一下信访事项多久办结？"),
        ("您好，我叫王建国想问一下信访事项多久办结？", "您好，想问一下信访事项多久办结？"),
        ("我叫王建国，今年65岁，儿子不给赡养费怎么办？", "今年65岁，儿子不给赡养费怎么办？"),
        ("工资卡6222021234567890没收到钱怎么办？", "工资卡没收到钱怎么办？"),
    ],
)
def test_personal_details_are_left_out(asked: str, left: str) -> None:
    assert without_personal_details(asked) == left


@pytest.mark.parametrize(
    "question",
    [
        # what someone is, not who: the question needs it
        "我是农民工，被拖欠工资怎么办？",
        "我是村民，宅基地被占了怎么办？",
        "我是高中生，能申请法律援助吗？",
        "我是申请人，复议期限是多久？",
        "我是江西人，在这里打工被欠薪怎么办？",
        "我是党员，能参加信访吗？",
        "我是房东，租客不交房租怎么办？",
        "我是原告，对方不出庭怎么办？",
        "我是苗族，有什么政策？",
        "我是单亲妈妈，能申请低保吗？",
        "我是寡妇，婆家不让我继承遗产怎么办？",
        "我是王建国的家属，他被拘留了怎么办？",  # someone else's name, part of the question
        "孩子的名字叫张三，能改名吗？",
        # 我叫/本人/我姓 that introduce no one
        "我叫不来人，邻居纠纷怎么办？",
        "我叫车来拉货，被扣了怎么办？",
        "本人同意，遗嘱是否有效？",
        "本人申请，多久办结？",
        "本人去不了呢？",
        "没有本人陈述，能处罚吗？",  # 陈述 is tagged as a name in the dictionary, but is a common word
        "我姓名写错了怎么办？",
        # where one lives, when that is what the question is about
        "我住在农村，宅基地能卖吗？",
        "我住在城中村，拆迁补偿怎么算？",
        "我家住在偏远山村，怎么申请法律援助？",
        "住在小区里，物业不管怎么办？",
        "我住在老旧小区，能加装电梯吗？",
        "父母和我们住在一起，赡养费怎么算？",
        "住房公积金怎么提取？",
        "送达地址确认书有什么用？",
        "法律援助中心的地址在哪里？",
        "法律援助中心的联系方式是什么？",
        "镇公共法律服务站的电话是多少？",
        # numbers of the law, years and amounts
        "见民法典第1079条，离婚需要什么条件？",
        "2023年调处了多少件矛盾纠纷？",
        "借了5000元还不上怎么办？",
        "工资13000元要交多少税？",
        "请拨打12348咨询",
        "2024.01.15提交的申请，多久受理？",
        # nothing but details: something must be asked, so the question stays whole
        "我叫王建国",
        "13912345678",
        "   ",
    ],
)
def test_nothing_but_personal_details_is_left_out(question: str) -> None:
    assert without_personal_details(question) == question


def test_leaving_out_twice_changes_nothing_more() -> None:
    once = without_personal_details("我叫王建国，电话13912345678，家住雁石坪镇东风村三组，信访事项多久办结？")
    assert without_personal_details(once) == once


@pytest.mark.parametrize(
    "question",
    ["手机13800138000，卡号6222021234567890，邮箱a@b.cn，信访事项多久办结？",
     "身份证 440301 19900101 1234 丢了怎么补办？", "市民热线0755-86013388转123怎么打不通？",
     "发到zhang.san@example.gov.cn可以吗？", "号码８６１９９１２３４５６７８被冒用了怎么办？"],
)
def test_every_number_the_log_masks_is_left_out(question: str) -> None:
    """One detection for both: what retrieval sees holds nothing the log would have to mask."""
    left = without_personal_details(question)
    assert left != question and mask_personal_data(left) == left


def _questions(path: Path) -> list[str]:
    """A question set's questions and the earlier questions of its conversations."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [q for row in rows for q in (*row.get("history", ()), row["q"])]


def test_no_question_of_the_question_sets_loses_a_word() -> None:
    """Citizens' questions written without personal details (bench/data, and the dev set when present):
    none may change."""
    paths = sorted((PROJECT_ROOT / "bench" / "data").glob("*.jsonl")) + ([DEV_SET] if DEV_SET.is_file() else [])
    questions = [q for path in paths for q in _questions(path)]
    assert len(questions) > 1000
    assert [q for q in questions if without_personal_details(q) != q] == []


def test_no_line_of_the_corpus_loses_a_word() -> None:
    """A follow-up is also searched with a passage's own text (kb/search/conversation.py), which must come through whole."""
    lines = [line for path in sorted(CORPUS_DIR.glob("*.md"))
             for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(lines) > 1000
    assert [line for line in lines if without_personal_details(line) != line] == []


# --- end to end over the real corpus and model ---------------------------------------------------------------

#: Each question once with each form of details; answerable, no answer, and one the evidence check would call
#: unanswered if the asker's 「电话是…」 were read as asking for a phone number.
QUESTIONS = ("信访事项多久办结？", "自己亲手写的遗嘱有效吗？", "对行政处罚决定不服，申请行政复议的期限是多久？",
             "红烧肉怎么做？")
DETAILS = (
    "我叫王建国，电话13912345678，家住雁石坪镇东风村三组，{}",
    "本人李秀英，身份证号11010519491231002X。{}",
    "姓名：扎西多吉 联系电话：0979-8412345 {}",
    "{}我的电话是138 0013 8000，邮箱wangjg@163.com。",
    "我姓王，叫王建国，住址：青海省格尔木市唐古拉山镇幸福路12号，银行卡号6222021234567890，{}",
)
WITH_DETAILS = [(question, form.format(question)) for question in QUESTIONS for form in DETAILS]


@pytest.mark.slow
@pytest.mark.parametrize(("plain", "asked"), WITH_DETAILS)
def test_details_do_not_change_the_passages_searched(corpus_kb: KnowledgeBase, plain: str, asked: str) -> None:
    assert [h.chunk_id for h in corpus_kb.search(asked, top_k=10)] == \
        [h.chunk_id for h in corpus_kb.search(plain, top_k=10)]


@pytest.mark.slow
@pytest.mark.parametrize(("plain", "asked"), WITH_DETAILS)
def test_details_do_not_change_the_answer(corpus_kb: KnowledgeBase, plain: str, asked: str) -> None:
    with_details, without = corpus_kb.ask(asked), corpus_kb.ask(plain)
    assert (with_details.answerable, with_details.related, with_details.confidence) == \
        (without.answerable, without.related, without.confidence)
    assert [c.hit.chunk_id for c in with_details.citations] == [c.hit.chunk_id for c in without.citations]
    assert [h.chunk_id for h in with_details.related_passages] == [h.chunk_id for h in without.related_passages]
    assert with_details.answer == without.answer
    assert with_details.question == asked  # what the citizen typed, as typed


@pytest.mark.slow
@pytest.mark.parametrize("form", DETAILS)
def test_details_in_an_earlier_question_do_not_change_a_follow_up(corpus_kb: KnowledgeBase, form: str) -> None:
    follow_up = "那要是对处理意见不满意呢？"
    with_details = corpus_kb.ask(follow_up, history=[form.format(QUESTION)])
    without = corpus_kb.ask(follow_up, history=[QUESTION])
    assert without.follow_up_of == QUESTION
    assert (with_details.follow_up_of, with_details.answerable) == (without.follow_up_of, without.answerable)
    assert [c.hit.chunk_id for c in with_details.citations] == [c.hit.chunk_id for c in without.citations]
