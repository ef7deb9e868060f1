"""Read an interface specification (message type | endpoint | version per environment) from a page body.

Architects write these tables by hand, so the reader is lenient about layout and strict about
facts, like `commands.release_checklist` (whose cell and grid readers it uses: merged cells,
links, status lozenges, invisible characters). A header row is found by its words, in any row
and column order:

- *Message type* (also "Message", "Msg type", "Document type") names what flows;
- *Endpoint* and/or *Artifact* name the OpenText artifact that serves it (Artifact wins when a
  table has both and its cell is filled);
- the version per environment comes in one of three layouts:
    1. an *Environment* column plus a *Version* column (one row per environment);
    2. one version column per environment, headed by its name: `prod`, `Prod version`,
       `Version (test)`;
    3. a *Version* column, with the environment named by the nearest heading above the table
       (`prod`, `Production (prod)`).

A version cell of `-`, `—`, `n/a`, `none` or `not deployed` says the artifact must not run there.
Rows that cannot be used are reported, not guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from commands.release_checklist import cell_text, normalise_version, table_grid
from connectors.confluence_storage import StorageFormatError, parse_storage

__all__ = ["InterfaceSpec", "SpecError", "SpecRow", "parse_interface_spec"]

_HEADINGS: Final = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_NOT_DEPLOYED: Final = frozenset({"-", "\u2014", "\u2013", "n/a", "na", "none", "not deployed", "not used"})
# Words around an environment's name in a version column's header ("Prod version", "Version (test)").
_VERSION_WORDS: Final = frozenset({"version", "versions", "expected", "spec", "specified", "target", "in"})


class SpecError(ValueError):
    """The page holds no specification table the reader could use; the message says what to fix."""


@dataclass(frozen=True)
class SpecRow:
    """One message type's expected version of its artifact in one environment.

    `expected_version` None means the spec says the artifact must not run in that environment.
    """

    message_type: str
    endpoint: str
    environment: str
    expected_version: str | None
    table: int
    line: int

    @property
    def where(self) -> str:
        return f"table {self.table}, row {self.line}"


@dataclass(frozen=True)
class InterfaceSpec:
    rows: tuple[SpecRow, ...]
    problems: tuple[str, ...] = ()


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


@dataclass
class _Columns:
    message: int
    endpoint: int | None
    artifact: int | None
    environment: int | None = None
    version: int | None = None
    per_environment: dict[int, str] = field(default_factory=dict)  # column -> environment

    def reference(self, line: Sequence[str]) -> str:
        """The artifact the row names: the Artifact cell when filled, else the Endpoint cell."""
        for column in (self.artifact, self.endpoint):
            if column is not None and column < len(line) and line[column]:
                return line[column]
        return ""


def _environment_named(text: str, environments: dict[str, str]) -> str | None:
    """The environment a header names once version words are dropped ("Prod version" -> prod)."""
    words = [w for w in _words(text).split() if w not in _VERSION_WORDS]
    return environments.get(" ".join(words)) if words else None


def _header(line: Sequence[str], environments: dict[str, str]) -> _Columns | None:
    lowered = [_words(cell) for cell in line]

    def first(predicate: Callable[[str], bool]) -> int | None:
        return next((i for i, w in enumerate(lowered) if predicate(w)), None)

    message = first(lambda w: "message" in w or w.startswith("msg") or w in ("document type", "transaction"))
    endpoint = first(lambda w: "endpoint" in w)
    artifact = first(lambda w: "artifact" in w)
    if message is None or (endpoint is None and artifact is None):
        return None
    taken = {message, endpoint, artifact} - {None}
    columns = _Columns(message, endpoint, artifact)
    columns.environment = first(lambda w: "environment" in w or w in ("env", "stage"))
    for index, cell in enumerate(line):
        if index in taken or index == columns.environment:
            continue
        named = _environment_named(cell, environments)
        if named is not None:
            columns.per_environment[index] = named
    versions = [
        i
        for i, w in enumerate(lowered)
        if "version" in w and i not in columns.per_environment and i not in taken
    ]
    preferred = [i for i in versions if any(k in lowered[i] for k in ("expected", "spec", "target"))]
    neutral = [i for i in versions if not any(k in lowered[i] for k in ("current", "deployed", "actual"))]
    columns.version = next(iter(preferred or neutral or versions), None)
    if columns.version is None and not columns.per_environment:
        return None
    return columns


def _expected(cell: str) -> str | None:
    return None if cell.strip().lower() in _NOT_DEPLOYED else normalise_version(cell)


def _read_table(
    grid: list[list[str]],
    number: int,
    environments: dict[str, str],
    heading_environment: str | None,
    rows: list[SpecRow],
    problems: list[str],
) -> bool:
    """Add the table's rows; False when it has no specification header at all."""
    columns: _Columns | None = None
    for line_number, line in enumerate(grid, start=1):
        header = _header(line, environments)
        if header is not None:
            columns = header  # a repeated header row (long tables) restarts the columns
            if not (header.environment is not None or header.per_environment or heading_environment):
                problems.append(
                    f"table {number}: no environment; add an Environment column, one version column per "
                    "environment, or put the table under a heading naming the environment"
                )
            continue
        if columns is None or not any(line):
            continue
        width = 1 + max(
            [columns.message, *columns.per_environment]
            + [
                c
                for c in (columns.endpoint, columns.artifact, columns.environment, columns.version)
                if c is not None
            ]
        )
        padded = [*line, *[""] * (width - len(line))]
        message = padded[columns.message]
        reference = columns.reference(padded)
        where = f"table {number}, row {line_number}"
        if not message and not reference:
            continue
        if not reference:
            problems.append(f"{where}: no endpoint or artifact for {message or 'the row'}; row skipped")
            continue
        expectations: list[tuple[str, str]] = []
        if columns.per_environment:
            expectations = [(env, padded[col]) for col, env in columns.per_environment.items() if padded[col]]
            if not expectations:
                problems.append(f"{where}: no version in any environment for {reference}; row skipped")
        elif columns.version is not None:
            if columns.environment is not None:
                environment = padded[columns.environment]
            else:
                environment = heading_environment or ""
            if not environment:
                if heading_environment is not None or columns.environment is not None:
                    problems.append(f"{where}: no environment; row skipped")
                continue
            version = padded[columns.version]
            if not version:
                problems.append(f"{where}: no version for {reference} in {environment}; row skipped")
                continue
            expectations = [(environment, version)]
        for environment, version in expectations:
            rows.append(SpecRow(message, reference, environment, _expected(version), number, line_number))
    return columns is not None


def _heading_environment(text: str, environments: dict[str, str]) -> str | None:
    """The environment a heading names: a whole word equal to an environment name (last one wins)."""
    found = None
    for word in _words(text).split():
        if word in environments:
            found = environments[word]
    return found


def parse_interface_spec(body: str, environments: Sequence[str]) -> InterfaceSpec:
    """Every specification row of a storage body; SpecError when no table has the columns.

    `environments` are the configured environment names: version columns and headings are
    recognised by them (case does not matter). An environment column may name any environment;
    the comparison reports the ones opsgate does not know.
    """
    try:
        root = parse_storage(body)
    except StorageFormatError as exc:
        raise SpecError(f"the page body could not be read: {exc}") from None
    known = {name.lower(): name for name in environments}
    rows: list[SpecRow] = []
    problems: list[str] = []
    found = False
    heading: str | None = None
    number = 0
    # Document order: a heading applies to the tables after it, until the next heading.
    for element in root.iter():
        if element.tag in _HEADINGS:
            heading = _heading_environment(cell_text(element), known)
        elif element.tag == "table":
            number += 1
            found |= _read_table(table_grid(element), number, known, heading, rows, problems)
    if not found:
        raise SpecError(
            "no specification table found: add a table whose header row names the columns "
            "Message type, Endpoint (or Artifact) and Version, with the environment in a column, "
            "in per-environment version columns, or in the heading above it"
        )
    return InterfaceSpec(tuple(rows), tuple(problems))
