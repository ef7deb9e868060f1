"""Block Kit limits Slack enforces server-side, checked the way Slack reports them.

``block_violations`` returns Slack-style messages (``"... [json-pointer:/blocks/3/text/text]"``);
an empty list means Slack would accept the blocks. Only the limits opsgate can plausibly break are
checked; unknown block and element types pass so the emulator never rejects what Slack accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

__all__ = [
    "MAX_BLOCKS",
    "Surface",
    "block_violations",
    "view_violations",
]

Surface = Literal["message", "modal", "home"]

MAX_BLOCKS: Mapping[Surface, int] = {"message": 50, "modal": 100, "home": 100}

_MAX_ID = 255
_MAX_SECTION_TEXT = 3000
_MAX_SECTION_FIELDS = 10
_MAX_FIELD_TEXT = 2000
_MAX_HEADER_TEXT = 150
_MAX_BUTTON_TEXT = 75
_MAX_BUTTON_VALUE = 2000
_MAX_URL = 3000
_MAX_ACTIONS_ELEMENTS = 25
_MAX_CONTEXT_ELEMENTS = 10
_MAX_SELECT_OPTIONS = 100
_MAX_OVERFLOW_OPTIONS = 5
_MAX_OPTION_TEXT = 75
_MAX_OPTION_VALUE = 150
_MAX_INPUT_LABEL = 2000
_MAX_VIEW_TITLE = 24
_MAX_PRIVATE_METADATA = 3000
_TEXT_TYPES = ("plain_text", "mrkdwn")


def block_violations(blocks: object, *, surface: Surface) -> list[str]:
    """Return why Slack would refuse ``blocks`` on ``surface``; empty when it would accept them."""
    problems: list[str] = []
    if not isinstance(blocks, list):
        return ["blocks must be an array [json-pointer:/blocks]"]
    limit = MAX_BLOCKS[surface]
    if len(blocks) > limit:
        problems.append(f"no more than {limit} items allowed [json-pointer:/blocks]")
    for index, block in enumerate(blocks):
        _check_block(block, f"/blocks/{index}", problems)
    return problems


def view_violations(view: Mapping[str, Any], *, surface: Literal["modal", "home"]) -> list[str]:
    """Return why views.open/update/publish would refuse ``view``; empty when it is acceptable."""
    problems: list[str] = []
    if view.get("type") != surface:
        problems.append(f"type must be {surface} [json-pointer:/view/type]")
    if surface == "modal":
        if "title" not in view:
            problems.append("missing required field: title [json-pointer:/view/title]")
        for key in ("title", "submit", "close"):
            if key in view:
                _check_text(view[key], f"/view/{key}", problems, max_len=_MAX_VIEW_TITLE, plain_only=True)
        has_inputs = any(isinstance(b, dict) and b.get("type") == "input" for b in view.get("blocks", []))
        if has_inputs and "submit" not in view:
            problems.append(
                "submit is required when a view contains input blocks [json-pointer:/view/submit]"
            )
    metadata = view.get("private_metadata", "")
    if not isinstance(metadata, str) or len(metadata) > _MAX_PRIVATE_METADATA:
        problems.append(
            f"must be a string of at most {_MAX_PRIVATE_METADATA} characters [json-pointer:/view/private_metadata]"
        )
    for key in ("callback_id", "external_id"):
        if len(str(view.get(key, ""))) > _MAX_ID:
            problems.append(f"must be at most {_MAX_ID} characters [json-pointer:/view/{key}]")
    problems.extend(
        problem.replace("[json-pointer:/blocks", "[json-pointer:/view/blocks")
        for problem in block_violations(view.get("blocks", []), surface=surface)
    )
    return problems


def _check_block(block: object, pointer: str, problems: list[str]) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        problems.append(f"must be an object with a type [json-pointer:{pointer}]")
        return
    _check_id(block, "block_id", pointer, problems)
    kind = block["type"]
    if kind == "section":
        if "text" not in block and "fields" not in block:
            problems.append(f"must provide text or fields [json-pointer:{pointer}]")
        if "text" in block:
            _check_text(block["text"], f"{pointer}/text", problems, max_len=_MAX_SECTION_TEXT)
        fields = block.get("fields", [])
        if len(fields) > _MAX_SECTION_FIELDS:
            problems.append(
                f"no more than {_MAX_SECTION_FIELDS} items allowed [json-pointer:{pointer}/fields]"
            )
        for index, field in enumerate(fields):
            _check_text(field, f"{pointer}/fields/{index}", problems, max_len=_MAX_FIELD_TEXT)
        if "accessory" in block:
            _check_element(block["accessory"], f"{pointer}/accessory", problems)
    elif kind == "header":
        _check_text(block.get("text"), f"{pointer}/text", problems, max_len=_MAX_HEADER_TEXT, plain_only=True)
    elif kind in ("actions", "context"):
        limit = _MAX_ACTIONS_ELEMENTS if kind == "actions" else _MAX_CONTEXT_ELEMENTS
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            problems.append(f"must provide at least one element [json-pointer:{pointer}/elements]")
            return
        if len(elements) > limit:
            problems.append(f"no more than {limit} items allowed [json-pointer:{pointer}/elements]")
        for index, element in enumerate(elements):
            element_pointer = f"{pointer}/elements/{index}"
            if kind == "context" and isinstance(element, dict) and element.get("type") in _TEXT_TYPES:
                _check_text(element, element_pointer, problems, max_len=_MAX_SECTION_TEXT)
            else:
                _check_element(element, element_pointer, problems)
    elif kind == "input":
        _check_text(
            block.get("label"), f"{pointer}/label", problems, max_len=_MAX_INPUT_LABEL, plain_only=True
        )
        if "element" not in block:
            problems.append(f"missing required field: element [json-pointer:{pointer}]")
        else:
            _check_element(block["element"], f"{pointer}/element", problems)


def _check_element(element: object, pointer: str, problems: list[str]) -> None:
    if not isinstance(element, dict) or not isinstance(element.get("type"), str):
        problems.append(f"must be an object with a type [json-pointer:{pointer}]")
        return
    _check_id(element, "action_id", pointer, problems)
    kind = element["type"]
    if kind == "button":
        _check_text(
            element.get("text"), f"{pointer}/text", problems, max_len=_MAX_BUTTON_TEXT, plain_only=True
        )
        _check_length(element, "value", _MAX_BUTTON_VALUE, pointer, problems)
        _check_length(element, "url", _MAX_URL, pointer, problems)
    elif kind in ("static_select", "multi_static_select", "overflow", "radio_buttons", "checkboxes"):
        options = element.get("options", [])
        if kind == "overflow":
            if not 2 <= len(options) <= _MAX_OVERFLOW_OPTIONS:
                problems.append(
                    f"must provide between 2 and {_MAX_OVERFLOW_OPTIONS} items [json-pointer:{pointer}/options]"
                )
        elif len(options) > _MAX_SELECT_OPTIONS:
            problems.append(
                f"no more than {_MAX_SELECT_OPTIONS} items allowed [json-pointer:{pointer}/options]"
            )
        for index, option in enumerate(options):
            option_pointer = f"{pointer}/options/{index}"
            if not isinstance(option, dict):
                problems.append(f"must be an object [json-pointer:{option_pointer}]")
                continue
            _check_text(option.get("text"), f"{option_pointer}/text", problems, max_len=_MAX_OPTION_TEXT)
            _check_length(option, "value", _MAX_OPTION_VALUE, option_pointer, problems)


def _check_text(
    text: object, pointer: str, problems: list[str], *, max_len: int, plain_only: bool = False
) -> None:
    if not isinstance(text, dict) or not isinstance(text.get("text"), str):
        problems.append(f"must provide a text object [json-pointer:{pointer}]")
        return
    allowed = ("plain_text",) if plain_only else _TEXT_TYPES
    if text.get("type") not in allowed:
        problems.append(f"must be one of {list(allowed)} [json-pointer:{pointer}/type]")
    length = len(text["text"])
    if length == 0:
        problems.append(f"must be more than 0 characters [json-pointer:{pointer}/text]")
    elif length > max_len:
        problems.append(f"must be less than {max_len + 1} characters [json-pointer:{pointer}/text]")


def _check_id(item: Mapping[str, Any], key: str, pointer: str, problems: list[str]) -> None:
    _check_length(item, key, _MAX_ID, pointer, problems)


def _check_length(item: Mapping[str, Any], key: str, max_len: int, pointer: str, problems: list[str]) -> None:
    value = item.get(key)
    if value is not None and (not isinstance(value, str) or len(value) > max_len):
        problems.append(f"must be a string of at most {max_len} characters [json-pointer:{pointer}/{key}]")
