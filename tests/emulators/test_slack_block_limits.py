"""Block Kit limits the Slack emulator enforces, checked directly."""

from __future__ import annotations

from typing import Any

import pytest

from bot.emulators.slack_block_limits import block_violations, view_violations


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(**overrides: Any) -> dict[str, Any]:
    return {"type": "button", "action_id": "approve", "text": plain("Approve"), "value": "1"} | overrides


def actions(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"type": "actions", "block_id": "decision", "elements": list(elements)}


def test_ordinary_approval_blocks_pass() -> None:
    blocks = [
        {"type": "header", "text": plain("Promotion request")},
        section("*orders-edi* 1.4.2 to prod"),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Requester*\n<@U_REQ>"}]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "Expires in 24 h"}]},
        {"type": "divider"},
        actions(button(), button(action_id="reject", text=plain("Reject"), style="danger")),
    ]
    assert block_violations(blocks, surface="message") == []


def test_unknown_block_types_pass_so_the_emulator_never_refuses_what_slack_accepts() -> None:
    assert block_violations([{"type": "rich_text", "elements": []}], surface="message") == []


@pytest.mark.parametrize(("surface", "limit"), [("message", 50), ("modal", 100), ("home", 100)])
def test_block_count_limit_per_surface(surface: Any, limit: int) -> None:
    assert block_violations([section("b")] * limit, surface=surface) == []
    assert block_violations([section("b")] * (limit + 1), surface=surface) == [
        f"no more than {limit} items allowed [json-pointer:/blocks]"
    ]


@pytest.mark.parametrize(
    ("block", "pointer"),
    [
        (section("x" * 3001), "/blocks/0/text/text"),
        (section(""), "/blocks/0/text/text"),
        ({"type": "header", "text": plain("h" * 151)}, "/blocks/0/text/text"),
        ({"type": "header", "text": {"type": "mrkdwn", "text": "*h*"}}, "/blocks/0/text/type"),
        ({"type": "section", "fields": [plain("f")] * 11}, "/blocks/0/fields"),
        ({"type": "section", "fields": [plain("f" * 2001)]}, "/blocks/0/fields/0/text"),
        ({"type": "section"}, "/blocks/0"),
        (section("ok") | {"block_id": "b" * 256}, "/blocks/0/block_id"),
        (actions(button(text=plain("A" * 76))), "/blocks/0/elements/0/text/text"),
        (actions(button(value="v" * 2001)), "/blocks/0/elements/0/value"),
        (actions(button(url="https://x/" + "u" * 3000)), "/blocks/0/elements/0/url"),
        (actions(button(action_id="a" * 256)), "/blocks/0/elements/0/action_id"),
        (actions(*[button()] * 26), "/blocks/0/elements"),
        ({"type": "actions", "elements": []}, "/blocks/0/elements"),
        ({"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}, "/blocks/0/elements"),
        (
            actions(
                {"type": "overflow", "action_id": "more", "options": [{"text": plain("o"), "value": "o"}]}
            ),
            "/blocks/0/elements/0/options",
        ),
        (
            actions(
                {
                    "type": "static_select",
                    "action_id": "env",
                    "options": [{"text": plain("o"), "value": str(n)} for n in range(101)],
                }
            ),
            "/blocks/0/elements/0/options",
        ),
        (
            actions(
                {
                    "type": "static_select",
                    "action_id": "env",
                    "options": [{"text": plain("o"), "value": "v" * 151}],
                }
            ),
            "/blocks/0/elements/0/options/0/value",
        ),
        ("not a block", "/blocks/0"),
    ],
)
def test_violations_name_the_offending_field(block: Any, pointer: str) -> None:
    problems = block_violations([block], surface="message")
    assert any(problem.endswith(f"[json-pointer:{pointer}]") for problem in problems), problems


def test_blocks_must_be_a_list() -> None:
    assert block_violations({"type": "section"}, surface="message") == [
        "blocks must be an array [json-pointer:/blocks]"
    ]


def modal(**overrides: Any) -> dict[str, Any]:
    return {
        "type": "modal",
        "title": plain("Promote"),
        "submit": plain("Submit"),
        "blocks": [
            {
                "type": "input",
                "block_id": "artifact",
                "label": plain("Artifact"),
                "element": {"type": "plain_text_input", "action_id": "value"},
            }
        ],
    } | overrides


def test_an_ordinary_modal_passes() -> None:
    assert view_violations(modal(private_metadata='{"request_id": 7}'), surface="modal") == []


@pytest.mark.parametrize(
    ("overrides", "pointer"),
    [
        ({"title": plain("T" * 25)}, "/view/title/text"),
        ({"submit": plain("S" * 25)}, "/view/submit/text"),
        ({"close": plain("C" * 25)}, "/view/close/text"),
        ({"private_metadata": "m" * 3001}, "/view/private_metadata"),
        ({"callback_id": "c" * 256}, "/view/callback_id"),
        ({"blocks": [section("b")] * 101}, "/view/blocks"),
        ({"type": "home"}, "/view/type"),
    ],
)
def test_modal_violations_name_the_offending_field(overrides: dict[str, Any], pointer: str) -> None:
    problems = view_violations(modal(**overrides), surface="modal")
    assert any(problem.endswith(f"[json-pointer:{pointer}]") for problem in problems), problems


def test_a_modal_with_inputs_needs_a_submit_button() -> None:
    view = modal()
    del view["submit"]
    assert view_violations(view, surface="modal") == [
        "submit is required when a view contains input blocks [json-pointer:/view/submit]"
    ]


def test_a_modal_needs_a_title() -> None:
    view = modal()
    del view["title"]
    assert "missing required field: title [json-pointer:/view/title]" in view_violations(
        view, surface="modal"
    )


def test_a_home_view_needs_no_title() -> None:
    assert view_violations({"type": "home", "blocks": [section("hi")]}, surface="home") == []
