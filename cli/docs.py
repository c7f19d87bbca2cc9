"""The README's reference tables, generated from the code they describe, so that they cannot drift.

The command table comes from `cli.main.build_parser()`, the HTTP table from the FastAPI app's OpenAPI description
(`server.app.build_app`, which loads no model and no index) and the configuration table from the `setting(...)`
declarations of `kb.config.Settings` and `server.settings.ServerSettings`. Each table sits in README.md between
`<!-- generated:NAME -->` and `<!-- /generated:NAME -->`; everything outside the markers is written by hand.

    python -m cli.docs           rewrite README.md's generated sections
    python -m cli.docs --check   exit 1, naming the sections that differ, when README.md is out of date

tests/test_docs.py runs the check, so a new option, route or setting fails the tests until the README shows it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from cli.main import build_parser
from kb.config import PROJECT_ROOT, Settings, documented_settings
from server.settings import ServerSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

README = PROJECT_ROOT / "README.md"

_NARGS_FORMATS: dict[str | int | None, str] = {None: "{0}", "?": "[{0}]", "*": "[{0} ...]", "+": "{0} [{0} ...]"}


def _cell(text: str) -> str:
    """Text fit for one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# -- command line ------------------------------------------------------------------------------------------------

def _invocation(action: argparse.Action) -> str:
    """How an argument is written, as in `kb COMMAND --help`: `-k, --top-k TOP_K`, `[paths ...]`."""
    if action.option_strings:
        metavar = action.metavar or ("{" + ",".join(action.choices) + "}" if action.choices else action.dest.upper())
        names = ", ".join(action.option_strings)
        return f"`{names}`" if action.nargs == 0 else f"`{names} {metavar}`"
    return "`" + _NARGS_FORMATS[action.nargs].format(action.metavar or action.dest) + "`"


def _meaning(action: argparse.Action) -> str:
    """The argument's help, with its default when the help does not give it."""
    help_text = action.help or ""
    shown_default = action.default not in (None, False, argparse.SUPPRESS) and not isinstance(action.default, list)
    if shown_default and "default" not in help_text:
        help_text = f"{help_text} (default {action.default})".strip()
    return help_text


def _commands(parser: argparse.ArgumentParser, name: str, help_text: str) -> Iterator[tuple[str, str, str]]:
    """(command, argument, meaning) rows of a parser and its subcommands: a row for the command, one per argument."""
    actions = [a for a in parser._actions
               if a.help != argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)]
    subcommands = [a for a in actions if isinstance(a, argparse._SubParsersAction)]
    arguments = [a for a in actions if not a.option_strings and a not in subcommands]
    arguments += [a for a in actions if a.option_strings]
    if arguments or not subcommands:
        yield f"`{name}`", "", help_text
        for action in arguments:
            yield "", _invocation(action), _meaning(action)
    for group in subcommands:
        helps = {choice.dest: choice.help or "" for choice in group._choices_actions}
        for sub_name, sub_parser in group.choices.items():
            yield from _commands(sub_parser, f"{name} {sub_name}", helps[sub_name])


def cli_table() -> str:
    """Every command of `kb` with its arguments and options, from the argument parser's help strings."""
    parser = build_parser()
    return _table(["command", "argument or option", "meaning"],
                  list(_commands(parser, parser.prog, parser.description or "")))


# -- HTTP API ----------------------------------------------------------------------------------------------------

def openapi_app() -> FastAPI:
    """The service's application with every optional router (WeChat, admin) switched on; no model loaded."""
    from server.app import build_app

    return build_app(dataclasses.replace(ServerSettings(), wechat_token="x", admin_key="x"))


def openapi() -> dict:
    return openapi_app().openapi()


def routes(spec: dict) -> Iterator[tuple[str, dict]]:
    """("METHOD /path", operation) of every route in an OpenAPI description, in its order."""
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            yield f"{method.upper()} {path}", operation


def _schema(spec: dict, schema: dict) -> dict:
    """A schema with its `$ref` followed and a nullable `anyOf` reduced to the non-null alternative."""
    alternatives = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
    schema = alternatives[0]
    if "$ref" in schema:
        return spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _example(schema: dict) -> str:
    """A JSON value's shape: its range, `true/false`, `[...]`, `{...}` or `...`."""
    if "minimum" in schema and "maximum" in schema:
        return f"{schema['minimum']:g}–{schema['maximum']:g}"
    return {"boolean": "true/false", "array": "[...]", "object": "{...}"}.get(schema.get("type", ""), "...")


def _query(parameter: dict) -> str:
    """A query parameter as written in a URL: `top_k=5` with its default, else `q=...`."""
    default = parameter["schema"].get("default")
    return f"{parameter['name']}={'...' if default in (None, '') else default}"


def _takes(spec: dict, operation: dict) -> str:
    """A route's query parameters and JSON body, e.g. `?q=...&top_k=5`, `{"question": ..., "top_k"?: 1–10}`."""
    parts = []
    query = [p for p in operation.get("parameters", []) if p["in"] == "query"]
    if query:
        parts.append("`?" + "&".join(_query(p) for p in query) + "`")
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if body:
        schema = _schema(spec, body["schema"])
        required = set(schema.get("required", []))
        fields = [f'"{name}"{"" if name in required else "?"}: {_example(_schema(spec, prop))}'
                  for name, prop in schema["properties"].items()]
        parts.append("`{" + ", ".join(fields) + "}`")
    return " ".join(parts)


def _does(operation: dict) -> str:
    """What a route does: the first paragraph of its docstring; and whether it answers 202."""
    text = operation.get("description", "").split("\n\n")[0]
    if "202" in operation["responses"]:
        text = text.rstrip(".") + "; answers 202 with a background job"
    return text


def http_table(spec: dict | None = None) -> str:
    """Every route of the OpenAPI description: method and path, what it takes, what it does."""
    spec = spec or openapi()
    undescribed = [key for key, op in routes(spec) if not op.get("description")]
    if undescribed:
        raise KeyError(f"give these routes a docstring (it is their line in the README): {undescribed}")
    rows = [(f"`{key}`", _takes(spec, op), _does(op)) for key, op in routes(spec)]
    return _table(["endpoint", "takes", "what"], rows)


# -- configuration -----------------------------------------------------------------------------------------------

def config_table() -> str:
    """Every environment variable of the library's settings, then of the HTTP service's, with default and meaning."""
    rows = [(f"`{env}`", default, meaning)
            for cls in (Settings, ServerSettings) for env, default, meaning in documented_settings(cls)]
    return _table(["variable", "default", "meaning"], rows)


# -- README.md ---------------------------------------------------------------------------------------------------

SECTIONS: dict[str, Callable[[], str]] = {"cli": cli_table, "http": http_table, "config": config_table}


def _span(text: str, name: str) -> tuple[int, int]:
    """Where the content between a section's two markers starts and ends; ValueError unless each is there once."""
    start_marker, end_marker = f"<!-- generated:{name} -->", f"<!-- /generated:{name} -->"
    for marker in (start_marker, end_marker):
        if text.count(marker) != 1:
            raise ValueError(f"README.md must contain {marker} exactly once (found {text.count(marker)})")
    start, end = text.index(start_marker) + len(start_marker), text.index(end_marker)
    if end < start:
        raise ValueError(f"{end_marker} comes before {start_marker}")
    return start, end


def render(readme_text: str, sections: dict[str, Callable[[], str]] = SECTIONS) -> str:
    """The README with the content between each section's markers replaced by that section's generated table."""
    for name, generate in sections.items():
        start, end = _span(readme_text, name)
        readme_text = f"{readme_text[:start]}\n{generate()}\n{readme_text[end:]}"
    return readme_text


def stale_sections(readme_text: str, rendered: str) -> list[str]:
    """The sections whose content differs between the README as it is and as rendered."""
    return [name for name in SECTIONS
            if readme_text[slice(*_span(readme_text, name))] != rendered[slice(*_span(rendered, name))]]


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite README.md's generated sections, or with --check report (exit 1) the ones that are out of date."""
    parser = argparse.ArgumentParser(prog="python -m cli.docs", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if README.md is out of date")
    args = parser.parse_args(argv)
    current = README.read_text(encoding="utf-8")
    rendered = render(current)
    if args.check:
        stale = stale_sections(current, rendered)
        for name in stale:
            print(f"README.md: the generated section '{name}' is out of date; run `python -m cli.docs`")
        return 1 if stale else 0
    if rendered != current:
        README.write_text(rendered, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
