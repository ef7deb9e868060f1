"""Read a release checklist (artifact | environment | expected version) from a Confluence page body.

People write these tables by hand, so the parser is lenient about everything but the facts:
the header row is found by its words (any row, `th` or `td`, any column order, extra columns
ignored), cell text has its whitespace collapsed (non-breaking spaces included), links count by
their text (or the page title they point to), a status lozenge counts by its title, merged cells
(`rowspan`/`colspan`) are repeated into every row and column they cover, and several checklist
tables on one page are read one after the other. Rows it cannot use are reported, not guessed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

from connectors.confluence_storage import AC_NAMESPACE, RI_NAMESPACE, StorageFormatError, parse_storage

__all__ = [
    "Checklist",
    "ChecklistError",
    "ChecklistRow",
    "cell_text",
    "normalise_version",
    "parse_checklist",
    "table_grid",
]

_AC: Final = f"{{{AC_NAMESPACE}}}"
_RI: Final = f"{{{RI_NAMESPACE}}}"
# Invisible characters editors leave behind that str.split() does not treat as spaces.
_INVISIBLE: Final = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
_BLOCKS: Final = frozenset(
    {"p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote"}
)
_SKIPPED: Final = frozenset({f"{_AC}parameter", f"{_AC}placeholder", f"{_AC}image", "colgroup", "table"})
_MAX_SPAN: Final = 100  # a hostile rowspan="1000000" must not build a huge grid
_VERSION_PREFIX: Final = re.compile(r"^[vV](?=\d)")


class ChecklistError(ValueError):
    """The page holds no checklist table the parser could read; the message says what to fix."""


@dataclass(frozen=True)
class ChecklistRow:
    """One line of the checklist; `line` is its row number in its table (header = 1)."""

    artifact: str
    environment: str
    expected_version: str
    table: int
    line: int


@dataclass(frozen=True)
class Checklist:
    rows: tuple[ChecklistRow, ...]
    problems: tuple[str, ...] = ()


def normalise_version(value: str) -> str:
    """Versions compare without surrounding space and without a leading "v" before a digit."""
    return _VERSION_PREFIX.sub("", value.strip())


# ------------------------------------------------------------------------------------ cell text


def cell_text(element: ET.Element) -> str:
    """The visible text of a cell, whitespace collapsed to single spaces."""
    parts: list[str] = []
    _collect_children(element, parts)
    return " ".join("".join(parts).translate(_INVISIBLE).split())


def _collect_children(element: ET.Element, parts: list[str]) -> None:
    if element.text:
        parts.append(element.text)
    for child in element:
        _collect(child, parts)
        if child.tail:
            parts.append(child.tail)


def _collect(element: ET.Element, parts: list[str]) -> None:
    tag = element.tag
    if tag in _SKIPPED:
        return
    if tag == "br":
        parts.append(" ")
    elif tag == f"{_AC}link":
        parts.append(_link_text(element))
    elif tag in (f"{_AC}structured-macro", f"{_AC}macro"):
        _collect_macro(element, parts)
    elif tag in _BLOCKS:
        parts.append(" ")
        _collect_children(element, parts)
        parts.append(" ")
    else:
        _collect_children(element, parts)


def _link_text(link: ET.Element) -> str:
    for body_tag in (f"{_AC}plain-text-link-body", f"{_AC}link-body"):
        body = link.find(body_tag)
        if body is not None:
            text = cell_text(body)
            if text:
                return text
    for resource, attribute in (
        ("page", "content-title"),
        ("attachment", "filename"),
        ("url", "value"),
        ("blog-post", "content-title"),
    ):
        target = link.find(f"{_RI}{resource}")
        if target is not None and target.get(f"{_RI}{attribute}"):
            return target.get(f"{_RI}{attribute}", "")
    return ""


def _collect_macro(macro: ET.Element, parts: list[str]) -> None:
    if macro.get(f"{_AC}name") == "status":
        for parameter in macro.findall(f"{_AC}parameter"):
            if parameter.get(f"{_AC}name") == "title":
                parts.append(cell_text(parameter))
        return
    for body_tag in (f"{_AC}rich-text-body", f"{_AC}plain-text-body"):
        body = macro.find(body_tag)
        if body is not None:
            parts.append(" ")
            _collect_children(body, parts)
            parts.append(" ")


# ------------------------------------------------------------------------------------- tables


def _rows_of(table: ET.Element) -> Iterator[ET.Element]:
    # Only this table's rows: a table nested in a cell is a table of its own.
    for child in table:
        if child.tag == "tr":
            yield child
        elif child.tag in ("thead", "tbody", "tfoot"):
            yield from (row for row in child if row.tag == "tr")


def _span(cell: ET.Element, name: str) -> int:
    try:
        value = int((cell.get(name) or "1").strip())
    except ValueError:
        return 1
    return min(max(value, 1), _MAX_SPAN)


def table_grid(table: ET.Element) -> list[list[str]]:
    """The table's text as a grid, merged cells repeated into every slot they cover."""
    grid: list[list[str]] = []
    carried: dict[int, tuple[str, int]] = {}  # column -> (text, rows still covered below)
    for row in _rows_of(table):
        cells = [cell for cell in row if cell.tag in ("td", "th")]
        line: list[str] = []
        index = 0
        while index < len(cells) or any(column >= len(line) for column in carried):
            column = len(line)
            if column in carried:
                text, left = carried[column]
                line.append(text)
                if left <= 1:
                    del carried[column]
                else:
                    carried[column] = (text, left - 1)
                continue
            if index >= len(cells):
                line.append("")
                continue
            cell = cells[index]
            index += 1
            text, rowspan = cell_text(cell), _span(cell, "rowspan")
            for _ in range(_span(cell, "colspan")):
                if rowspan > 1:
                    carried[len(line)] = (text, rowspan - 1)
                line.append(text)
        grid.append(line)
    return grid


@dataclass
class _Columns:
    artifact: int
    environment: int
    version: int


def _header(words: Sequence[str]) -> _Columns | None:
    lowered = [" ".join(re.sub(r"[^a-z0-9]+", " ", word.lower()).split()) for word in words]

    def first(matches: Sequence[int]) -> int | None:
        return matches[0] if matches else None

    artifact = first([i for i, w in enumerate(lowered) if "artifact" in w])
    environment = first(
        [i for i, w in enumerate(lowered) if "environment" in w or w in ("env", "stage", "target env")]
    )
    versions = [i for i, w in enumerate(lowered) if "version" in w]
    # "Expected version" wins over "Current version" / "Deployed version" columns beside it.
    preferred = [i for i in versions if any(k in lowered[i] for k in ("expected", "target", "release"))]
    neutral = [i for i in versions if not any(k in lowered[i] for k in ("current", "deployed", "actual"))]
    version = first(preferred) if preferred else first(neutral) if neutral else first(versions)
    if artifact is None or environment is None or version is None:
        return None
    if len({artifact, environment, version}) < 3:
        return None
    return _Columns(artifact, environment, version)


@dataclass
class _TableReading:
    rows: list[ChecklistRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _read_table(grid: list[list[str]], number: int) -> _TableReading | None:
    reading = _TableReading()
    columns: _Columns | None = None
    for line_number, line in enumerate(grid, start=1):
        header = _header(line)
        if header is not None:
            columns = header  # a repeated header row (long tables) restarts the columns
            continue
        if columns is None or not any(line):
            continue
        width = max(columns.artifact, columns.environment, columns.version) + 1
        padded = line + [""] * (width - len(line))
        artifact, environment, version = (
            padded[columns.artifact],
            padded[columns.environment],
            padded[columns.version],
        )
        if not artifact and not environment and not version:
            continue
        missing = [
            name
            for name, value in (
                ("artifact", artifact),
                ("environment", environment),
                ("expected version", version),
            )
            if not value
        ]
        if missing:
            reading.problems.append(
                f"table {number}, row {line_number}: no {' or '.join(missing)}; row skipped"
            )
            continue
        reading.rows.append(ChecklistRow(artifact, environment, version, number, line_number))
    return reading if columns is not None else None


def parse_checklist(body: str) -> Checklist:
    """Every checklist row of a storage body; ChecklistError when no table has the three columns."""
    try:
        root = parse_storage(body)
    except StorageFormatError as exc:
        raise ChecklistError(f"the page body could not be read: {exc}") from None
    rows: list[ChecklistRow] = []
    problems: list[str] = []
    found = False
    for number, table in enumerate(root.iter("table"), start=1):
        reading = _read_table(table_grid(table), number)
        if reading is None:
            continue
        found = True
        rows.extend(reading.rows)
        problems.extend(reading.problems)
    if not found:
        raise ChecklistError(
            "no checklist table found: add a table whose header row names the columns "
            "Artifact, Environment and Expected version"
        )
    return Checklist(tuple(rows), tuple(problems))
