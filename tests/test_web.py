"""The web page in a real browser (Debian's chromium, headless) against the real service, model and corpus.

The page's security headers need no browser: tests/test_web_headers.py checks them in the fast tier.
Screenshots go to the test's temp folder; `make screenshots` (KB_SCREENSHOTS_DIR=docs/screenshots) refreshes the
committed ones.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlparse

import pytest
from conftest import CORPUS_DIR, CORPUS_DOCUMENTS, logged_entries, serve_in_thread

from kb.config import PROJECT_ROOT, Identity, Settings
from kb.knowledge_base import KnowledgeBase
from server.app import create_app
from server.service import ServiceState, open_service
from server.settings import ServerSettings
from server.web import CONTENT_SECURITY_POLICY, mount_web

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed at /usr/bin/chromium", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.slow

QUESTION = "信访事项多长时间办结？"
CITATION = "《信访工作条例》第三十四条"
#: Everyday questions, some of which the ranker is unsure about (so their answers list other candidates).
UNSURE_QUESTIONS = ("邻居的树挡了我家的光怎么办？", "借钱不还怎么办？", "老人去世后房子归谁？", "被狗咬了谁负责？")
#: A question and a follow-up that only makes sense after it, and one that only makes sense after both.
FIRST, FOLLOW_UP, THIRD = "信访事项多久办结？", "那要是对处理意见不满意呢？", "要在多少天内提出？"


@pytest.fixture(scope="module")
def live(corpus_index: Path, corpus_kb: KnowledgeBase, settings: Settings,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ServiceState]]:
    """The real app with the page mounted, served by uvicorn on 127.0.0.1 in a thread."""
    server_settings = replace(ServerSettings(), query_log=tmp_path_factory.mktemp("web") / "querylog.sqlite",
                              admin_key="", cors_origins=(), rate_per_minute=6000, rate_burst=1000, wechat_token="")
    service = open_service(replace(settings, index_dir=corpus_index), server_settings, corpus_kb)
    app = create_app(service)
    mount_web(app)  # idempotent: a second call adds nothing
    with serve_in_thread(app) as base:
        yield base, service


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: the test's temp folder, or KB_SCREENSHOTS_DIR (`make screenshots`)."""
    folder = Path(os.environ["KB_SCREENSHOTS_DIR"]) if os.environ.get("KB_SCREENSHOTS_DIR") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--no-first-run"])
        try:
            yield chromium
        finally:
            chromium.close()


def _open(browser: object, base: str, width: int, height: int) -> tuple[object, list[str]]:
    context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN",
                                  service_workers="block")
    page = context.new_page()
    page.set_default_timeout(30_000)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(base + "/")
    return page, requests


@pytest.fixture
def page(browser: object, live: tuple[str, ServiceState]) -> Iterator[object]:
    """A fresh page (empty localStorage) at desktop size; afterwards, no request may have left 127.0.0.1."""
    page, requests = _open(browser, live[0], 1280, 800)
    yield page
    page.context.close()
    assert requests and all(urlparse(url).hostname == "127.0.0.1" for url in requests), requests


def ask(page: object, question: str) -> object:
    """Type a question, press Enter and return the answer bubble that replaced the pending one."""
    before = page.locator("#log .bubble.answer:not(.pending), #log .bubble.error").count()
    textarea = page.locator("#question")
    textarea.fill(question)
    textarea.press("Enter")
    bubbles = page.locator("#log .bubble.answer:not(.pending), #log .bubble.error")
    sync_api.expect(bubbles).to_have_count(before + 1)
    return bubbles.last


def test_answer_citation_passage_and_full_text(page: object) -> None:
    response = page.reload()
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    answer = ask(page, QUESTION)
    sync_api.expect(answer).not_to_have_class("bubble answer notice")
    citation = answer.locator("button.citation", has_text=CITATION)
    sync_api.expect(citation).to_be_visible()
    sync_api.expect(answer.locator("button.marker").first).to_be_visible()

    citation.click()
    panel = page.locator("#passage")
    sync_api.expect(panel).to_be_visible()
    sync_api.expect(panel.locator("#passage-title")).to_have_text(CITATION)
    sync_api.expect(panel.locator("mark", has_text="60日内办结")).to_be_visible()
    page.keyboard.press("Escape")
    sync_api.expect(panel).to_be_hidden()

    answer.locator("button.marker").first.click()  # the [n] marker opens the same kind of panel
    sync_api.expect(panel).to_be_visible()
    panel.get_by_role("link", name="查看全文").click()
    article = page.locator("#art-34")
    sync_api.expect(article).to_be_visible()
    sync_api.expect(article).to_have_class("block article current")
    sync_api.expect(article).to_contain_text("60日内办结")
    sync_api.expect(article).to_be_in_viewport()
    assert "/art/34" in page.url

    page.fill("#doc-search", "办结")  # find within the document: matches marked, other blocks hidden
    sync_api.expect(page.locator("#doc-body mark").first).to_have_text("办结")
    sync_api.expect(page.locator("#doc-search-count")).to_contain_text("找到")


def test_every_answer_says_what_it_is_and_where_a_person_helps(browser: object, live: tuple[str, ServiceState]) -> None:
    page, _ = _open(browser, live[0], 360, 740)
    try:
        note = page.locator("#ask-hint")  # always there, above the keyboard, 12348 one tap away
        sync_api.expect(note).to_be_visible()
        sync_api.expect(note).to_contain_text("不受理信访和投诉")
        sync_api.expect(note.locator('a[href="tel:12348"]')).to_be_in_viewport()
        answer = ask(page, QUESTION)
        notice = answer.locator(".answer-note")  # compact: 「自动摘录，仅供参考 · 人工帮助 12348」, one line
        sync_api.expect(notice).to_contain_text("自动摘录，仅供参考")
        sync_api.expect(notice).not_to_contain_text("不受理")
        sync_api.expect(notice.locator('a[href="tel:12348"]')).to_have_text("12348")
        line_height = notice.evaluate("n => parseFloat(getComputedStyle(n).lineHeight)")
        assert notice.evaluate("n => n.getBoundingClientRect().height") <= 44 + line_height, "one short line"
        ask(page, "法律援助向哪里申请？")
        # The notice is on screen once: the pinned note, not again in every answer.
        assert page.locator("body").inner_text().count("不受理信访和投诉") == 1
        sync_api.expect(answer.locator(".badge")).to_have_count(0)  # extractive: no AI label
        urgent = ask(page, "老公家暴经常打我，我该怎么办？").locator(".answer-note.urgent")
        sync_api.expect(urgent.locator('a[href="tel:110"]')).to_be_visible()
        sync_api.expect(urgent.locator('a[href="tel:12338"]')).to_be_visible()
    finally:
        page.context.close()


def test_document_list(page: object) -> None:
    page.goto(page.url.split("#")[0] + "#/docs")
    items = page.locator("#docs-list li")
    sync_api.expect(items).to_have_count(CORPUS_DOCUMENTS)
    sync_api.expect(page.locator("#docs-list a", has_text="信访工作条例")).to_be_visible()
    # A 条例 is a regulation, not a law; laws are labelled 法律.
    sync_api.expect(page.locator("#docs-list li", has_text="信访工作条例").locator(".meta")).to_contain_text("法规")
    sync_api.expect(page.locator("#docs-list li", has_text="人民调解法").locator(".meta")).to_contain_text("法律")


def test_out_of_scope_question_gets_the_notice(page: object) -> None:
    answer = ask(page, "今年世界杯冠军是谁？")
    sync_api.expect(answer).to_have_class("bubble answer notice")
    assert answer.locator("button.citation").count() == 0
    assert answer.locator(".bubble-text").inner_text().strip()


def test_unhelpful_feedback_reaches_the_query_log(page: object, live: tuple[str, ServiceState]) -> None:
    answer = ask(page, QUESTION)
    answer.get_by_role("button", name="没帮助").click()
    answer.locator(".feedback-form textarea").fill("想知道能不能延期")
    answer.get_by_role("button", name="提交反馈").click()
    sync_api.expect(answer.locator(".thanks")).to_have_text("感谢反馈")
    entry = logged_entries(live[1], 1)[0]
    assert entry["question"] == QUESTION
    assert [(f["helpful"], f["comment"]) for f in entry["feedback"]] == [(False, "想知道能不能延期")]


def test_markup_in_a_question_is_shown_literally(page: object) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    question = "<script>alert(1)</script>信访"
    ask(page, question)
    sync_api.expect(page.locator("#log .bubble.user .bubble-text").last).to_have_text(question)
    assert page.locator("#log script").count() == 0
    page.reload()  # restored from localStorage: still text
    sync_api.expect(page.locator("#log .bubble.user .bubble-text").last).to_have_text(question)
    assert dialogs == []


def test_errors_keep_the_typed_question(page: object) -> None:
    page.route("**/api/ask", lambda route: route.fulfill(
        status=500, json={"error": {"code": "internal_error", "message": "服务器内部错误，请稍后再试"}}))
    bubble = ask(page, "法律援助向哪里申请？")
    sync_api.expect(bubble).to_have_class("bubble error")
    sync_api.expect(bubble.locator(".bubble-text")).to_have_text("服务器内部错误，请稍后再试")
    sync_api.expect(bubble.locator("button", has_text="重试")).to_be_visible()
    sync_api.expect(page.locator("#question")).to_have_value("法律援助向哪里申请？")
    sync_api.expect(page.locator("#question")).to_be_enabled()

    page.unroute("**/api/ask")
    page.route("**/api/ask", lambda route: route.fulfill(
        status=429, headers={"Retry-After": "7"},
        json={"error": {"code": "rate_limited", "message": "请求太频繁，请稍后再试"}}))
    bubble = ask(page, "法律援助向哪里申请？")
    sync_api.expect(bubble.locator(".bubble-text")).to_have_text("请求太频繁，请 7 秒后再试")

    page.unroute("**/api/ask")
    page.route("**/api/ask", lambda route: route.abort())  # the server is down: not the user's network
    bubble = ask(page, "法律援助向哪里申请？")
    sync_api.expect(bubble).to_contain_text("暂时连不上服务器（不是您的网络问题）")
    sync_api.expect(page.locator("#question")).to_have_value("法律援助向哪里申请？")


def test_conversation_is_kept_for_the_tab_only_and_cleared_after_confirmation(page: object) -> None:
    ask(page, QUESTION)
    page.reload()  # same tab: restored
    sync_api.expect(page.locator("#log .bubble.answer button.citation", has_text=CITATION)).to_be_visible()
    assert page.evaluate("localStorage.length") == 0, "nothing outlives the tab on a shared PC"
    other = page.context.new_page()  # another tab (the next person at a shared PC): nothing of it
    other.goto(page.url)
    sync_api.expect(other.locator("#log .welcome")).to_be_visible()
    sync_api.expect(other.locator("#log .bubble")).to_have_count(0)
    other.close()
    page.once("dialog", lambda dialog: dialog.dismiss())  # 清空 asks first; cancelling keeps everything
    page.get_by_role("button", name="清空对话").click()
    sync_api.expect(page.locator("#log .bubble")).to_have_count(2)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="清空对话").click()
    sync_api.expect(page.locator("#log .bubble")).to_have_count(0)
    page.reload()
    sync_api.expect(page.locator("#log .bubble")).to_have_count(0)
    sync_api.expect(page.locator("#privacy-note")).to_contain_text("关闭即清除")


def test_each_answer_shows_above_the_pinned_input_on_a_phone(browser: object, live: tuple[str, ServiceState]) -> None:
    page, _ = _open(browser, live[0], 360, 740)
    try:
        for question in (QUESTION, "法律援助向哪里申请？", QUESTION):
            answer = ask(page, question)  # the page scrolls in the same task that shows the answer (no animation)
            top, bottom = answer.evaluate("b => [b.getBoundingClientRect().top, b.getBoundingClientRect().bottom]")
            form_top = page.locator("#ask-form").evaluate("f => f.getBoundingClientRect().top")
            if bottom - top + 8 <= form_top:  # it fits: all of it, above the input area
                assert 0 <= top and bottom <= form_top + 1, (question, top, bottom, form_top)
            else:  # too tall for the room: its beginning, at the top (8 px below the edge: scroll-margin-top)
                assert 0 <= top <= 10, (question, top, bottom, form_top)
    finally:
        page.context.close()


@pytest.mark.parametrize("width", [720, 900, 1099, 1280])
def test_the_open_article_panel_covers_neither_the_answer_nor_the_send_button(
        browser: object, live: tuple[str, ServiceState], width: int) -> None:
    page, _ = _open(browser, live[0], width, 800)
    try:
        answer = ask(page, QUESTION)
        answer.locator("button.citation", has_text=CITATION).click()
        panel = page.locator("#passage")
        sync_api.expect(panel).to_be_visible()
        panel_left = panel.evaluate("p => p.getBoundingClientRect().left")
        for name, box in (("answer", answer), ("send", page.locator("#send"))):
            right = box.evaluate("b => b.getBoundingClientRect().right")
            assert right <= panel_left + 1, (width, name, right, panel_left)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
    finally:
        page.context.close()


def test_a_long_question_is_counted_and_refused_not_cut(page: object) -> None:
    textarea, send, count = page.locator("#question"), page.locator("#send"), page.locator("#count")
    textarea.fill("信" * 480)
    sync_api.expect(count).to_have_text("480/500")
    textarea.fill("信" * 501)
    sync_api.expect(textarea).to_have_value("信" * 501)  # nothing silently cut
    sync_api.expect(count).to_have_class("count over")
    sync_api.expect(count).to_contain_text("问题太长")
    sync_api.expect(send).to_be_disabled()
    textarea.press("Enter")
    sync_api.expect(page.locator("#log .bubble")).to_have_count(0)
    textarea.fill("信访事项多久办结？")
    sync_api.expect(send).to_be_enabled()
    sync_api.expect(count).to_have_text("9/500")


def test_phone_and_desktop_layouts_with_screenshots(browser: object, live: tuple[str, ServiceState],
                                                    screenshots: Path) -> None:
    for name, (width, height) in {"phone": (360, 740), "desktop": (1280, 800)}.items():
        page, requests = _open(browser, live[0], width, height)
        shot = screenshots / f"{name}.png"
        try:
            ask(page, QUESTION)
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            page.locator("#log button.citation", has_text=CITATION).click()
            sync_api.expect(page.locator("#passage mark").first).to_be_visible()
            sync_api.expect(page.locator("#passage-title")).to_have_text(CITATION)
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            page.screenshot(path=str(shot))
            page.get_by_role("link", name="查看全文").click()
            sync_api.expect(page.locator("#art-34")).to_be_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= width
        finally:
            page.context.close()
        assert all(urlparse(url).hostname == "127.0.0.1" for url in requests), requests
        # The viewport, rendered: a PNG of exactly its size, and far from blank (a blank page compresses to ~1 kB).
        assert png_size(shot) == (width, height)
        assert shot.stat().st_size > 20_000, f"{shot} is suspiciously small ({shot.stat().st_size} bytes)"


def log_entries(page: object) -> list[str]:
    """What the conversation shows, in order: "user", "answer" or "topic" (a 新话题 divider)."""
    return page.locator("#log > *").evaluate_all(
        "nodes => nodes.map(n => n.classList.contains('topic-divider') ? 'topic'"
        " : n.classList.contains('user') ? 'user' : 'answer')")


def sent_history(page: object, question: str) -> list[str]:
    """The earlier questions the page sends with `question`."""
    with page.expect_request("**/api/ask") as request:
        ask(page, question)
    return request.value.post_data_json["history"]


def test_a_follow_up_is_sent_with_the_earlier_questions(page: object) -> None:
    page.reload()
    ask(page, FIRST)
    with page.expect_request("**/api/ask") as request:
        answer = ask(page, FOLLOW_UP)
    assert request.value.post_data_json["history"][-1] == FIRST
    sync_api.expect(answer.locator(".context")).to_have_text("接着您上一个问题「信访事项多久办结？」回答")
    sync_api.expect(answer.locator("button.citation", has_text="《信访工作条例》第三十五条")).to_be_visible()


def test_a_new_topic_keeps_the_conversation_but_not_its_questions(page: object) -> None:
    ask(page, FIRST)
    new_topic = page.get_by_role("button", name="新话题", exact=True)
    new_topic.focus()
    page.keyboard.press("Enter")
    sync_api.expect(page.locator("#log .topic-divider")).to_have_text("—— 新话题 ——")
    sync_api.expect(page.locator("#question")).to_be_focused()
    new_topic.click()  # nothing asked since the last one: no second divider
    assert log_entries(page) == ["user", "answer", "topic"], "nothing on screen is deleted"
    assert sent_history(page, FOLLOW_UP) == []
    sync_api.expect(page.locator("#log .bubble.answer").last.locator(".context")).to_have_count(0)
    assert sent_history(page, THIRD) == [FOLLOW_UP]
    page.reload()  # kept for the tab like the rest of the conversation
    assert log_entries(page) == ["user", "answer", "topic", "user", "answer", "user", "answer"]
    assert sent_history(page, FIRST) == [FOLLOW_UP, THIRD]


def test_a_follow_up_can_be_answered_as_a_new_question(page: object) -> None:
    ask(page, FIRST)
    ask(page, FOLLOW_UP)
    follow_up = page.locator("#log .bubble.answer").nth(1)
    sync_api.expect(follow_up.locator(".context")).to_have_text(f"接着您上一个问题「{FIRST}」回答")
    with page.expect_request("**/api/ask") as request:
        follow_up.get_by_role("button", name="作为新问题回答").click()
    assert request.value.post_data_json == {"question": FOLLOW_UP, "history": []}
    sync_api.expect(page.locator("#log .bubble.answer:not(.pending)")).to_have_count(3)
    assert log_entries(page) == ["user", "answer", "user", "answer", "topic", "user", "answer"]
    sync_api.expect(page.locator("#log .bubble.user .bubble-text").last).to_have_text(FOLLOW_UP)
    sync_api.expect(page.locator("#log .bubble.answer").last.locator(".context")).to_have_count(0)
    sync_api.expect(follow_up.locator(".context")).to_be_visible()  # the earlier answer stays as it was
    assert sent_history(page, THIRD) == [FOLLOW_UP], "the question before the re-asked one is not sent again"


def test_other_candidates_are_listed_and_open_their_article(page: object, corpus_kb: KnowledgeBase) -> None:
    question = next(q for q in UNSURE_QUESTIONS if corpus_kb.ask(q).related_passages)
    expected = corpus_kb.ask(question).related_passages
    page.reload()
    answer = ask(page, question)
    sync_api.expect(answer.locator("h3.cite-title", has_text="其他可能相关的条文")).to_be_visible()
    buttons = answer.locator("button.related-passage")
    sync_api.expect(buttons).to_have_count(len(expected))
    for button, hit in zip(buttons.all(), expected):
        sync_api.expect(button).to_contain_text(hit.citation)
        box = button.bounding_box()
        assert box and box["height"] >= 40, "a tap target a finger can hit"
    buttons.first.click()
    panel = page.locator("#passage")
    sync_api.expect(panel).to_be_visible()
    sync_api.expect(panel.locator("#passage-title")).to_have_text(expected[0].citation)
    sync_api.expect(panel).to_contain_text(expected[0].text.split("\n")[0][-20:])


def test_the_page_asks_the_knowledge_base_its_address_names(page: object) -> None:
    page.goto(page.url.split("#")[0].split("?")[0] + "?kb=default")  # this service's own (KB_NAME)
    with page.expect_request("**/api/ask") as request:
        answer = ask(page, "信访事项多久办结？")
    assert request.value.post_data_json["kb"] == "default"
    sync_api.expect(answer.locator("button.citation", has_text="《信访工作条例》第三十四条")).to_be_visible()
    with page.expect_request("**/api/documents?kb=default"):
        page.goto(page.url.split("#")[0] + "#/docs")
    page.goto(page.url.split("#")[0].split("?")[0] + "?kb=tanggula")  # local files hold one knowledge base
    bubble = ask(page, "信访事项多久办结？")
    sync_api.expect(bubble).to_have_class("bubble error")
    sync_api.expect(bubble.locator(".bubble-text")).to_have_text("本服务只有一个知识库（default）")


def test_a_slow_answer_can_be_stopped_and_retried(page: object) -> None:
    page.reload()
    page.route("**/api/ask", lambda route: None)  # the request never gets an answer
    textarea = page.locator("#question")
    textarea.fill(QUESTION)
    textarea.press("Enter")
    page.locator("#log .bubble.pending button.stop").click()
    error = page.locator("#log .bubble.error").last
    sync_api.expect(error).to_contain_text("已停止")
    sync_api.expect(textarea).to_be_enabled()
    page.unroute("**/api/ask")
    error.locator("button", has_text="重试").click()
    sync_api.expect(page.locator("#log .bubble.error")).to_have_count(0)
    sync_api.expect(page.locator("#log .bubble.answer:not(.pending)").last.locator(
        "button.citation", has_text=CITATION)).to_be_visible()


def test_a_related_answer_is_labelled_as_not_the_answer(page: object) -> None:
    page.reload()
    answer = ask(page, "雁石坪镇2023年调处了多少件矛盾纠纷？")
    sync_api.expect(answer).to_have_class("bubble answer notice related")
    sync_api.expect(answer.locator(".bubble-text")).to_contain_text("知识库中只有2024年的数据")
    sync_api.expect(answer.locator("h3.cite-title")).to_have_text("相关内容（不是对您问题的直接回答）")
    answer.locator("button.citation").first.click()
    sync_api.expect(page.locator("#passage-text mark").first).to_be_visible()


def test_the_pinned_input_area_stays_small_on_a_phone(browser: object, live: tuple[str, ServiceState]) -> None:
    page, _ = _open(browser, live[0], 360, 740)
    try:
        ask(page, QUESTION)
        height = page.locator("#ask-form").evaluate("f => f.getBoundingClientRect().height")
        assert height <= 0.2 * 740, height  # most of the screen is left for the conversation
        send = page.locator("#send").evaluate("b => b.getBoundingClientRect().top")
        box = page.locator("#question").evaluate("t => t.getBoundingClientRect().top")
        assert abs(send - box) <= 2, "发送 sits beside the question box"
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        sync_api.expect(page.locator("#call-12348")).to_be_in_viewport()
        page.locator("#question").fill("信访事项多久办结？\n还想问一下")  # two lines: the box grows to show them
        grown = page.locator("#question").evaluate("t => [t.clientHeight, t.scrollHeight]")
        assert grown[1] <= grown[0] + 1, grown
        page.locator("#question").press("Enter")
        sync_api.expect(page.locator("#log .bubble.answer:not(.pending)")).to_have_count(2)
        after = page.locator("#ask-form").evaluate("f => f.getBoundingClientRect().height")
        assert after <= 0.2 * 740, ("shrinks back once sent", after)
    finally:
        page.context.close()


def test_the_pinned_input_area_at_200_percent_zoom(browser: object, live: tuple[str, ServiceState]) -> None:
    """A 1366×768 screen at 200 % zoom is a 683×384 CSS-pixel viewport: the input stays under a third, nothing cut."""
    context = browser.new_context(viewport={"width": 683, "height": 384}, device_scale_factor=2, locale="zh-CN",
                                  service_workers="block")
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(live[0] + "/")
        ask(page, QUESTION)
        height = page.locator("#ask-form").evaluate("f => f.getBoundingClientRect().height")
        assert height <= 0.3 * 384, height
        assert page.evaluate("document.documentElement.scrollWidth") <= 683
        for selector in ("#question", "#send", "#call-12348"):
            sync_api.expect(page.locator(selector)).to_be_in_viewport()
    finally:
        context.close()


def test_the_full_document_shows_headings_and_keeps_its_title_in_reach(page: object) -> None:
    doc_id = next(d["doc_id"] for d in page.request.get(page.url.split("#")[0] + "api/documents").json()["documents"]
                  if d["title"] == "信访工作条例")
    page.goto(page.url.split("#")[0] + f"#/doc/{doc_id}/art/46")
    sync_api.expect(page.locator("#art-46")).to_be_visible()
    headings = page.locator("#doc-body .doc-heading")
    sync_api.expect(headings.first).to_have_text("第一章 总则")
    assert "#" not in page.locator("#doc-body").inner_text()
    for locator in (page.locator("#doc-title"), page.locator(".doc-nav a").first):
        top = locator.evaluate("e => e.getBoundingClientRect().top")
        assert 0 <= top < 200, top  # still on screen with article 46 scrolled into view


# --- phones, older users, the document view ------------------------------------------------------------------------

#: Every visible control (link, button, field) measured from the DOM: those under `min` px either way, and pairs
#: that overlap (a finger meant for one would hit the other). Off-screen skip links do not count.
#: Measured once running CSS transitions end, so a fold caught half-way does not count as an overlap.
TARGETS_JS = """async ([min, overlaps]) => {
  // Measure the settled layout: a fold still in its 0.15 s transition is clipped, not yet hidden.
  await Promise.all(document.getAnimations().filter(a => a instanceof CSSTransition).map(a => a.finished.catch(() => null)));
  const targets = [...document.querySelectorAll('a[href], button, input, textarea, select, summary')]
    .filter(e => !e.closest('[hidden], .sr-only') && !e.classList.contains('skip') && e.getClientRects().length
      && getComputedStyle(e).visibility !== 'hidden');
  const name = e => `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''} "${(e.textContent || e.placeholder || '').trim().slice(0, 20)}"`;
  const rects = targets.map(e => e.getBoundingClientRect());
  const small = targets.map((e, i) => [name(e), Math.round(rects[i].width), Math.round(rects[i].height)])
    .filter(([, w, h]) => w < min || h < min);
  const overlapping = [];
  // Controls in a pinned layer (the input area, the panel, the document's head) lie over the page as it
  // scrolls by: compared with each other, not with what passes under them.
  const layer = e => e.closest('.ask, #passage, .doc-head');
  if (overlaps) for (let i = 0; i < rects.length; i++) for (let j = i + 1; j < rects.length; j++) {
    if (layer(targets[i]) !== layer(targets[j])) continue;
    const a = rects[i], b = rects[j];
    const x = Math.min(a.right, b.right) - Math.max(a.left, b.left), y = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
    if (x > 1 && y > 1 && !targets[i].contains(targets[j]) && !targets[j].contains(targets[i]))
      overlapping.push([name(targets[i]), name(targets[j])]);
  }
  return {count: targets.length, small, overlapping};
}"""


def tap_targets(page: object, minimum: int = 44, overlaps: bool = True) -> dict:
    return page.evaluate(TARGETS_JS, [minimum, overlaps])


def assert_tap_targets(page: object, where: str, minimum: int = 44, overlaps: bool = True) -> None:
    found = tap_targets(page, minimum, overlaps)
    assert found["count"] > 0, where
    assert not found["small"], (where, found["small"])
    assert not found["overlapping"], (where, found["overlapping"])


@pytest.mark.parametrize("elder", [False, True], ids=["normal", "elder"])
def test_every_tap_target_is_big_enough_on_a_phone(browser: object, live: tuple[str, ServiceState],
                                                  elder: bool) -> None:
    """WCAG 2.5.5: 44×44 px (52 in 长者模式), spacing included, on every screen a citizen reaches on a phone."""
    page, _ = _open(browser, live[0], 360, 740)
    minimum = 52 if elder else 44
    try:
        if elder:
            page.get_by_role("button", name="长者模式").click()
        assert_tap_targets(page, "start", minimum)
        answer = ask(page, QUESTION)
        ask(page, "今年世界杯冠军是谁？")  # a refusal: its 联系人工 button
        ask(page, "老公家暴经常打我，我该怎么办？")  # 110 and 12338 inside the urgent note
        answer.get_by_role("button", name="没帮助").click()  # the comment form
        page.locator("#log").evaluate("log => log.scrollIntoView({block: 'start'})")
        assert_tap_targets(page, "conversation", minimum)
        answer.locator("button.marker").first.click()
        sync_api.expect(page.locator("#passage")).to_be_visible()
        assert_tap_targets(page, "passage panel", minimum, overlaps=False)  # the panel lies over the page
        page.get_by_role("button", name="关闭原文").click()
        page.get_by_role("button", name="联系人工", exact=True).first.click()
        sync_api.expect(page.locator("#help-card")).to_be_visible()
        assert_tap_targets(page, "联系人工 card", minimum)
        page.get_by_role("link", name="文件库").click()
        sync_api.expect(page.locator("#docs-list li")).to_have_count(CORPUS_DOCUMENTS)
        assert_tap_targets(page, "document library", minimum)
        page.locator("#docs-list a", has_text="信访工作条例").click()
        sync_api.expect(page.locator("#art-1")).to_be_visible()
        assert_tap_targets(page, "document", minimum)
    finally:
        page.context.close()


def test_the_newest_answer_is_scrolled_into_view_above_the_input(browser: object,
                                                                 live: tuple[str, ServiceState]) -> None:
    page, _ = _open(browser, live[0], 360, 740)
    try:
        for question in ("镇里建了几条法治文化长廊？", "法律援助向哪里申请？"):
            answer = ask(page, question)
            top = answer.evaluate("b => b.getBoundingClientRect().top")
            form_top = page.locator("#ask-form").evaluate("f => f.getBoundingClientRect().top")
            assert 0 <= top < form_top - 100, (question, top, form_top)  # its start, with room to read, is above it
    finally:
        page.context.close()


FORM_HEIGHT = "() => document.getElementById('ask-form').getBoundingClientRect().height"


def test_the_pinned_area_folds_to_its_input_row_while_reading_back(browser: object,
                                                                    live: tuple[str, ServiceState]) -> None:
    """On a phone, reading back up the conversation leaves the pinned area its input row only (the note's row
    folds away); focusing or tapping the box, or scrolling back to the bottom, brings the whole of it back."""
    page, _ = _open(browser, live[0], 360, 740)
    form, note = page.locator("#ask-form"), page.locator("#ask-hint")
    try:
        for question in (QUESTION, "法律援助向哪里申请？", "镇里建了几条法治文化长廊？"):
            answer = ask(page, question)
            top = answer.evaluate("b => b.getBoundingClientRect().top")
            form_top = form.evaluate("f => f.getBoundingClientRect().top")
            assert 0 <= top < form_top, (question, top, form_top)  # its beginning is on screen, not behind it
        full = page.evaluate(FORM_HEIGHT)
        assert full <= 0.2 * 740, full
        sync_api.expect(note).to_be_visible()
        row = page.locator("#question").evaluate("t => t.getBoundingClientRect().height")

        def read_back() -> None:  # from the bottom, up through the answers
            page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
            page.wait_for_function("() => innerHeight + scrollY >= document.documentElement.scrollHeight - 2")
            page.mouse.move(180, 200)
            page.mouse.wheel(0, -400)
            page.wait_for_function(f"h => ({FORM_HEIGHT})() < h - 20", arg=full)
            sync_api.expect(note).to_be_hidden()
            folded = page.evaluate(FORM_HEIGHT)
            assert folded <= row + 16, (folded, row)  # the input row and the area's padding, nothing more
            for control in ("#question", "#send"):
                sync_api.expect(page.locator(control)).to_be_in_viewport()

        def whole_again() -> None:
            page.wait_for_function(f"h => Math.abs(({FORM_HEIGHT})() - h) <= 1", arg=full)
            sync_api.expect(note).to_be_visible()

        page.locator("#question").blur()
        read_back()
        page.locator("#question").focus()
        whole_again()
        read_back()  # the box keeps the focus meanwhile: a tap on it opens the area
        page.locator("#question").click()
        whole_again()
        read_back()
        page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
        whole_again()
    finally:
        page.context.close()


def test_each_knowledge_base_keeps_its_own_conversation_in_the_tab(page: object) -> None:
    """sessionStorage holds the conversation under the name in the page's address (?kb=; 「default」 without):
    another township's page opened in the same tab does not show this one's."""
    base = page.url.split("#")[0].split("?")[0]
    page.evaluate("sessionStorage.setItem('zwkb.conversation.v1', '[{\"type\": \"user\", \"text\": \"旧版\"}]')")
    page.goto(base + "?kb=default")
    sync_api.expect(page.locator("#log .welcome")).to_be_visible()  # what older versions kept for every name: gone
    ask(page, QUESTION)
    keys = page.evaluate("Object.keys(sessionStorage).filter(k => k.startsWith('zwkb.conversation'))")
    assert keys == ["zwkb.conversation.v2.default"], keys
    page.goto(base + "?kb=tanggula")  # the same tab, another township's page
    sync_api.expect(page.locator("#log .welcome")).to_be_visible()
    sync_api.expect(page.locator("#log .bubble")).to_have_count(0)
    page.goto(base)  # no ?kb=: this service's own, 「default」
    sync_api.expect(page.locator("#log .bubble.answer button.citation", has_text=CITATION)).to_be_visible()
    sync_api.expect(page.locator("#log .bubble.user")).to_have_count(1)


def documents(page: object) -> list[dict]:
    return page.request.get(page.url.split("#")[0] + "api/documents").json()["documents"]


def open_document(page: object, doc_id: str, suffix: str = "") -> None:
    page.goto(page.url.split("#")[0] + f"#/doc/{doc_id}{suffix}")
    sync_api.expect(page.locator("#doc-body .block").first).to_be_visible()


def test_no_document_shows_raw_markup(page: object) -> None:
    """Every corpus file, as the page shows it: no HTML comments (<!-- INFO END -->, <!-- FORCE BREAK -->), no
    Markdown #s, and the title once (as the page's heading, not again in the text)."""
    docs = documents(page)
    assert len(docs) == CORPUS_DOCUMENTS
    for doc in docs:
        open_document(page, doc["doc_id"])
        sync_api.expect(page.locator("#doc-title")).to_have_text(doc["title"])
        text = page.locator("#doc-body").inner_text()
        for raw in ("<!--", "-->", "INFO END", "FORCE BREAK", "#"):
            assert raw not in text, (doc["source"], raw)
        assert doc["title"] not in text.split("\n", 1)[0], doc["source"]
    raw = page.request.get(page.url.split("#")[0] + f"api/documents/{docs[0]['doc_id']}").json()["text"]
    assert "<!-- INFO END -->" in raw, "the API still has the comment: the page strips it at render time"


def test_a_report_citation_jumps_to_its_highlighted_paragraph(browser: object, live: tuple[str, ServiceState]) -> None:
    page, _ = _open(browser, live[0], 360, 740)
    try:
        answer = ask(page, "镇里建了几条法治文化长廊？")
        answer.locator("button.citation", has_text="法治政府建设情况报告").click()
        page.get_by_role("link", name="查看全文").click()
        current = page.locator("#doc-body .block.current")
        sync_api.expect(current).to_have_count(1)
        sync_api.expect(current).to_contain_text("法治文化长廊2条")
        sync_api.expect(current.locator("mark").first).to_be_in_viewport()
        sync_api.expect(current).to_be_focused()
        assert "/at/" in page.url
        head_bottom = page.locator(".doc-head").evaluate("h => h.getBoundingClientRect().bottom")
        mark_top = current.locator("mark").first.evaluate("m => m.getBoundingClientRect().top")
        assert mark_top >= head_bottom - 1, "not under the pinned title"
        # The report's headings are headings, its title is not repeated in the text.
        sync_api.expect(page.locator("#doc-body h3", has_text="一、工作开展情况")).to_have_count(1)
        sync_api.expect(page.locator("#doc-body h4", has_text="（一）加强组织领导，完善法治建设机制。")).to_have_count(1)
        sync_api.expect(page.locator("#doc-body")).not_to_contain_text("雁石坪镇2024年法治政府建设情况报告")
    finally:
        page.context.close()


def test_parts_chapters_sections_and_items_are_distinct(page: object) -> None:
    docs = {d["source"]: d for d in documents(page)}
    open_document(page, docs["民法典.md"]["doc_id"])
    sizes = {}
    for tag, text in (("h3", "总则"), ("h4", "第一章"), ("h5", "第一节")):  # 编, 章, 节
        heading = page.locator(f"#doc-body {tag}.doc-heading", has_text=text).first
        sync_api.expect(heading).to_be_visible()
        sizes[tag] = heading.evaluate("h => [getComputedStyle(h).fontSize, getComputedStyle(h).color,"
                                      " getComputedStyle(h).borderBottomStyle].join()")
    assert len(set(sizes.values())) == 3, sizes
    open_document(page, docs["信访工作条例.md"]["doc_id"])
    items = page.locator("#doc-body .article", has=page.locator("p.item")).first.locator("p.item")
    assert items.count() >= 3
    tops = [item.evaluate("p => p.getBoundingClientRect().top") for item in items.all()]
    assert tops == sorted(tops) and len(set(tops)) == len(tops), "each 项 on a line of its own"
    dates = page.locator("#doc-dates")
    open_document(page, docs["民法典.md"]["doc_id"])
    sync_api.expect(dates.locator("li", has_text="施行")).to_have_count(1)  # labelled, once
    sync_api.expect(dates.locator("li", has_text="施行").locator(".date-label")).to_have_text("施行")


def test_an_example_never_replaces_typed_text_and_a_failure_keeps_the_question(page: object) -> None:
    textarea = page.locator("#question")
    textarea.fill("我家的地")
    page.locator(".example", has_text="法律援助向哪里申请？").click()
    sync_api.expect(textarea).to_have_value("我家的地\n法律援助向哪里申请？")  # added under it, not sent
    sync_api.expect(textarea).to_be_focused()
    assert page.locator("#log .bubble").count() == 0
    textarea.fill("")
    page.route("**/api/ask", lambda route: route.fulfill(
        status=503, json={"error": {"code": "overloaded", "message": "服务繁忙，请稍后再试"}}))
    page.locator(".example", has_text="信访事项多久办结？").click()  # an empty box: asked at once
    sync_api.expect(page.locator("#log .bubble.error")).to_have_count(1)
    sync_api.expect(textarea).to_have_value("信访事项多久办结？")  # the question stays, to send again


def test_error_messages_say_what_happened(page: object) -> None:
    page.route("**/api/ask", lambda route: route.abort("connectionrefused"))
    bubble = ask(page, QUESTION)
    sync_api.expect(bubble.locator(".bubble-text")).to_contain_text("暂时连不上服务器")
    sync_api.expect(bubble.locator(".bubble-text")).not_to_contain_text("您的设备")
    page.context.set_offline(True)  # the device itself is offline: navigator.onLine is false
    bubble = ask(page, QUESTION)
    sync_api.expect(bubble.locator(".bubble-text")).to_contain_text("您的设备现在没有连上网络")
    page.context.set_offline(False)
    page.unroute("**/api/ask")
    page.route("**/api/ask", lambda route: route.fulfill(
        status=429, headers={"Retry-After": "300"}, json={"error": {"code": "rate_limited", "message": "x"}}))
    bubble = ask(page, QUESTION)
    sync_api.expect(bubble.locator(".bubble-text")).to_have_text("请求太频繁，请 5 分钟后再试")
    page.unroute("**/api/ask")
    page.clock.install()  # the page's 30-second timeout, run on the browser's own fake clock
    page.reload()
    page.route("**/api/ask", lambda route: None)  # never answered
    textarea = page.locator("#question")
    textarea.fill(QUESTION)
    textarea.press("Enter")
    sync_api.expect(page.locator("#log .bubble.pending")).to_have_count(1)
    page.clock.run_for(31_000)
    bubble = page.locator("#log .bubble.error").last
    sync_api.expect(bubble.locator(".bubble-text")).to_have_text("服务器 30 秒内没有回答，已停止。请稍后重试")
    sync_api.expect(textarea).to_have_value(QUESTION)


def contrast(page: object, selector: str) -> float:
    """The WCAG contrast ratio of an element's text against the page background (both opaque)."""
    return page.locator(selector).first.evaluate("""e => {
      const rgb = c => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
      const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
        .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
      const fg = lum(rgb(getComputedStyle(e).color)), bg = lum(rgb(getComputedStyle(document.documentElement).backgroundColor));
      return (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    }""")


def test_elder_mode_is_larger_clearer_and_kept_for_the_tab_with_screenshots(browser: object, live: tuple[str, ServiceState],
                                                           screenshots: Path) -> None:
    page, _ = _open(browser, live[0], 360, 740)
    try:
        toggle = page.get_by_role("button", name="长者模式")
        sync_api.expect(toggle).to_have_attribute("aria-pressed", "false")
        normal_hint = contrast(page, "#privacy-note")
        toggle.click()
        sync_api.expect(toggle).to_have_attribute("aria-pressed", "true")
        answer = ask(page, QUESTION)
        size = answer.locator(".bubble-text").evaluate("t => parseFloat(getComputedStyle(t).fontSize)")
        assert size >= 20, size
        send = page.locator("#send").evaluate("b => b.getBoundingClientRect().height")
        assert send >= 52, send
        assert contrast(page, "#privacy-note") >= 7 > normal_hint, "higher contrast (WCAG AAA)"
        form = page.locator("#ask-form").evaluate("f => f.getBoundingClientRect().height")
        assert form <= 0.25 * 740, form
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        page.screenshot(path=str(screenshots / "phone-elder.png"))
        page.reload()  # the same tab: still on
        sync_api.expect(page.get_by_role("button", name="长者模式")).to_have_attribute("aria-pressed", "true")
        assert page.evaluate("localStorage.length") == 0
        other = page.context.new_page()  # another tab: off
        other.goto(page.url)
        sync_api.expect(other.get_by_role("button", name="长者模式")).to_have_attribute("aria-pressed", "false")
        other.close()
    finally:
        page.context.close()
    assert png_size(screenshots / "phone-elder.png") == (360, 740)


@pytest.mark.parametrize("motion, duration", [("reduce", "0s"), ("no-preference", "0.15s")])
def test_reduced_motion_is_respected(browser: object, live: tuple[str, ServiceState], motion: str,
                                    duration: str) -> None:
    context = browser.new_context(viewport={"width": 360, "height": 740}, reduced_motion=motion,
                                  service_workers="block")
    page = context.new_page()
    try:
        page.goto(live[0] + "/")
        durations = page.locator("#send").evaluate("b => getComputedStyle(b).transitionDuration")
        assert set(durations.replace(" ", "").split(",")) == {duration}, durations
        # The pinned area folding away while the user reads back: animated only for those who did not say no.
        folding = page.locator("#ask-form").evaluate(
            "f => { f.classList.add('collapsed'); return getComputedStyle(f).transitionDuration; }")
        assert set(folding.replace(" ", "").split(",")) == {duration}, folding
    finally:
        context.close()


def test_the_document_library_is_grouped_sorted_and_searchable(page: object) -> None:
    page.goto(page.url.split("#")[0] + "#/docs")
    sync_api.expect(page.locator("#docs-list li")).to_have_count(CORPUS_DOCUMENTS)
    groups = page.locator("#docs-list h3").all_inner_texts()
    assert [g.split("（")[0] for g in groups] == ["法律", "行政法规", "报告"], groups
    assert sum(int(g.split("（")[1].rstrip("）")) for g in groups) == CORPUS_DOCUMENTS
    laws = page.get_by_role("list", name="法律").locator("li")
    sync_api.expect(laws.first.locator("a")).to_have_text("中华人民共和国宪法")
    sync_api.expect(laws.first.locator(".meta")).to_contain_text("宪法")
    sync_api.expect(page.get_by_role("list", name="行政法规")).to_contain_text("信访工作条例")
    sync_api.expect(page.get_by_role("list", name="报告")).to_contain_text("法治政府建设情况报告")
    for group in ("法律", "行政法规"):
        titles = [t.removeprefix("中华人民共和国") for t in
                  page.get_by_role("list", name=group).locator("a").all_inner_texts()]
        if group == "法律":
            titles = titles[1:]  # after 宪法
        collated = page.evaluate("t => [...t].sort(new Intl.Collator('zh-CN').compare)", titles)
        assert titles == collated, (group, titles)
    page.fill("#docs-filter", "信访")
    sync_api.expect(page.locator("#docs-list li")).to_have_count(1)
    sync_api.expect(page.locator("#docs-status")).to_have_text("找到 1 个文件")
    page.fill("#docs-filter", "没有这个文件")
    sync_api.expect(page.locator("#docs-list li")).to_have_count(0)
    sync_api.expect(page.locator("#docs-status")).to_contain_text("没有标题含")


def stated_dates(name: str) -> tuple[list[tuple[str, str]], str | None]:
    """A corpus file's dates as it states them: its header's (yyyy-mm-dd, what happened) lines, above the first
    <!-- INFO END -->, and the 「本法自……起施行」 of its last articles."""
    text = (CORPUS_DIR / name).read_text(encoding="utf-8")

    def iso(y: str, m: str, d: str) -> str:
        return f"{int(y):04d}-{int(m):02d}-{int(d):02d}"

    header = [(iso(y, m, d), event.strip()) for y, m, d, event in
              re.findall(r"^(\d{4})年(\d{1,2})月(\d{1,2})日\s*(.*)$", text.split("<!-- INFO END -->")[0], re.M)]
    in_force = re.findall(r"本(?:法|条例)自(\d{4})年(\d{1,2})月(\d{1,2})日起施行", text)
    return header, iso(*in_force[-1]) if in_force else None


def test_the_library_shows_the_dates_each_document_states_with_screenshots(
        browser: object, live: tuple[str, ServiceState], screenshots: Path) -> None:
    """Each entry: its kind, then its dates labelled with what happened on them (公布/发布/通过/修正/修订, 施行) as
    its text states them; the report its year."""
    xinfang, xinfang_in_force = stated_dates("信访工作条例.md")  # 2022年2月25日 中共中央、国务院发布
    published = next(date for date, event in xinfang if event.endswith("发布"))
    assert xinfang_in_force  # 第五十条 本条例自2022年5月1日起施行 (its header has no 施行 line)
    civil, _ = stated_dates("民法典.md")  # 2020年5月28日 ……通过 / 2021年1月1日 施行
    passed = next(date for date, event in civil if event.endswith("通过"))
    in_force = next(date for date, event in civil if event == "施行")
    constitution, _ = stated_dates("宪法.md")  # the latest: 2018年3月11日 ……通过的《中华人民共和国宪法修正案》
    amended = max(date for date, event in constitution if "修正案" in event)
    expected = {
        "信访工作条例": f"行政法规 · 发布 {published} · 施行 {xinfang_in_force}",
        "中华人民共和国民法典": f"法律 · 通过 {passed} · 施行 {in_force}",
        # Its 「1982年12月4日 公布施行」 is older than the amendments: no 施行 is claimed for the text as it stands.
        "中华人民共和国宪法": f"宪法 · 修正 {amended}",
        "雁石坪镇2024年法治政府建设情况报告": "报告 · 2024年度",
    }
    page, _ = _open(browser, live[0], 360, 740)
    try:
        page.goto(page.url.split("#")[0] + "#/docs")
        sync_api.expect(page.locator("#docs-list li")).to_have_count(CORPUS_DOCUMENTS)
        for title, meta in expected.items():
            entry = page.locator("#docs-list li").filter(has=page.get_by_role("link", name=title, exact=True))
            sync_api.expect(entry.locator(".meta")).to_have_text(meta)
        first_law = page.get_by_role("list", name="法律").locator("li").first
        sync_api.expect(first_law.locator(".doc-kind")).to_have_text("宪法")
        assert page.locator("#docs-list .meta", has_text="日期").count() == 0, "every law states what its date is"
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        assert_tap_targets(page, "document library")
        page.screenshot(path=str(screenshots / "phone-library.png"))
        # The document itself lists the same 施行, taken from its text.
        page.get_by_role("link", name="信访工作条例", exact=True).click()
        sync_api.expect(page.locator("#doc-dates")).to_contain_text(f"施行 {xinfang_in_force}")
        sync_api.expect(page.locator("#doc-dates")).to_contain_text(f"发布 {published}")
    finally:
        page.context.close()
    assert png_size(screenshots / "phone-library.png") == (360, 740)


def clipboard_page(browser: object, base: str) -> object:
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN", service_workers="block",
                                  permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(base + "/")
    return page


def test_an_answer_is_copied_with_its_citations(browser: object, live: tuple[str, ServiceState]) -> None:
    page = clipboard_page(browser, live[0])
    try:
        answer = ask(page, QUESTION)
        answer.get_by_role("button", name="复制回答和出处").click()
        sync_api.expect(answer.locator(".answer-tools .status")).to_have_text("已复制，可以粘贴到微信")
        copied = page.evaluate("navigator.clipboard.readText()")
        first = answer.locator(".bubble-text").inner_text().strip()
        assert copied.startswith(first), copied
        assert f"出处：\n[1] {CITATION}（2022-02-25）" in copied, copied
        assert "仅供参考" in copied and "12348" in copied, copied
    finally:
        page.context.close()


@pytest.fixture(scope="module")
def live_with_contacts(corpus_kb: KnowledgeBase, settings: Settings, corpus_index: Path,
                       tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service as a township configures it: KB_HELP_PHONE, KB_HELP_ADDRESS and KB_HELP_HOURS set."""
    identity = Identity(help_phone="0891-5551234", help_address="雁石坪镇人民政府一楼", help_hours="工作日 9:00–17:00")
    kb = KnowledgeBase(corpus_kb.store, corpus_kb.embedder, corpus_kb.params, corpus_kb.answer_params,
                       default_identity=identity)
    server_settings = replace(ServerSettings(), query_log=tmp_path_factory.mktemp("web-help") / "q.sqlite",
                              admin_key="", cors_origins=(), rate_per_minute=6000, rate_burst=1000, wechat_token="")
    app = create_app(open_service(replace(settings, index_dir=corpus_index, identity=identity), server_settings, kb))
    mount_web(app)
    with serve_in_thread(app) as base:
        yield base


def test_the_contact_card_shows_the_station_and_12348_as_text(browser: object, live_with_contacts: str) -> None:
    page = clipboard_page(browser, live_with_contacts)
    try:
        card = page.locator("#help-card")
        page.get_by_role("button", name="联系人工").click()  # from the menu, before any question
        sync_api.expect(card).to_be_visible()
        sync_api.expect(card).to_be_focused()
        sync_api.expect(card.locator("#help-12348")).to_have_text("12348")  # the number as text, not only tel:
        card.locator('.copy-number[data-number="12348"]').click()
        sync_api.expect(card.locator("#help-status")).to_have_text("已复制 12348")
        assert page.evaluate("navigator.clipboard.readText()") == "12348"
        page.keyboard.press("Escape")
        sync_api.expect(card).to_be_hidden()
        answer = ask(page, "今年世界杯冠军是谁？")  # a refusal offers a person
        answer.get_by_role("button", name="联系人工").click()
        sync_api.expect(card).to_be_visible()
        station = card.locator("#help-station")
        sync_api.expect(station).to_contain_text("雁石坪镇公共法律服务站")
        sync_api.expect(station).to_contain_text("0891-5551234")
        sync_api.expect(station).to_contain_text("雁石坪镇人民政府一楼")
        sync_api.expect(station).to_contain_text("工作日 9:00–17:00")
        sync_api.expect(station.locator('a[href="tel:0891-5551234"]')).to_have_text("拨打")
        page.reload()  # kept for the tab: the menu's card shows the station without asking again
        page.locator("#nav-help").click()
        sync_api.expect(card.locator("#help-station")).to_contain_text("0891-5551234")
    finally:
        page.context.close()


AXE = Path(os.environ.get("KB_AXE_JS", PROJECT_ROOT / "var" / "axe-core" / "axe.min.js"))


@pytest.mark.parametrize("width, height", [(360, 740), (1366, 768)], ids=["phone", "desktop"])
@pytest.mark.parametrize("elder", [False, True], ids=["normal", "elder"])
def test_axe_finds_nothing_moderate_or_worse(browser: object, live: tuple[str, ServiceState], width: int,
                                             height: int, elder: bool) -> None:
    """axe-core (from the npm registry into var/, by .ci/run; never part of the page) over a conversation with an
    answer and its open passage, at a phone's and a laptop's size, normal and in 长者模式."""
    if not AXE.is_file():
        pytest.skip(f"axe-core not found at {AXE} (.ci/run fetches it from registry.npmjs.org)")
    context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN",
                                  service_workers="block", bypass_csp=True)  # only so the test can inject axe
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(live[0] + "/")
        if elder:
            page.get_by_role("button", name="长者模式").click()
        answer = ask(page, QUESTION)
        answer.locator("button.citation").first.click()
        page.add_script_tag(path=str(AXE))
        found = page.evaluate("""async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length,
                                                 target: v.nodes[0] && v.nodes[0].target.join(" ")}));
        }""")
    finally:
        context.close()
    serious = [v for v in found if v["impact"] in ("moderate", "serious", "critical")]
    assert not serious, serious
