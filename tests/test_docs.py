"""The README stays a front door and every relative link in the documentation resolves.

A link resolves when its file exists (relative to the page that holds it) and, for a `#anchor`,
when the target page has a heading whose GitHub anchor is that name. Links inside code blocks
and inline code are not links; absolute URLs (`https:`, `mailto:`) are not checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README_LINE_LIMIT = 400

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target) and ![alt](target), with an optional "title"; text may hold one level of [..].
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def documentation_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines outside fenced code blocks, with inline code removed."""
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, _INLINE_CODE.sub("", line)


def heading_anchors(text: str) -> set[str]:
    """The anchors GitHub gives the page's headings (duplicates get -1, -2...)."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match is None:
            continue
        title = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", match.group(2))  # a link counts by its text
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """`page:line: target (why)` for every relative link of the page that does not resolve."""
    problems = []
    text = page.read_text(encoding="utf-8")
    for number, line in _prose_lines(text):
        targets = [m.group(1) for m in _INLINE_LINK.finditer(line)]
        if definition := _REFERENCE_DEFINITION.match(line):
            targets.append(definition.group(1))
        for target in targets:
            if _SCHEME.match(target):
                continue
            path_part, _, anchor = target.partition("#")
            resolved = (page.parent / path_part).resolve() if path_part else page
            where = f"{page.relative_to(root)}:{number}: {target}"
            if not resolved.is_file():
                problems.append(f"{where} (no such file)")
            elif anchor and resolved.suffix == ".md":
                if anchor not in heading_anchors(resolved.read_text(encoding="utf-8")):
                    problems.append(f"{where} (no heading #{anchor} in {resolved.name})")
    return problems


def test_readme_is_shorter_than_400_lines():
    lines = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert lines < README_LINE_LIMIT, (
        f"README.md has {lines} lines; keep it a front door under {README_LINE_LIMIT} "
        "and move reference material to docs/"
    )


def test_every_relative_link_in_the_readme_and_docs_resolves():
    problems = [problem for page in documentation_pages() for problem in broken_links(page)]
    assert problems == []


def test_readme_names_the_test_command_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^make test$", ci, re.MULTILINE), "CI no longer runs `make test`"
    assert "make test" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_link_check_reports_a_missing_file_and_a_missing_anchor(tmp_path: Path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "topic.md").write_text("# Topic\n\n## The `/ops help` command\n", encoding="utf-8")
    page = tmp_path / "README.md"
    page.write_text(
        "[fine](docs/topic.md#the-ops-help-command) [fine too](#here)\n"
        "# Here\n"
        "[gone](docs/missing.md) [no anchor](docs/topic.md#nowhere) [web](https://example.com/x.md)\n"
        "`[code](docs/missing.md)`\n"
        "```\n[fenced](docs/missing.md)\n```\n",
        encoding="utf-8",
    )
    assert broken_links(page, tmp_path) == [
        "README.md:3: docs/missing.md (no such file)",
        "README.md:3: docs/topic.md#nowhere (no heading #nowhere in topic.md)",
    ]


def test_heading_anchors_follow_github():
    text = "# Quick start\n## `opsgate audit export`\n## Sizing\n### Sizing\n## A [link](x.md), too!\n"
    assert heading_anchors(text) == {
        "quick-start",
        "opsgate-audit-export",
        "sizing",
        "sizing-1",
        "a-link-too",
    }
