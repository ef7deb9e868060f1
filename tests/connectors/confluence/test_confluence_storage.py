"""Storage-format builder: output is well-formed XHTML and hostile text survives as text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.confluence_storage import (
    AC_NAMESPACE,
    RI_NAMESPACE,
    Document,
    Fragment,
    StorageFormatError,
    bullet_list,
    code_block,
    external_link,
    heading,
    numbered_list,
    page_link,
    panel,
    paragraph,
    parse_storage,
    status,
    storage_equivalent,
    strong,
    table,
    toc,
)

AC = f"{{{AC_NAMESPACE}}}"
RI = f"{{{RI_NAMESPACE}}}"

HOSTILE = [
    "]]>",
    "a]]>b]]>",
    "]]]]>>",
    "<script>alert('x')</script>",
    "Tom & Jerry &amp; &nbsp; &#x26;",
    "\"double\" and 'single' quotes",
    "<![CDATA[nested]]>",
    "ünïcødé \u2013 日本語 \u2013 🚀 \u2013 עברית \u202e",
    "tab\there\nnew line\r\nwindows",
    '</ac:structured-macro><ac:structured-macro ac:name="html">',
]


def parse(body: str) -> ET.Element:
    """Parse as a real consumer would: a root element declaring the ac and ri namespaces."""
    return ET.fromstring(f'<root xmlns:ac="{AC_NAMESPACE}" xmlns:ri="{RI_NAMESPACE}">{body}</root>')


def all_text(element: ET.Element) -> str:
    return "".join(element.itertext())


def macro_parameters(macro: ET.Element) -> dict[str, str]:
    return {p.attrib[f"{AC}name"]: p.text or "" for p in macro.findall(f"{AC}parameter")}


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_text_round_trips_in_every_text_position(hostile: str) -> None:
    body = (
        Document()
        .heading(2, hostile)
        .paragraph("before ", strong(hostile), " after")
        .table([hostile, "h2"], [[hostile, [strong(hostile), hostile]]])
        .bullet_list([hostile, [hostile, strong("x")]])
        .render()
    )
    root = parse(body)
    assert all_text(root.find("h2")) == hostile  # type: ignore[arg-type]
    assert all_text(root.find("p")) == f"before {hostile} after"  # type: ignore[arg-type]
    cells = root.findall("table/tbody/tr/*")
    assert [c.tag for c in cells] == ["th", "th", "td", "td"]
    assert all_text(cells[0]) == hostile
    assert all_text(cells[3]) == hostile + hostile
    assert [all_text(li) for li in root.findall("ul/li")] == [hostile, hostile + "x"]
    # Nothing hostile became markup: only the elements we built exist.
    assert {e.tag for e in root.iter()} == {
        "root",
        "h2",
        "p",
        "strong",
        "table",
        "tbody",
        "tr",
        "th",
        "td",
        "ul",
        "li",
    }


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_values_round_trip_in_macros_and_links(hostile: str) -> None:
    body = Document(
        status(hostile, "Red"),
        panel("warning", hostile, paragraph(strong(hostile)), title=hostile),
        code_block(hostile, language=hostile, title=hostile, linenumbers=True, collapse=False),
        page_link(hostile, space_key=hostile, link_text=hostile),
        external_link("https://example.com/?q=" + hostile, hostile),
    ).render()
    root = parse(body)
    status_macro, panel_macro, code_macro = root.findall(f"{AC}structured-macro")
    assert macro_parameters(status_macro) == {"colour": "Red", "title": hostile}
    assert macro_parameters(panel_macro) == {"title": hostile}
    rich_body = panel_macro.find(f"{AC}rich-text-body")
    assert [all_text(p) for p in rich_body.findall("p")] == [hostile, hostile]  # type: ignore[union-attr]
    assert macro_parameters(code_macro) == {
        "language": hostile,
        "title": hostile,
        "linenumbers": "true",
        "collapse": "false",
    }
    verbatim_lines = hostile.replace("\r\n", "\n")  # XML itself turns CR LF into LF inside CDATA
    assert code_macro.find(f"{AC}plain-text-body").text == verbatim_lines  # type: ignore[union-attr]
    link = root.find(f"{AC}link")
    page = link.find(f"{RI}page")  # type: ignore[union-attr]
    assert page.attrib == {f"{RI}content-title": hostile, f"{RI}space-key": hostile}  # type: ignore[union-attr]
    assert link.find(f"{AC}plain-text-link-body").text == verbatim_lines  # type: ignore[union-attr]
    anchor = root.find("a")
    assert anchor.attrib == {"href": "https://example.com/?q=" + hostile}  # type: ignore[union-attr]
    assert all_text(anchor) == hostile  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "code", ["]]>", "]]>]]>", "]]]>", "x]]", "]]", ">", "end]]>", "]]>start", "a]]>b]]>c", ""]
)
def test_code_body_splits_cdata_terminator_and_keeps_code_verbatim(code: str) -> None:
    root = parse(str(code_block(code)))
    assert (root.find(f"{AC}structured-macro/{AC}plain-text-body").text or "") == code  # type: ignore[union-attr]


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]) | st.sampled_from("\t\n]>&<\"'")))
def test_any_text_round_trips_exactly(value: str) -> None:
    root = parse(str(Document().paragraph(value).code(value, title=value).add(page_link(value))))
    assert all_text(root.find("p")) == value  # type: ignore[arg-type]
    macro = root.find(f"{AC}structured-macro")
    assert (macro.find(f"{AC}plain-text-body").text or "") == value  # type: ignore[union-attr]
    assert macro_parameters(macro).get("title", "") == value  # type: ignore[arg-type]
    assert root.find(f"{AC}link/{RI}page").attrib[f"{RI}content-title"] == value  # type: ignore[union-attr]


def test_characters_xml_cannot_carry_are_replaced_not_emitted() -> None:
    root = parse(str(paragraph("nul\x00bell\x07 esc\x1b")))
    assert all_text(root.find("p")) == "nul\ufffdbell\ufffd esc\ufffd"  # type: ignore[arg-type]


@pytest.mark.parametrize("colour", ["Grey", "Red", "Yellow", "Green", "Blue"])
def test_status_macro_accepts_the_five_confluence_colours(colour: str) -> None:
    macro = parse(str(status("OK", colour, subtle=True))).find(f"{AC}structured-macro")  # type: ignore[arg-type]
    assert macro.attrib[f"{AC}name"] == "status"  # type: ignore[union-attr]
    assert macro_parameters(macro) == {"colour": colour, "title": "OK", "subtle": "true"}  # type: ignore[arg-type]


def test_status_macro_rejects_unknown_colour() -> None:
    with pytest.raises(ValueError, match="colour"):
        status("OK", "Purple")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["info", "tip", "note", "warning"])
def test_panel_macros_carry_title_and_rich_text_body(kind: str) -> None:
    macro = parse(str(panel(kind, "first", bullet_list(["a", "b"]), title="Heads up", icon=False))).find(  # type: ignore[arg-type]
        f"{AC}structured-macro"
    )
    assert macro.attrib[f"{AC}name"] == kind  # type: ignore[union-attr]
    assert macro_parameters(macro) == {"title": "Heads up", "icon": "false"}  # type: ignore[arg-type]
    rich = macro.find(f"{AC}rich-text-body")  # type: ignore[union-attr]
    assert [child.tag for child in rich] == ["p", "ul"]  # type: ignore[union-attr]


def test_panel_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="panel kind"):
        panel("danger", "x")  # type: ignore[arg-type]


def test_toc_macro_parameters() -> None:
    macro = parse(str(toc(min_level=2, max_level=3))).find(f"{AC}structured-macro")
    assert macro.attrib[f"{AC}name"] == "toc"  # type: ignore[union-attr]
    assert macro_parameters(macro) == {"minLevel": "2", "maxLevel": "3"}  # type: ignore[arg-type]


def test_page_link_without_space_or_text_is_a_bare_resource_identifier() -> None:
    assert str(page_link("Runbook")) == '<ac:link><ri:page ri:content-title="Runbook" /></ac:link>'


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", " JavaScript:alert(1)", "data:text/html,x", "relative/path"]
)
def test_external_link_refuses_non_web_schemes(url: str) -> None:
    with pytest.raises(ValueError, match="scheme"):
        external_link(url)


def test_external_link_defaults_text_to_url() -> None:
    anchor = parse(str(external_link("https://example.com/a?b=1&c=2"))).find("a")
    assert anchor.attrib["href"] == "https://example.com/a?b=1&c=2"  # type: ignore[union-attr]
    assert anchor.text == "https://example.com/a?b=1&c=2"  # type: ignore[union-attr]


def test_heading_level_is_checked() -> None:
    assert str(heading(6, "x")) == "<h6>x</h6>"
    with pytest.raises(ValueError, match=r"1\.\.6"):
        heading(7, "x")


def test_table_puts_header_cells_in_first_row() -> None:
    assert str(table(["A", "B"], [["1", "2"]])) == (
        "<table><tbody><tr><th>A</th><th>B</th></tr><tr><td>1</td><td>2</td></tr></tbody></table>"
    )


def test_numbered_list_is_ordered() -> None:
    assert str(numbered_list(["one", "two"])) == "<ol><li>one</li><li>two</li></ol>"


def test_fragments_cannot_be_made_from_raw_markup() -> None:
    with pytest.raises(TypeError):
        Fragment()
    with pytest.raises(TypeError, match="Fragment"):
        Document().add("<script>x</script>")  # type: ignore[arg-type]


def test_strings_are_always_text_never_markup() -> None:
    assert str(paragraph("<b>bold</b>")) == "<p>&lt;b&gt;bold&lt;/b&gt;</p>"


def test_parse_storage_accepts_html_entities_and_rejects_malformed_bodies() -> None:
    assert all_text(parse_storage("<p>a&nbsp;b&copy;</p>")) == "a\u00a0b\u00a9"
    for malformed in ["<p>unclosed", "<p>a & b</p>", "<ac:unknown-prefix:x/>", "<!DOCTYPE x><p/>", "<x:p/>"]:
        with pytest.raises(StorageFormatError):
            parse_storage(malformed)


def test_storage_equivalent_ignores_ids_confluence_adds_but_not_content() -> None:
    ours = str(status("OK", "Green"))
    saved = ours.replace('ac:name="status"', 'ac:name="status" ac:schema-version="1" ac:macro-id="0f1e2d3c"')
    assert storage_equivalent(ours, saved)
    assert storage_equivalent("<p>x<br/></p>", "<p>x<br /></p>")
    assert not storage_equivalent(ours, str(status("OK", "Red")))
    assert not storage_equivalent("<p>x</p>", "<p>x")
