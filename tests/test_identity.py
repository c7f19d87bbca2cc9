"""One identity per knowledge base (issue 26): the township, its help station and what its knowledge base holds are
stored with the knowledge base at ingest (options or a kb.toml), kept by later ingests unless given anew, and used
by the notice, the no-answer message, the API and the page; the deployment's settings fill what it does not set.

The kb.toml, merge and wording tests need no model; the ingests use the real model (slow), the page real Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_small_corpus, serve_in_thread
from test_api import make_client
from test_cli import error_line, run_kb
from test_index_integrity import built, index  # noqa: F401  (a model-free build, and a copy of it to edit)
from test_milvus import in_milvus

from ingest.build import ingest
from ingest.identity import KB_TOML, IdentityChange, IdentityError, identity_change, read_kb_toml
from kb.answers.notice import no_answer, notice
from kb.config import Identity, Settings
from kb.embedding.embedder import Embedder
from kb.errors import IndexCorruptError
from kb.knowledge_base import KnowledgeBase
from kb.stores.index_dir import MANIFEST, load_index, read_manifest, stored_identity
from server.web import mount_web

QINGSHAN = {"township": "青山镇", "help_phone": "0891-5550000"}
#: Questions the small corpus answers, for 青山镇's page.
QINGSHAN_EXAMPLES = "集市摊位费每天多少钱？|路面塌陷多久设置警示标志？"
OUT_OF_SCOPE = "今年世界杯冠军是谁？"


def write_toml(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / KB_TOML
    path.write_text(text, encoding="utf-8")
    return path


# --- kb.toml and how an ingest's say meets what was stored (no model) ----------------------------------------------


def test_a_kb_toml_beside_the_documents_says_the_identity(tmp_path: Path) -> None:
    write_toml(tmp_path / "docs", 'township = "青山镇"\nhelp_hours = " 工作日 9:00–17:00 "\ncollection = ""\n')
    assert read_kb_toml(tmp_path / "docs" / KB_TOML) == {"township": "青山镇", "help_hours": "工作日 9:00–17:00",
                                                          "collection": ""}
    change = identity_change([tmp_path / "docs", tmp_path / "elsewhere.md"], {"help_phone": "0891-5550000"})
    assert change == IdentityChange({"township": "青山镇", "help_hours": "工作日 9:00–17:00", "collection": ""},
                                    {"help_phone": "0891-5550000"})
    assert identity_change([tmp_path]) == IdentityChange(None, {})  # no kb.toml in the folder itself: none


def test_a_kb_toml_lists_the_pages_example_questions(tmp_path: Path) -> None:
    write_toml(tmp_path, 'examples = [" 集市摊位费每天多少钱？", "摆摊要办什么手续？"]\n')
    own = read_kb_toml(tmp_path / KB_TOML)
    assert own == {"examples": "集市摊位费每天多少钱？|摆摊要办什么手续？"}
    assert Identity().with_own(own).example_questions == ["集市摊位费每天多少钱？", "摆摊要办什么手续？"]
    assert "镇里建了几条法治文化长廊？" in Identity().example_questions  # the deployment's (KB_EXAMPLES)


@pytest.mark.parametrize("text, says", [
    ('township = "青山镇"\nmayor = "张三"\n', "unknown key 'mayor'"),
    ("help_phone = 5550000\n", "help_phone should be text in quotes, not int 5550000"),
    ('[identity]\ntownship = "青山镇"\n', "unknown key 'identity'"),
    ('township = "青山镇\n', "line 1"),
    ('township = "青山镇"\nhelp_address = """一楼\n二楼"""\n', "help_address should be one line"),
    ('examples = ["问一", 2]\n', "examples should be text in quotes"),
], ids=["unknown key", "number", "table", "not TOML", "two lines", "not a question"])
def test_a_wrong_kb_toml_is_refused_in_one_line_naming_the_file(tmp_path: Path, text: str, says: str) -> None:
    path = write_toml(tmp_path, text)
    with pytest.raises(IdentityError) as error:
        identity_change([tmp_path])
    message = str(error.value)
    assert "\n" not in message and message.startswith(str(path)) and says in message, message
    assert message.endswith("the knowledge base was not changed")


def test_a_kb_toml_that_is_not_utf8_is_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / KB_TOML).write_bytes('township = "青山镇"\n'.encode("gbk"))
    with pytest.raises(IdentityError, match=f"^{tmp_path / KB_TOML}: "):
        identity_change([tmp_path])


def test_an_ingest_keeps_the_identity_unless_it_is_given_anew() -> None:
    stored = {"township": "青山镇", "help_phone": "0891-5550000"}
    assert IdentityChange().applied_to(stored) == stored  # a plain re-ingest, an upload: nothing lost
    assert IdentityChange(None, {"help_hours": "全天"}).applied_to(stored) == {**stored, "help_hours": "全天"}
    assert IdentityChange(None, {"help_phone": ""}).applied_to(stored) == {"township": "青山镇"}  # "" removes
    # a kb.toml says the whole identity (a line deleted is a value removed); options go on top of it
    assert IdentityChange({"township": "白水乡"}, {"help_hours": "全天"}).applied_to(stored) == {
        "township": "白水乡", "help_hours": "全天"}


def test_the_deployment_settings_fill_what_a_knowledge_base_does_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_HELP_HOURS", "工作日 9:00–17:00")
    monkeypatch.setenv("KB_COLLECTION", "常用法律法规")
    identity = Identity().with_own(QINGSHAN)
    assert (identity.township, identity.help_phone, identity.help_hours, identity.collection) == (
        "青山镇", "0891-5550000", "工作日 9:00–17:00", "常用法律法规")
    assert Identity().township == "雁石坪镇"


def test_the_notice_and_the_refusal_speak_for_the_township() -> None:
    identity = Identity().with_own({**QINGSHAN, "collection": "常用法律法规和青山镇政府工作报告"})
    refusal = no_answer(identity)
    assert "本知识库收录常用法律法规和青山镇政府工作报告；" in refusal and "青山镇公共法律服务站" in refusal
    assert "向青山镇有关部门咨询" in refusal and "雁石坪" not in refusal and "本镇" not in refusal
    assert "青山镇公共法律服务站（电话 0891-5550000）" in notice("extractive", identity)
    assert "雁石坪镇公共法律服务站" in no_answer(Identity())  # the deployment's words where none are set


def test_the_identity_is_kept_in_the_manifest_and_checked(index: Path, tmp_path: Path) -> None:  # noqa: F811
    path = index / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    assert manifest["identity"] == {} and stored_identity(index) == {}  # a build given none
    path.write_text(json.dumps({**manifest, "identity": QINGSHAN}, ensure_ascii=False), encoding="utf-8")
    assert load_index(index).manifest["identity"] == QINGSHAN == stored_identity(index)
    path.write_text(json.dumps({**manifest, "identity": {"mayor": "张三"}}), encoding="utf-8")
    with pytest.raises(IndexCorruptError, match=r"manifest\.json: unknown key 'mayor'.*`kb ingest`"):
        load_index(index)
    assert stored_identity(index) == {}  # the next build does not keep what it cannot read
    path.write_text(json.dumps({"identity": QINGSHAN, "format_version": 0}), encoding="utf-8")
    assert stored_identity(index) == QINGSHAN  # another format (rebuilt after an upgrade): its words are kept
    assert stored_identity(tmp_path / "nowhere") == {}


# --- ingested for real (slow) ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_an_ingest_stores_the_identity_with_the_local_index(tmp_path: Path, settings: Settings,
                                                            embedder: Embedder) -> None:
    corpus, index_dir = make_small_corpus(tmp_path), tmp_path / "index"
    local = settings.with_(index_dir=index_dir)
    ingest([corpus], local, embedder=embedder, identity=QINGSHAN)
    kb = KnowledgeBase.open(index_dir, settings=local, embedder=embedder)
    assert kb.identity == Identity().with_own(QINGSHAN) and kb.identity.help_name == Identity().help_name
    assert kb.info()["identity"]["township"] == "青山镇" and kb.info()["identity_own"] == ["help_phone", "township"]
    refused = kb.ask(OUT_OF_SCOPE)
    assert not refused.answerable and refused.answer == no_answer(kb.identity)
    assert "青山镇公共法律服务站" in refused.answer
    assert "青山镇公共法律服务站（电话 0891-5550000）" in refused.notice and "雁石坪" not in refused.notice
    contacts = make_client(local, kb, tmp_path).get("/api/contacts").json()
    assert (contacts["township"], contacts["name"], contacts["phone"]) == (
        "青山镇", "青山镇公共法律服务站", "0891-5550000")

    ingest([corpus], local, embedder=embedder)  # a plain re-ingest (an upload) keeps it
    assert read_manifest(index_dir)["identity"] == QINGSHAN
    write_toml(corpus, 'township = "白水乡"\ncollection = "常用法律法规"\n')
    ingest([corpus], local, embedder=embedder, identity={"help_hours": "全天"})  # the file says it, options on top
    assert read_manifest(index_dir)["identity"] == {"township": "白水乡", "collection": "常用法律法规",
                                                    "help_hours": "全天"}
    assert "本知识库收录常用法律法规；" in KnowledgeBase.open(index_dir, settings=local, embedder=embedder).ask(
        OUT_OF_SCOPE).answer

    before = read_manifest(index_dir)
    write_toml(corpus, 'township = "白水乡"\nhelp_phone = 123\n')
    with pytest.raises(IdentityError, match="help_phone should be text"):
        ingest([corpus], local, embedder=embedder)
    assert read_manifest(index_dir) == before  # nothing else lost


def test_kb_ingest_refuses_a_wrong_kb_toml_before_reading_anything(tmp_path: Path, settings: Settings) -> None:
    corpus = make_small_corpus(tmp_path)
    path = write_toml(corpus, 'township = "青山镇"\nphone = "0891-5550000"\n')
    result = run_kb(["ingest", "--index", str(tmp_path / "index"), "-q", str(corpus)], settings)
    assert result.returncode == 1 and error_line(result).startswith(f"错误: {path}: unknown key 'phone'")
    assert not (tmp_path / "index").exists()


@pytest.mark.slow
def test_kb_ingest_takes_the_identity_and_kb_info_shows_it(tmp_path: Path, settings: Settings) -> None:
    corpus, index_dir = make_small_corpus(tmp_path), str(tmp_path / "index")
    write_toml(corpus, 'township = "青山镇"\nhelp_phone = "0891-5550000"\n')
    result = run_kb(["ingest", "--index", index_dir, "-q", "--help-phone", "0891-5551111", "--help-hours", "全天",
                     str(corpus)], settings)
    assert result.returncode == 0, result.stderr
    assert read_manifest(Path(index_dir))["identity"] == {"township": "青山镇", "help_phone": "0891-5551111",
                                                      "help_hours": "全天"}
    shown = run_kb(["info", "--index", index_dir], settings, env={"KB_HELP_ADDRESS": "县政府一楼"}).stdout
    assert "乡镇: 青山镇  (本知识库)" in shown and "电话: 0891-5551111  (本知识库)" in shown
    assert "地址: 县政府一楼  (默认 KB_HELP_ADDRESS)" in shown


@pytest.fixture(scope="module")
def townships(milvus_uri: str, tmp_path_factory: pytest.TempPathFactory, settings: Settings,
              embedder: Embedder) -> Settings:
    """Two knowledge bases of one Milvus: id-qingshan with its own identity, id-plain with none; the latter's
    settings (the service's own knowledge base)."""
    root = tmp_path_factory.mktemp("identity-milvus")
    corpus = make_small_corpus(root)
    ingest([corpus], in_milvus(settings, milvus_uri, "id-qingshan"), embedder=embedder,
           identity={**QINGSHAN, "examples": QINGSHAN_EXAMPLES})
    plain = in_milvus(settings, milvus_uri, "id-plain")
    ingest([corpus], plain, embedder=embedder)
    return plain


@pytest.mark.slow
def test_each_township_of_a_milvus_deployment_speaks_for_itself(townships: Settings, settings: Settings,
                                                                embedder: Embedder, tmp_path: Path) -> None:
    own = KnowledgeBase.open(settings=townships, embedder=embedder)
    client = make_client(townships, own, tmp_path)
    assert client.get("/api/contacts").json()["township"] == "雁石坪镇"  # the deployment's settings
    assert client.get("/api/contacts", params={"kb": "id-qingshan"}).json()["phone"] == "0891-5550000"
    refused = client.post("/api/ask", json={"question": OUT_OF_SCOPE, "kb": "id-qingshan"}).json()
    assert "青山镇公共法律服务站" in refused["answer"]
    assert "青山镇公共法律服务站（电话 0891-5550000）" in refused["notice"]
    assert "青山镇" not in client.post("/api/ask", json={"question": OUT_OF_SCOPE}).json()["answer"]

    qingshan = in_milvus(settings, townships.milvus_uri, "id-qingshan")  # the same documents, one value more:
    ingest([make_small_corpus(tmp_path / "again")], qingshan, embedder=embedder, identity={"help_hours": "全天"})
    stored = KnowledgeBase.open(settings=qingshan, embedder=embedder)
    assert stored.info()["identity_own"] == ["examples", "help_hours", "help_phone", "township"]
    served = client.app.state.service.knowledge_base("id-qingshan")
    served.store.refresh()  # a replica sees it within a second; here at once
    assert client.get("/api/contacts", params={"kb": "id-qingshan"}).json()["hours"] == "全天"


@pytest.mark.slow
def test_each_townships_page_shows_its_own_name_and_questions(townships: Settings, embedder: Embedder, tmp_path: Path) -> None:
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    app = make_client(townships, KnowledgeBase.open(settings=townships, embedder=embedder), tmp_path).app
    mount_web(app)
    with serve_in_thread(app) as base, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            for address, name, examples in ((f"{base}/?kb=id-qingshan", "青山镇政务知识库", QINGSHAN_EXAMPLES),
                                            (f"{base}/", "雁石坪镇政务知识库", Identity().examples)):
                page.goto(address)
                sync_api.expect(page.locator("#site-name")).to_have_text(name)
                sync_api.expect(page).to_have_title(name)
                sync_api.expect(page.locator(".example")).to_have_text(examples.split("|"))  # its own questions
            page.goto(f"{base}/?kb=id-qingshan")
            page.locator(".example", has_text="集市摊位费").click()  # asked in its own knowledge base
            sync_api.expect(page.locator("#log .bubble.answer:not(.pending)")).to_contain_text("十元")
        finally:
            browser.close()
