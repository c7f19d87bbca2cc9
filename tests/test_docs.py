"""The README's generated tables (cli/docs.py) agree with the parser, the routes and the settings. Fast: no model."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from cli import docs
from cli.main import build_parser
from kb.config import Settings, documented_settings
from server.settings import ServerSettings


@pytest.fixture(scope="module")
def readme() -> str:
    return docs.README.read_text(encoding="utf-8")


def section(text: str, name: str) -> str:
    start, end = docs._span(text, name)
    return text[start:end]


def table_keys(table: str) -> set[str]:
    """The first code span of each row's first non-empty cell: a command, an endpoint or a variable."""
    keys = set()
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        first = next((c for c in cells if c), "")
        if match := re.match(r"`([^`]+)`", first):
            keys.add(match.group(1))
    return keys


def test_readme_is_up_to_date(readme: str) -> None:
    stale = docs.stale_sections(readme, docs.render(readme))
    assert not stale, f"README.md's generated sections {stale} are out of date: run `python -m cli.docs`"


def test_every_route_is_in_the_http_table(readme: str) -> None:
    listed = {key for key in table_keys(section(readme, "http")) if " /" in key}
    routes = {key for key, _ in docs.routes(docs.openapi())}
    assert routes - listed == set(), "routes missing from README.md: run `python -m cli.docs`"
    assert listed - routes == set(), "README.md lists routes that do not exist: run `python -m cli.docs`"


def test_admin_document_and_job_routes_are_documented(readme: str) -> None:
    table = section(readme, "http")
    for route in ("POST /api/admin/documents", "DELETE /api/admin/documents/{doc_id}", "GET /api/admin/jobs/{job_id}"):
        assert f"`{route}`" in table


def test_every_route_has_a_docstring_and_a_route_without_one_stops_generation() -> None:
    app = docs.openapi_app()
    assert all(op.get("description") for _, op in docs.routes(app.openapi()))

    @app.get("/undocumented")
    def undocumented() -> dict:
        return {}

    app.openapi_schema = None
    with pytest.raises(KeyError, match=re.escape("GET /undocumented")):
        docs.http_table(app.openapi())


def test_every_setting_is_in_the_config_table(readme: str) -> None:
    listed = table_keys(section(readme, "config"))
    variables = [env for cls in (Settings, ServerSettings) for env, _, _ in documented_settings(cls)]
    assert set(variables) - listed == set(), "settings missing from README.md: run `python -m cli.docs`"
    assert listed - set(variables) == set(), "README.md lists settings that do not exist: run `python -m cli.docs`"


def subcommands(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
    """Every command and nested subcommand of a parser, e.g. `kb report unanswered`."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += [f"{prefix} {name}", *subcommands(sub, f"{prefix} {name}")]
    return found


def test_every_subcommand_is_in_the_cli_table(readme: str) -> None:
    table = section(readme, "cli")
    missing = [command for command in subcommands(build_parser(), "kb") if f"`{command}" not in table]
    assert not missing, f"commands missing from README.md: {missing}; run `python -m cli.docs`"
    assert "`kb report unanswered`" in table and "`kb model build`" in table


def test_hidden_options_stay_out_of_the_cli_table(readme: str) -> None:
    table = section(readme, "cli")
    assert not re.search(r"--method\b", table), "--method is hidden (argparse.SUPPRESS)"
    assert "--methods" in table
    assert not re.search(r"--help\b(?!-)", table), "argparse's own --help"  # --help-phone … are ingest's options


def test_render_replaces_only_what_lies_between_the_markers() -> None:
    text = ("# Title\nhand-written\n<!-- generated:a -->\nstale table\n<!-- /generated:a -->\nmiddle\n"
            "<!-- generated:b --><!-- /generated:b -->\nend\n")
    sections = {"a": lambda: "| fresh |", "b": lambda: "B"}
    rendered = docs.render(text, sections)
    assert rendered == ("# Title\nhand-written\n<!-- generated:a -->\n| fresh |\n<!-- /generated:a -->\nmiddle\n"
                        "<!-- generated:b -->\nB\n<!-- /generated:b -->\nend\n")
    assert docs.render(rendered, sections) == rendered


@pytest.mark.parametrize("text, message", [
    ("no markers at all", "<!-- generated:a --> exactly once"),
    ("<!-- generated:a -->\nx\n", "<!-- /generated:a --> exactly once"),
    ("<!-- generated:a --><!-- /generated:a --><!-- generated:a -->", "exactly once"),
    ("<!-- /generated:a -->x<!-- generated:a -->", "comes before"),
])
def test_render_refuses_missing_or_misplaced_markers(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        docs.render(text, {"a": lambda: "x"})


def test_check_names_the_stale_section(readme: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    stale = readme.replace("| `KB_INDEX` |", "| `KB_INDEKS` |")
    assert stale != readme
    monkeypatch.setattr(docs, "README", tmp_path / "README.md")
    docs.README.write_text(stale, encoding="utf-8")
    assert docs.main(["--check"]) == 1
    assert "'config'" in capsys.readouterr().out
    assert docs.README.read_text(encoding="utf-8") == stale, "--check changes nothing"
    assert docs.main([]) == 0
    assert docs.README.read_text(encoding="utf-8") == docs.render(stale)
    assert docs.main(["--check"]) == 0
