"""What an ingest says of its knowledge base's identity (kb.config.Identity: township, help station, phone,
address, hours, what it holds), and how that meets what the knowledge base had stored.

Two ways to say it, both optional: a `kb.toml` in a folder being ingested, beside the documents, e.g.

    township = "青山镇"
    help_phone = "0891-5550000"

and `kb ingest`'s options (--township, --help-phone …), which go on top. A township's staff write the file once and
re-ingest whenever documents change, or change one value with one option, so:

- an ingest that says nothing keeps what the knowledge base had (an upload through the admin API, a plain
  `kb ingest`, the rebuild after an upgrade change no identity);
- a kb.toml says the whole identity: what it leaves out is no longer the knowledge base's own (delete a line, and
  the deployment's setting shows again);
- an option changes its one value and keeps the rest; an empty one (`--help-hours ""`) removes it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kb.config import own_identity
from kb.errors import KnowledgeBaseError

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, as a package (pyproject.toml)
    import tomli as tomllib

#: The file, in a folder being ingested, that says its knowledge base's identity (never indexed: not a document type).
KB_TOML = "kb.toml"
UNCHANGED = "; the knowledge base was not changed"


class IdentityError(KnowledgeBaseError):
    """A kb.toml, or an option, that cannot be an identity; the ingest stops before it changes anything."""


@dataclass(frozen=True)
class IdentityChange:
    """An ingest's say on the identity: its kb.toml files' values (None: no file) and its options' values."""

    from_files: dict[str, str] | None = None
    given: dict[str, str] = field(default_factory=dict)

    def applied_to(self, stored: Mapping[str, str]) -> dict[str, str]:
        """The knowledge base's own identity after this ingest, from the one it had stored."""
        own = {**(stored if self.from_files is None else self.from_files), **self.given}
        return {key: value for key, value in own.items() if value}


def read_kb_toml(path: Path) -> dict[str, str]:
    """A kb.toml's identity values; IdentityError naming the file and what is wrong, in one line."""
    try:
        with path.open("rb") as file:
            raw = tomllib.load(file)
    except (OSError, ValueError) as exc:  # TOML errors and text that is not UTF-8 are ValueErrors
        raise IdentityError(f"{path}: {exc}{UNCHANGED}") from exc
    try:
        return own_identity(raw, str(path))
    except ValueError as exc:
        raise IdentityError(f"{exc}{UNCHANGED}") from exc


def identity_change(paths: Sequence[Path], given: Mapping[str, str] | None = None) -> IdentityChange:
    """What the kb.toml files of the folders in `paths` (in order, a later file's values winning) and the ingest's
    options `given` say; checked before anything is read or written."""
    files = [folder / KB_TOML for folder in paths if (folder / KB_TOML).is_file()]
    from_files: dict[str, str] | None = None
    for path in files:
        from_files = {**(from_files or {}), **read_kb_toml(path)}
    try:
        options = own_identity(dict(given or {}), "kb ingest")
    except ValueError as exc:
        raise IdentityError(f"{exc}{UNCHANGED}") from exc
    return IdentityChange(from_files, options)
