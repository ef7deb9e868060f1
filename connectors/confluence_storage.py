"""Build Confluence storage-format XHTML from typed parts, escaping every user value.

Storage format is XHTML plus the ``ac:`` (macros, links) and ``ri:`` (resource identifiers)
namespaces. Everything here returns a :class:`Fragment`, and a fragment can only come from the
functions of this module, so markup cannot be smuggled in as a plain ``str``: strings are always
text and are escaped. Example::

    doc = (
        Document()
        .heading(1, "Release ", status("Done", "Green"))
        .paragraph("Promoted by ", page_link("Runbook", space_key="INT"))
        .table(["Artifact", "Version"], [["orders-flow", "1.4.2"]])
        .code("print('hi')", language="python")
    )
    body = doc.render()

Characters that XML 1.0 cannot carry at all (NUL and most C0 controls, lone surrogates) are
replaced by U+FFFD; everything else round-trips exactly as text, except that line ends inside
CDATA bodies (code, link text) become LF, as XML parsers would make them anyway.
"""

from __future__ import annotations

import html.entities
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from typing import Final, Literal, TypeAlias, get_args
from urllib.parse import urlsplit

__all__ = [
    "AC_NAMESPACE",
    "RI_NAMESPACE",
    "Content",
    "Document",
    "Fragment",
    "PanelKind",
    "StatusColour",
    "StorageFormatError",
    "bullet_list",
    "code_block",
    "external_link",
    "heading",
    "inline_code",
    "numbered_list",
    "page_link",
    "panel",
    "paragraph",
    "parse_storage",
    "status",
    "storage_equivalent",
    "strong",
    "table",
    "text",
    "toc",
]

# The URIs Confluence itself declares when it exports storage format.
AC_NAMESPACE: Final = "http://atlassian.com/content"
RI_NAMESPACE: Final = "http://atlassian.com/resource/identifier"

StatusColour: TypeAlias = Literal["Grey", "Red", "Yellow", "Green", "Blue"]
PanelKind: TypeAlias = Literal["info", "tip", "note", "warning"]

_STATUS_COLOURS: Final = frozenset(get_args(StatusColour))
_PANEL_KINDS: Final = frozenset(get_args(PanelKind))
_LINK_SCHEMES: Final = frozenset({"http", "https", "mailto"})

# XML 1.0 Char production: anything outside it cannot appear even as a character reference.
_NOT_XML_CHAR: Final = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class StorageFormatError(ValueError):
    """A storage-format body is not well-formed XML (Confluence answers such bodies with 400)."""


class Fragment:
    """A piece of well-formed storage markup; obtain it from this module's functions only."""

    __slots__ = ("_xml",)
    _xml: str

    def __init__(self) -> None:
        raise TypeError("Fragment is built by confluence_storage functions, not directly")

    @classmethod
    def _trusted(cls, xml: str) -> Fragment:
        # The only way in: callers in this module pass markup whose user parts are escaped.
        fragment = object.__new__(cls)
        fragment._xml = xml
        return fragment

    def __str__(self) -> str:
        return self._xml

    def __repr__(self) -> str:
        return f"Fragment({self._xml!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fragment) and other._xml == self._xml

    def __hash__(self) -> int:
        return hash(self._xml)


Content: TypeAlias = str | Fragment | Sequence[str | Fragment]


def _clean(value: str) -> str:
    return _NOT_XML_CHAR.sub("\ufffd", value)


def _escape_text(value: str) -> str:
    # A raw CR would be folded into LF by any XML parser; the reference keeps it.
    return (
        _clean(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    )


def _escape_attr(value: str) -> str:
    # Tabs and newlines would be normalised to spaces by an XML parser; references keep them.
    return _escape_text(value).replace('"', "&quot;").replace("\t", "&#9;").replace("\n", "&#10;")


def _cdata(value: str) -> str:
    # A CDATA section cannot contain "]]>": end the section after "]]" and start a new one for ">".
    # CDATA cannot carry a CR either (parsers fold line ends), so line ends are LF here.
    value = _clean(value).replace("\r\n", "\n").replace("\r", "\n")
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _render(content: Content) -> str:
    if isinstance(content, Fragment):
        return content._xml
    if isinstance(content, str):
        return _escape_text(content)
    return "".join(_render(part) for part in content)


def _element(tag: str, content: Content, **attributes: str) -> Fragment:
    attrs = "".join(f' {name}="{_escape_attr(value)}"' for name, value in attributes.items())
    return Fragment._trusted(f"<{tag}{attrs}>{_render(content)}</{tag}>")


def _parameter(name: str, value: str) -> str:
    return f'<ac:parameter ac:name="{_escape_attr(name)}">{_escape_text(value)}</ac:parameter>'


def _macro(name: str, parameters: Iterable[tuple[str, str | None]], body: str = "") -> Fragment:
    params = "".join(_parameter(key, value) for key, value in parameters if value is not None)
    return Fragment._trusted(
        f'<ac:structured-macro ac:name="{_escape_attr(name)}">{params}{body}</ac:structured-macro>'
    )


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


def text(value: str) -> Fragment:
    """Escaped text; the same as passing the ``str`` wherever content is accepted."""
    return Fragment._trusted(_escape_text(value))


def strong(*content: str | Fragment) -> Fragment:
    """Bold inline content."""
    return _element("strong", content)


def inline_code(value: str) -> Fragment:
    """Monospaced inline text."""
    return _element("code", value)


def heading(level: int, *content: str | Fragment) -> Fragment:
    """``<h1>``..``<h6>``; raises ValueError for any other level."""
    if not 1 <= level <= 6:
        raise ValueError(f"heading level must be 1..6, got {level}")
    return _element(f"h{level}", content)


def paragraph(*content: str | Fragment) -> Fragment:
    """A ``<p>`` of inline content."""
    return _element("p", content)


def bullet_list(items: Iterable[Content]) -> Fragment:
    """An unordered list, one ``<li>`` per item."""
    return _element("ul", [_element("li", item) for item in items])


def numbered_list(items: Iterable[Content]) -> Fragment:
    """An ordered list, one ``<li>`` per item."""
    return _element("ol", [_element("li", item) for item in items])


def table(header: Sequence[Content], rows: Iterable[Sequence[Content]]) -> Fragment:
    """A table whose first row is ``<th>`` header cells followed by ``<td>`` rows."""
    header_row = _element("tr", [_element("th", cell) for cell in header])
    body_rows = [_element("tr", [_element("td", cell) for cell in row]) for row in rows]
    return _element("table", _element("tbody", [header_row, *body_rows]))


def status(title: str, colour: StatusColour = "Grey", *, subtle: bool | None = None) -> Fragment:
    """The status lozenge macro; ``colour`` is one of Grey, Red, Yellow, Green, Blue."""
    if colour not in _STATUS_COLOURS:
        raise ValueError(f"status colour must be one of {sorted(_STATUS_COLOURS)}, got {colour!r}")
    return _macro("status", [("colour", colour), ("title", title), ("subtle", _flag(subtle))])


def panel(
    kind: PanelKind, *body: str | Fragment, title: str | None = None, icon: bool | None = None
) -> Fragment:
    """An info/tip/note/warning macro with an optional title and a rich-text body.

    Plain strings in ``body`` become paragraphs; fragments are placed as they are.
    """
    if kind not in _PANEL_KINDS:
        raise ValueError(f"panel kind must be one of {sorted(_PANEL_KINDS)}, got {kind!r}")
    blocks = "".join(_render(paragraph(part)) if isinstance(part, str) else part._xml for part in body)
    return _macro(
        kind,
        [("title", title), ("icon", _flag(icon))],
        f"<ac:rich-text-body>{blocks}</ac:rich-text-body>",
    )


def code_block(
    code: str,
    *,
    language: str | None = None,
    title: str | None = None,
    linenumbers: bool | None = None,
    collapse: bool | None = None,
) -> Fragment:
    """The code macro; ``code`` goes verbatim into a CDATA body (``]]>`` is split safely)."""
    return _macro(
        "code",
        [
            ("language", language),
            ("title", title),
            ("linenumbers", _flag(linenumbers)),
            ("collapse", _flag(collapse)),
        ],
        f"<ac:plain-text-body>{_cdata(code)}</ac:plain-text-body>",
    )


def toc(*, min_level: int | None = None, max_level: int | None = None, style: str | None = None) -> Fragment:
    """The table-of-contents macro."""
    return _macro(
        "toc",
        [
            ("minLevel", None if min_level is None else str(min_level)),
            ("maxLevel", None if max_level is None else str(max_level)),
            ("style", style),
        ],
    )


def page_link(title: str, *, space_key: str | None = None, link_text: str | None = None) -> Fragment:
    """A link to a page by title (and space key when it is in another space)."""
    attrs = f' ri:content-title="{_escape_attr(title)}"'
    if space_key is not None:
        attrs += f' ri:space-key="{_escape_attr(space_key)}"'
    body = (
        "" if link_text is None else f"<ac:plain-text-link-body>{_cdata(link_text)}</ac:plain-text-link-body>"
    )
    return Fragment._trusted(f"<ac:link><ri:page{attrs} />{body}</ac:link>")


def external_link(url: str, link_text: str | None = None) -> Fragment:
    """An ``<a href>`` to an http(s) or mailto URL; raises ValueError for other schemes."""
    scheme = urlsplit(url.strip()).scheme.lower()
    if scheme not in _LINK_SCHEMES:
        raise ValueError(f"link scheme must be one of {sorted(_LINK_SCHEMES)}, got {scheme or 'none'!r}")
    return _element("a", url if link_text is None else link_text, href=url)


class Document:
    """An ordered list of blocks; each method appends one block and returns the document."""

    def __init__(self, *blocks: Fragment) -> None:
        self._blocks: list[Fragment] = list(blocks)

    def add(self, *blocks: Fragment) -> Document:
        """Append ready-made blocks (from this module's functions)."""
        for block in blocks:
            if not isinstance(block, Fragment):
                raise TypeError(f"expected a Fragment, got {type(block).__name__}")
        self._blocks.extend(blocks)
        return self

    def heading(self, level: int, *content: str | Fragment) -> Document:
        return self.add(heading(level, *content))

    def paragraph(self, *content: str | Fragment) -> Document:
        return self.add(paragraph(*content))

    def bullet_list(self, items: Iterable[Content]) -> Document:
        return self.add(bullet_list(items))

    def numbered_list(self, items: Iterable[Content]) -> Document:
        return self.add(numbered_list(items))

    def table(self, header: Sequence[Content], rows: Iterable[Sequence[Content]]) -> Document:
        return self.add(table(header, rows))

    def panel(
        self, kind: PanelKind, *body: str | Fragment, title: str | None = None, icon: bool | None = None
    ) -> Document:
        return self.add(panel(kind, *body, title=title, icon=icon))

    def code(
        self,
        code: str,
        *,
        language: str | None = None,
        title: str | None = None,
        linenumbers: bool | None = None,
        collapse: bool | None = None,
    ) -> Document:
        return self.add(
            code_block(code, language=language, title=title, linenumbers=linenumbers, collapse=collapse)
        )

    def toc(self, *, min_level: int | None = None, max_level: int | None = None) -> Document:
        return self.add(toc(min_level=min_level, max_level=max_level))

    def render(self) -> str:
        """The storage-format body, ready for ``body.storage.value``."""
        return "".join(block._xml for block in self._blocks)

    def __str__(self) -> str:
        return self.render()


# Confluence accepts HTML named entities (&nbsp; ...) in storage; an internal DTD teaches expat them.
# A body cannot bring its own DOCTYPE: inside the root element that is a syntax error.
_ENTITY_DTD: Final = "".join(
    f'<!ENTITY {name} "&#{codepoint};">' for name, codepoint in html.entities.name2codepoint.items()
)
_WRAPPER_OPEN: Final = (
    f'<!DOCTYPE storage [{_ENTITY_DTD}]><storage xmlns:ac="{AC_NAMESPACE}" xmlns:ri="{RI_NAMESPACE}">'
)


def parse_storage(value: str) -> ET.Element:
    """Parse a storage body inside a root declaring ``ac``/``ri``; raise StorageFormatError if malformed."""
    try:
        return ET.fromstring(f"{_WRAPPER_OPEN}{value}</storage>")
    except ET.ParseError as exc:
        raise StorageFormatError(f"storage body is not well-formed XML: {exc}") from None


# Attributes Confluence adds on save; they do not change what a page shows.
_VOLATILE_ATTRIBUTES: Final = frozenset(
    {f"{{{AC_NAMESPACE}}}macro-id", f"{{{AC_NAMESPACE}}}schema-version", f"{{{AC_NAMESPACE}}}local-id"}
)


def _normalise(element: ET.Element) -> None:
    for name in _VOLATILE_ATTRIBUTES & element.attrib.keys():
        del element.attrib[name]
    element.attrib.pop("local-id", None)
    for child in element:
        _normalise(child)


def storage_equivalent(left: str, right: str) -> bool:
    """True when two storage bodies are the same XML, ignoring the ids Confluence adds on save."""
    if left == right:
        return True
    try:
        left_root, right_root = parse_storage(left), parse_storage(right)
    except StorageFormatError:
        return False
    _normalise(left_root)
    _normalise(right_root)
    return ET.canonicalize(ET.tostring(left_root, encoding="unicode")) == ET.canonicalize(
        ET.tostring(right_root, encoding="unicode")
    )
