"""The `kb` console script, run as a real subprocess over the session's corpus index (slow: each call that
loads the model takes ~15 s, so calls are few)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CORPUS_DOCUMENTS, corpus_sources

from kb.config import Settings
from kb.knowledge_base import KnowledgeBase

pytestmark = pytest.mark.slow

QUESTION = "信访事项多长时间办结"
CITATION = "《信访工作条例》第三十四条"


def kb_command() -> list[str]:
    script = Path(sys.executable).with_name("kb")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "cli.main"]


def error_line(result: subprocess.CompletedProcess) -> str:
    """The message `kb` prints for a failure: the last line of stderr (libraries may log before it)."""
    lines = result.stderr.strip().splitlines()
    return lines[-1] if lines else ""


def run_kb(args: list[str], settings: Settings, stdin: str | None = None,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "KB_CACHE_DIR": str(settings.cache_dir), **(env or {})}
    environment.pop("KB_INDEX", None)
    return subprocess.run([*kb_command(), *args], input=stdin, capture_output=True, text=True, env=environment,
                          timeout=600)


def test_search_json(corpus_index: Path, settings: Settings) -> None:
    result = run_kb(["search", "--index", str(corpus_index), "--json", "-k", "3", QUESTION], settings)
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["query"] == QUESTION
    assert len(output["hits"]) == 3
    first = output["hits"][0]
    assert first["citation"] == CITATION
    assert (first["doc_date"], first["article_no"], first["section"]) == ("2022-02-25", 34, "第四章 信访事项的办理")
    assert "自受理之日起60日内办结" in first["text"]


def test_search_jsonl_from_stdin(corpus_index: Path, settings: Settings) -> None:
    stdin = f"{QUESTION}\n\n民法典第一千二百六十条\n"
    result = run_kb(["search", "--index", str(corpus_index), "--jsonl", "-k", "2", "-"], settings, stdin=stdin)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2  # the blank line is skipped
    first, second = (json.loads(line) for line in lines)
    assert first["query"] == QUESTION and first["hits"][0]["citation"] == CITATION
    assert second["query"] == "民法典第一千二百六十条"
    assert (second["hits"][0]["doc_title"], second["hits"][0]["article_no"]) == ("中华人民共和国民法典", 1260)
    assert all(len(record["hits"]) == 2 for record in (first, second))


def test_search_readable_with_highlight(corpus_index: Path, settings: Settings, corpus_kb: KnowledgeBase) -> None:
    result = run_kb(["search", "--index", str(corpus_index), "--color", "always", QUESTION], settings)
    assert result.returncode == 0, result.stderr
    assert f"[1] {CITATION}（2022-02-25）" in result.stdout
    assert "第四章 信访事项的办理" in result.stdout
    highlighted = re.findall(r"\x1b\[1;31m(.+?)\x1b\[0m", result.stdout)
    assert "办结" in highlighted  # 60日内办结 in the first hit
    assert set(highlighted) & set(corpus_kb.query_terms(QUESTION))
    plain = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)
    assert "信访事项应当自受理之日起60日内办结" in plain


def test_info_json(corpus_index: Path, settings: Settings, corpus_kb: KnowledgeBase) -> None:
    result = run_kb(["info", "--index", str(corpus_index), "--json"], settings)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert len(info["documents"]) == CORPUS_DOCUMENTS
    assert {d["title"] for d in info["documents"]} == {r.title for r in corpus_sources().values()}
    assert sum(d["chunks"] for d in info["documents"]) == info["chunks"] == len(corpus_kb.store.chunks)
    assert info["embedding"]["fingerprint"] == corpus_kb.embedder.fingerprint
    assert info["question_encoder"] == corpus_kb.embedder.query_fingerprint != info["embedding"]["fingerprint"]
    xinfang = next(d for d in info["documents"] if d["source"] == "信访工作条例.md")
    assert (xinfang["kind"], xinfang["date"], xinfang["chunks"]) == ("law", "2022-02-25", 50)


def test_eval(corpus_index: Path, settings: Settings, tmp_path: Path) -> None:
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in [
        {"id": "t1", "q": QUESTION, "doc": "信访工作条例", "articles": [34], "tag": "xinfang"},
        {"id": "t2", "q": "民法典第一千二百六十条", "doc": "民法典", "articles": [1260], "tag": "law"},
        {"id": "t3", "q": "明天会下雨吗？", "answerable": False, "tag": "out_of_scope"},
    ]) + "\n", encoding="utf-8")
    result = run_kb(["eval", "--index", str(corpus_index), str(questions)], settings)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("3 个问题（1 个超出范围")
    assert lines[1].split() == ["method", "tag", "n", "Hit@1", "Hit@5", "MRR@10"]
    overall = next(line.split() for line in lines if line.split()[1:2] == ["overall"])
    assert overall == ["fused", "overall", "2", "1.000", "1.000", "1.000"]


def test_empty_question_is_an_error(corpus_index: Path, settings: Settings) -> None:
    result = run_kb(["search", "--index", str(corpus_index), ""], settings)
    assert result.returncode != 0
    assert error_line(result) == "错误: 问题不能为空"
    assert "Traceback" not in result.stderr


def test_missing_index_is_an_error(tmp_path: Path, settings: Settings) -> None:
    """A named --index must exist: only the default index is built on first use."""
    index = tmp_path / "nowhere" / "index"
    result = run_kb(["search", "--index", str(index), QUESTION], settings)
    assert result.returncode != 0
    assert error_line(result).startswith("错误: no index at"), result.stderr
    assert "kb ingest" in error_line(result)
    assert "Traceback" not in result.stderr
    assert not index.exists()


@pytest.mark.parametrize("args", [["--help"], ["search", "--help"]])
def test_help(args: list[str], settings: Settings) -> None:
    result = run_kb(args, settings)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: kb")
    if args == ["search", "--help"]:
        assert "--jsonl" in result.stdout and "--index" in result.stdout
    else:
        assert all(command in result.stdout for command in ("ingest", "search", "eval", "info", "serve"))


def test_ask_json_goes_through_the_service_and_is_logged(corpus_index: Path, settings: Settings,
                                                         tmp_path: Path) -> None:
    from server.querylog import QueryLog

    log = tmp_path / "querylog.sqlite"
    result = run_kb(["ask", "--index", str(corpus_index), "--json", QUESTION], settings, env={"KB_QUERY_LOG": str(log)})
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["answerable"] and answer["citations"][0]["citation"] == CITATION
    assert "60日内办结" in answer["answer"] and "[1]" in answer["answer"]
    assert "12348" in answer["notice"]
    with QueryLog.open(log) as query_log:
        [logged] = query_log.recent(5)
    assert (logged["question_id"], logged["channel"], logged["question"]) == (answer["question_id"], "cli", QUESTION)


def test_ask_applies_the_configured_question_limit(corpus_index: Path, settings: Settings, tmp_path: Path) -> None:
    env = {"KB_QUERY_LOG": str(tmp_path / "querylog.sqlite"), "KB_MAX_QUESTION_CHARS": "5"}
    result = run_kb(["ask", "--index", str(corpus_index), QUESTION], settings, env=env)
    assert result.returncode == 1
    assert error_line(result) == "错误: 问题太长了，请控制在5字以内"


def test_report_unanswered(tmp_path: Path, settings: Settings) -> None:
    from server.querylog import QueryLog

    path = tmp_path / "querylog.sqlite"
    with QueryLog.open(path) as query_log:
        for _ in range(2):
            query_log.record("红烧肉怎么做？", "抱歉", False, 0.1, [], 50.0)
        answered = query_log.record("信访多久办结？", "60日", True, 0.9, [CITATION], 50.0)
        query_log.add_feedback(answered, helpful=False, comment="不对")
    result = run_kb(["report", "unanswered", "--json"], settings, env={"KB_QUERY_LOG": str(path)})
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["question"], r["count"]) for r in rows] == [("红烧肉怎么做？", 2), ("信访多久办结？", 1)]
    assert rows[1]["negative_feedback"] == 1
