"""Quotes are whole provisions: a short article whole, else the 款 that answers, a 项 always with its stem."""

from __future__ import annotations

from kb.answers.quote import QuoteChooser, is_item, paragraphs, quote_length

LIST_ARTICLE = (
    "第四十六条 有关机关、单位及其工作人员有下列情形之一的，由其上级机关责令改正；构成犯罪的，依法追究刑事责任：\n\n"
    + "".join(f"（{n}）{text}；\n\n" for n, text in [
        ("一", "对待信访人态度恶劣、作风粗暴，损害党群干群关系" + "，情节较重" * 12),
        ("二", "在处理信访事项过程中吃拿卡要、谋取私利" + "，情节较重" * 12),
        ("三", "对规模性集体访、负面舆情等处置不力，导致事态扩大" + "，情节较重" * 12),
        ("四", "将信访人的检举、揭发材料透露、转给被检举、揭发的人员" + "，情节较重" * 12),
        ("五", "打击报复信访人"),
    ])
    + "（六）其他违规违纪违法的情形。"
)
TWO_CLAUSES = (
    "第十一条 村民委员会主任、副主任和委员，由村民直接选举产生。\n\n村民委员会每届任期五年，届满应当及时举行换届选举。"
)
LONG_CLAUSES = (
    "第九条 " + "人民调解委员会应当建立健全各项调解工作制度，听取群众意见，接受群众监督。" * 4 + "\n\n"
    "人民调解委员会调解民间纠纷，不收取任何费用。\n\n"
    + "调解协议书自各方当事人签名、盖章或者按指印之日起生效，由当事人各执一份。" * 4
)


def chooser(question: str, asks: list[str] | None = None) -> QuoteChooser:
    return QuoteChooser(question, asks or [], whole_chars=200, max_chars=200)


def pieces(text: str, quote) -> list[str]:
    return [text[s:e] for s, e in quote]


def test_paragraphs_drop_the_article_label_and_blank_lines() -> None:
    assert pieces(TWO_CLAUSES, paragraphs(TWO_CLAUSES)) == [
        "村民委员会主任、副主任和委员，由村民直接选举产生。", "村民委员会每届任期五年，届满应当及时举行换届选举。"]


def test_a_short_article_is_quoted_whole() -> None:
    quote = chooser("村委会几年选一次？", ["period"]).best(TWO_CLAUSES)
    assert pieces(TWO_CLAUSES, quote) == pieces(TWO_CLAUSES, paragraphs(TWO_CLAUSES))


def test_an_item_comes_with_its_stem_and_only_the_items_that_answer() -> None:
    quote = chooser("有人打击报复信访人怎么处理？").best(LIST_ARTICLE)
    text = pieces(LIST_ARTICLE, quote)
    assert text[0].startswith("有关机关") and text[0].endswith("：")
    assert text[1:] == ["（五）打击报复信访人；"]


def test_a_question_asking_for_a_list_gets_the_list_from_the_top() -> None:
    quote = chooser("有哪些情形要被处理？", ["list"]).best(LIST_ARTICLE)
    assert not is_item(LIST_ARTICLE, quote[0]) and is_item(LIST_ARTICLE, quote[1])
    assert pieces(LIST_ARTICLE, quote)[1].startswith("（一）")
    assert len(quote) >= 4 and quote_length(quote[1:]) <= 400  # as many whole items as fit, never cut mid-item
    assert all(LIST_ARTICLE[e - 1] in "；。" for _, e in quote[1:])


def test_a_long_article_is_quoted_by_the_clause_that_answers() -> None:
    quote = chooser("调解纠纷要交钱吗？", ["amount"]).best(LONG_CLAUSES)
    assert pieces(LONG_CLAUSES, quote) == ["人民调解委员会调解民间纠纷，不收取任何费用。"]


def test_a_clause_too_long_to_quote_is_cut_to_its_best_sentences() -> None:
    text = "第一条 " + "。".join(f"第{n}句话讲别的事情" for n in range(40)) + "。协议书自签名之日起生效。其后一句。"
    quote = chooser("协议书什么时候生效？", ["period"]).best(text)
    assert pieces(text, quote) == ["协议书自签名之日起生效。其后一句。"]
