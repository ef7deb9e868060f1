"""Reading release checklists written by people in Confluence storage format."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commands.release_checklist import ChecklistError, ChecklistRow, normalise_version, parse_checklist
from connectors import confluence_storage as storage


def rows_of(body: str) -> list[tuple[str, str, str]]:
    return [(r.artifact, r.environment, r.expected_version) for r in parse_checklist(body).rows]


def test_the_header_row_is_found_by_its_words_in_any_order_with_extra_columns_ignored() -> None:
    body = (
        "<table><tbody>"
        "<tr><td colspan='4'><strong>Release 7 sign-off</strong></td></tr>"
        "<tr><td>Owner</td><td>Expected version</td><td>Target environment</td><td>Artifact ID</td></tr>"
        "<tr><td>Maria</td><td>2.4.1</td><td>prod</td><td>orders-edi.map</td></tr>"
        "</tbody></table>"
    )
    assert rows_of(body) == [("orders-edi.map", "prod", "2.4.1")]


@pytest.mark.parametrize(
    "headers",
    [
        ["Artifact", "Environment", "Current version", "Expected version"],
        ["Artifact", "Environment", "Expected version", "Deployed version"],
        ["Artifact", "Env", "Version (target)", "Actual version"],
    ],
)
def test_the_expected_version_column_wins_over_current_and_deployed_ones(headers: list[str]) -> None:
    expected = next(i for i, h in enumerate(headers) if "Expected" in h or "target" in h)
    cells = ["orders-edi.map", "prod", "", ""]
    cells[expected] = "2.4.1"
    cells[5 - expected] = "1.0.0"
    body = str(storage.table(headers, [cells]))
    assert rows_of(body) == [("orders-edi.map", "prod", "2.4.1")]


def test_cell_text_collapses_whitespace_non_breaking_and_invisible_spaces() -> None:
    body = (
        "<table><tr><th>Artifact</th><th>Environment</th><th>Version</th></tr>"
        "<tr><td><p>\n  orders-edi.map&nbsp;</p></td><td> \u200bprod\u00a0</td><td><p>2.4.1</p><p></p></td></tr>"
        "<tr><td><p>my</p><p>artifact</p></td><td>a<br/>b</td><td>1.0</td></tr>"
        "</table>"
    )
    assert rows_of(body) == [("orders-edi.map", "prod", "2.4.1"), ("my artifact", "a b", "1.0")]


def test_links_count_by_their_text_or_the_page_they_point_to() -> None:
    body = (
        "<table><tr><th>Artifact</th><th>Environment</th><th>Version</th></tr>"
        '<tr><td><ac:link><ri:page ri:content-title="orders-map" /></ac:link></td><td>prod</td><td>1</td></tr>'
        '<tr><td><ac:link><ri:page ri:content-title="ignored" /><ac:plain-text-link-body><![CDATA[shown-map]]>'
        "</ac:plain-text-link-body></ac:link></td><td>prod</td><td>2</td></tr>"
        '<tr><td><a href="https://ot.example/x?token=abc">linked-map</a></td><td>prod</td><td>3</td></tr>'
        '<tr><td><ac:link><ri:attachment ri:filename="map.xml" /></ac:link></td><td>prod</td><td>4</td></tr>'
        "</table>"
    )
    assert [row[0] for row in rows_of(body)] == ["orders-map", "shown-map", "linked-map", "map.xml"]


def test_a_status_lozenge_counts_by_its_title_and_macro_parameters_are_not_text() -> None:
    version = storage.status("2.4.1", "Green")
    artifact = storage.panel("info", "orders-edi.map", title="hidden title")
    body = str(storage.table(["Artifact", "Environment", "Expected version"], [[artifact, "prod", version]]))
    assert rows_of(body) == [("orders-edi.map", "prod", "2.4.1")]


def test_merged_cells_repeat_into_every_row_and_column_they_cover() -> None:
    body = (
        "<table><tr><th>Artifact</th><th>Environment</th><th>Version</th></tr>"
        "<tr><td rowspan='3'>orders-edi.map</td><td>dev</td><td>2.4.1</td></tr>"
        "<tr><td>test</td><td>2.4.0</td></tr>"
        "<tr><td colspan='2'>prod</td></tr>"
        "<tr><td>other</td><td>dev</td><td rowspan='1000000'>9</td></tr>"
        "</table>"
    )
    assert rows_of(body) == [
        ("orders-edi.map", "dev", "2.4.1"),
        ("orders-edi.map", "test", "2.4.0"),
        ("orders-edi.map", "prod", "prod"),
        ("other", "dev", "9"),
    ]


def test_rows_missing_a_fact_are_reported_and_empty_rows_ignored() -> None:
    body = (
        "<table><thead><tr><th>Artifact</th><th>Environment</th><th>Version</th></tr></thead><tbody>"
        "<tr><td>orders-edi.map</td><td>prod</td><td></td></tr>"
        "<tr><td></td><td></td><td></td></tr>"
        "<tr><td>orders-edi.api</td><td>prod</td></tr>"
        "<tr><td>orders-edi.ok</td><td>prod</td><td>1</td></tr>"
        "</tbody></table>"
    )
    checklist = parse_checklist(body)
    assert checklist.rows == (ChecklistRow("orders-edi.ok", "prod", "1", table=1, line=5),)
    assert checklist.problems == (
        "table 1, row 2: no expected version; row skipped",
        "table 1, row 4: no expected version; row skipped",
    )


def test_every_checklist_table_is_read_and_other_tables_are_ignored() -> None:
    checklist = storage.table(["Artifact", "Environment", "Version"], [["a", "dev", "1"]])
    contacts = storage.table(["Name", "Phone"], [["Maria", "123"]])
    nested = storage.table(["Artifact", "Environment", "Version"], [["inner", "dev", "2"]])
    outer = storage.table(["Artifact", "Environment", "Version"], [[nested, "test", "3"]])
    body = "".join(str(t) for t in (contacts, checklist, outer))
    # The nested table is a table of its own; its text is not part of the outer cell.
    assert rows_of(body) == [("a", "dev", "1"), ("inner", "dev", "2")]
    assert parse_checklist(body).problems == ("table 3, row 2: no artifact; row skipped",)


def test_a_repeated_header_row_inside_a_long_table_is_not_a_data_row() -> None:
    header = ["Artifact", "Environment", "Version"]
    body = str(storage.table(header, [["a", "dev", "1"], header, ["b", "dev", "2"]]))
    assert rows_of(body) == [("a", "dev", "1"), ("b", "dev", "2")]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("<p>No table here</p>", "no checklist table found"),
        (
            str(storage.table(["Artifact", "Version"], [["a", "1"]])),
            "Artifact, Environment and Expected version",
        ),
        ("<table><tr><td>unclosed</table>", "could not be read"),
    ],
)
def test_a_body_without_a_readable_checklist_is_an_error_saying_what_to_fix(body: str, message: str) -> None:
    with pytest.raises(ChecklistError, match=message):
        parse_checklist(body)


@pytest.mark.parametrize(
    ("written", "normal"), [("v2.4.1", "2.4.1"), (" 2.4.1 ", "2.4.1"), ("V10", "10"), ("vNext", "vNext")]
)
def test_versions_compare_without_a_leading_v_before_a_digit(written: str, normal: str) -> None:
    assert normalise_version(written) == normal


_WORDS = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Cn", "Zl", "Zp")), min_size=1, max_size=30
).filter(
    lambda s: (
        s.split() != []
        and not any(word in s.lower() for word in ("artifact", "environment", "version", "env", "stage"))
    )
)


@given(st.lists(st.tuples(_WORDS, _WORDS, _WORDS), min_size=1, max_size=5))
def test_any_table_the_storage_builder_writes_reads_back_as_the_same_rows(
    rows: list[tuple[str, str, str]],
) -> None:
    body = str(storage.table(["Artifact", "Environment", "Expected version"], [list(row) for row in rows]))
    assert rows_of(body) == [tuple(" ".join(cell.split()) for cell in row) for row in rows]
