"""The demo console's JSON API, without a browser: the whole demo runs (emulators, Slack emulator
with the console, the bot over signed HTTP), and each test does what a person would in the page.

Waiting is event-driven: tests follow the Slack emulator's change feed until what a person
would see is there (bounded), never sleeping to let time pass.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.demo import DemoStack, start_demo
from bot.emulators.slack_control import workspace_of
from bot.emulators.slack_seed import DEFAULT_BOT_TOKEN
from bot.ids import ActionId, BlockId
from connectors.emulators.faults import fault_injector_of
from connectors.emulators.iconik import iconik_domain_of
from connectors.emulators.opentext import opentext_state_of

PROMOTE = "/promote orders-edi.orders-d96a-to-xml 2.4.0 test prod Map FTX+DEL free text"
WAIT_SECONDS = 15.0


class _NoConnectors:
    async def aclose(self) -> None:
        return None


def no_workflows(settings: Any, config: Any) -> tuple[dict[Any, Any], _NoConnectors]:
    """Requests open with the pre-check skipped; execution fails clearly (no vendor calls)."""
    return {}, _NoConnectors()


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[DemoStack]:
    stack = await start_demo(port=0, data_dir=tmp_path, workflows_factory=no_workflows)
    try:
        yield stack
    finally:
        await stack.close()


@pytest.fixture
async def console(demo: DemoStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=demo.console_url, timeout=10) as client:
        yield client


async def until(demo: DemoStack, seen: Callable[[], Any]) -> Any:
    """Follow the emulator's changes until ``seen()`` returns something truthy; return it."""
    workspace = workspace_of(demo.slack_app)
    async with workspace.subscribe() as changes:  # subscribed before the first look: nothing missed
        if result := seen():
            return result
        async with asyncio.timeout(WAIT_SECONDS):
            async for _ in changes:
                if result := seen():
                    return result
    raise AssertionError("the change feed ended before the expected state was reached")


def approval_message(demo: DemoStack) -> Any:
    return next(
        (
            m
            for m in workspace_of(demo.slack_app).messages("C_APPROVALS")
            if m.thread_ts is None and "PRM-" in m.text
        ),
        None,
    )


def button(message: Any, action_id: str) -> dict[str, Any] | None:
    for block in message.blocks:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return dict(element)
    return None


async def open_promotion(demo: DemoStack, console: httpx.AsyncClient) -> Any:
    response = await console.post(
        "/console/api/command", json={"user": "U_REQ", "channel": "C_APPROVALS", "text": PROMOTE}
    )
    assert response.status_code == 200
    return await until(demo, lambda: approval_message(demo))


async def click(console: httpx.AsyncClient, user: str, message: Any, action_id: str) -> httpx.Response:
    element = button(message, action_id)
    assert element is not None, f"no {action_id} button"
    return await console.post(
        "/console/api/click",
        json={
            "user": user,
            "channel": message.channel,
            "ts": message.ts,
            "action_id": action_id,
            "value": element["value"],
        },
    )


async def test_the_page_is_served_at_the_root_with_its_script_and_style(console):
    page = await console.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/console/static/console.js" in page.text and "/console/static/console.css" in page.text
    script = await console.get("/console/static/console.js")
    style = await console.get("/console/static/console.css")
    assert script.status_code == 200 and "renderBlocks" in script.text
    assert style.status_code == 200
    assert "innerHTML" not in script.text.replace("never innerHTML", "")


async def test_workspace_lists_demo_people_with_roles_channels_and_fault_presets(console):
    body = (await console.get("/console/api/workspace")).json()
    roles = {user["id"]: user["label"] for user in body["users"]}
    assert [user["id"] for user in body["users"]][:4] == ["U_REQ", "U_APP1", "U_APP2", "U_OUT"]
    assert roles["U_REQ"] == "requester" and roles["U_APP1"] == roles["U_APP2"] == "approver"
    assert roles["U_OUT"] == "outsider"
    names = {channel["name"] for channel in body["channels"]}
    assert {"approvals", "alerts", "orders-edi", "invoices", "shipping-notices"} <= names
    assert {p["name"] for p in body["fault_presets"]} == {
        "opentext_promote_fails",
        "canto_slow",
        "iconik_job_fails",
        "slack_rate_limit",
        "clear",
    }
    assert any(tip.startswith("/promote ") for tip in body["tips"])


async def test_a_slash_command_reaches_the_bot_signed_and_its_ephemeral_answer_comes_back(demo, console):
    response = await console.post(
        "/console/api/command", json={"user": "U_REQ", "channel": "C_APPROVALS", "text": PROMOTE}
    )
    outcome = response.json()
    assert outcome["ok"] and outcome["status"] == 200
    assert "Checking" in outcome["answer"]["text"]
    message = await until(demo, lambda: approval_message(demo))
    assert "PRM-1" in message.text and button(message, ActionId.APPROVE) is not None


async def test_ephemeral_answers_show_only_in_the_requesters_view_of_the_channel(demo, console):
    await open_promotion(demo, console)
    mine = (
        await console.get("/console/api/messages", params={"channel": "C_APPROVALS", "user": "U_REQ"})
    ).json()
    theirs = (
        await console.get("/console/api/messages", params={"channel": "C_APPROVALS", "user": "U_APP1"})
    ).json()
    assert any(m["ephemeral"] and "Checking" in m["text"] for m in mine["messages"])
    assert not any(m["ephemeral"] for m in theirs["messages"])
    assert [m["ts"] for m in theirs["messages"]] == sorted(m["ts"] for m in theirs["messages"])


async def test_an_outsiders_approve_click_is_refused_with_an_ephemeral_message(demo, console):
    message = await open_promotion(demo, console)
    assert (await click(console, "U_OUT", message, ActionId.APPROVE)).json()["ok"]
    workspace = workspace_of(demo.slack_app)
    refusal = await until(
        demo, lambda: [m.text for m in workspace.ephemeral_messages("U_OUT") if "not an approver" in m.text]
    )
    assert refusal


async def test_two_approvals_update_the_message_and_the_thread_shows_the_execution(demo, console):
    message = await open_promotion(demo, console)
    await click(console, "U_APP1", message, ActionId.APPROVE)
    message = await until(
        demo, lambda: (m := approval_message(demo)) and "U_APP1" in json.dumps(m.blocks) and m
    )
    await click(console, "U_APP2", message, ActionId.APPROVE)

    def decided() -> Any:
        current = approval_message(demo)
        return current if current and button(current, ActionId.APPROVE) is None else None

    final = await until(demo, decided)
    assert final.edited_ts is not None

    def execution_started() -> list[Any] | None:
        replies = thread_of(demo, final.ts)
        return replies if any("Execution started" in reply.text for reply in replies) else None

    await until(demo, execution_started)
    listed = (
        await console.get("/console/api/thread", params={"channel": "C_APPROVALS", "ts": final.ts})
    ).json()
    assert listed["parent"]["ts"] == final.ts
    assert any("Execution started" in reply["text"] for reply in listed["replies"])


def thread_of(demo: DemoStack, ts: str) -> list[Any]:
    return [
        m for m in workspace_of(demo.slack_app).messages("C_APPROVALS") if m.thread_ts == ts and m.ts != ts
    ]


async def test_a_modal_shows_validation_errors_then_a_valid_submission_opens_the_request(demo, console):
    await console.post(
        "/console/api/command", json={"user": "U_REQ", "channel": "C_APPROVALS", "text": "/promote"}
    )
    workspace = workspace_of(demo.slack_app)
    [modal] = await until(demo, lambda: workspace.open_modals("U_REQ"))
    listed = (await console.get("/console/api/views", params={"user": "U_REQ"})).json()
    assert [view["id"] for view in listed["views"]] == [modal["id"]]

    empty = (
        await console.post(
            "/console/api/views/submit", json={"user": "U_REQ", "view_id": modal["id"], "values": {}}
        )
    ).json()
    assert empty["response_action"] == "errors"
    assert {BlockId.ARTIFACT, BlockId.VERSION, BlockId.FROM_ENV, BlockId.TO_ENV} <= set(empty["errors"])
    shown = (await console.get("/console/api/views", params={"user": "U_REQ"})).json()
    assert BlockId.VERSION in shown["errors"][modal["id"]], "the emulator keeps the errors on the open modal"

    def option(value: str) -> dict[str, Any]:
        return {"text": {"type": "plain_text", "text": value}, "value": value}

    values = {
        BlockId.ARTIFACT: {
            ActionId.ARTIFACT_SELECT: {
                "type": "static_select",
                "selected_option": option("orders-edi.orders-d96a-to-xml"),
            }
        },
        BlockId.VERSION: {ActionId.VERSION_INPUT: {"type": "plain_text_input", "value": "2.4.0"}},
        BlockId.FROM_ENV: {
            ActionId.FROM_ENV_SELECT: {"type": "static_select", "selected_option": option("test")}
        },
        BlockId.TO_ENV: {
            ActionId.TO_ENV_SELECT: {"type": "static_select", "selected_option": option("prod")}
        },
        BlockId.REASON: {ActionId.REASON_INPUT: {"type": "plain_text_input", "value": "from the form"}},
    }
    done = (
        await console.post(
            "/console/api/views/submit", json={"user": "U_REQ", "view_id": modal["id"], "values": values}
        )
    ).json()
    assert done["ok"] and done["response_action"] is None and done["errors"] == {}
    assert workspace.open_modals("U_REQ") == []
    message = await until(demo, lambda: approval_message(demo))
    assert "from the form" in json.dumps(message.blocks)


async def test_external_select_options_come_from_the_bot_and_closing_a_modal_removes_it(demo, console):
    await console.post(
        "/console/api/command", json={"user": "U_REQ", "channel": "C_APPROVALS", "text": "/promote"}
    )
    workspace = workspace_of(demo.slack_app)
    [modal] = await until(demo, lambda: workspace.open_modals("U_REQ"))
    answer = (
        await console.post(
            "/console/api/views/options",
            json={
                "user": "U_REQ",
                "view_id": modal["id"],
                "block_id": BlockId.ARTIFACT,
                "action_id": ActionId.ARTIFACT_SELECT,
                "value": "ubl",
            },
        )
    ).json()
    assert answer["ok"]
    assert [option["value"] for option in answer["options"]] == ["invoices.invoice-xml-to-ubl"]

    closed = await console.post("/console/api/views/close", json={"user": "U_REQ", "view_id": modal["id"]})
    assert closed.json() == {"ok": True}
    assert workspace.open_modals("U_REQ") == []
    again = await console.post("/console/api/views/close", json={"user": "U_REQ", "view_id": modal["id"]})
    assert again.status_code == 404


async def test_opening_app_home_publishes_that_users_home(demo, console):
    assert (await console.get("/console/api/home", params={"user": "U_APP1"})).json()["view"] is None
    opened = (await console.post("/console/api/home/open", json={"user": "U_APP1"})).json()
    assert opened["ok"]
    workspace = workspace_of(demo.slack_app)
    await until(demo, lambda: workspace.home("U_APP1"))
    home = (await console.get("/console/api/home", params={"user": "U_APP1"})).json()
    assert home["view"]["type"] == "home" and home["view"]["blocks"]
    assert (await console.get("/console/api/home", params={"user": "U_REQ"})).json()["view"] is None


async def test_fault_presets_arm_each_emulator_and_clear_removes_them(demo, console):
    opentext = demo.emulators.apps["opentext"]
    canto = demo.emulators.apps["canto"]
    iconik = demo.emulators.apps["iconik"]

    for preset in ("opentext_promote_fails", "canto_slow", "iconik_job_fails", "slack_rate_limit"):
        report = (await console.post("/console/api/faults", json={"preset": preset})).json()
        assert report["ok"], report
    assert opentext_state_of(opentext).fail_next_job is not None
    assert [f.spec.latency_ms for f in fault_injector_of(canto).faults] == [12_000]
    assert [o["status"] for o in iconik_domain_of(iconik).queued_outcomes] == ["FAILED"]
    async with httpx.AsyncClient() as slack:
        limited = await slack.post(
            demo.slack_url + "/api/chat.postMessage",
            headers={"Authorization": f"Bearer {DEFAULT_BOT_TOKEN}"},
            json={"channel": "C_ALERTS", "text": "hello"},
        )
    assert limited.status_code == 429 and limited.json()["error"] == "ratelimited"
    listed = (await console.get("/console/api/faults")).json()
    assert listed["armed"] == ["opentext_promote_fails", "canto_slow", "iconik_job_fails", "slack_rate_limit"]

    cleared = (await console.post("/console/api/faults", json={"preset": "clear"})).json()
    assert cleared["ok"] and cleared["armed"] == []
    assert fault_injector_of(canto).faults == [] and fault_injector_of(demo.slack_app).faults == []


async def test_bad_requests_are_refused_with_a_reason(console):
    cases = [
        ("/console/api/faults", {"preset": "everything_breaks"}, "unknown preset"),
        (
            "/console/api/command",
            {"user": "U_REQ", "channel": "C_APPROVALS", "text": "hello"},
            "slash commands",
        ),
        (
            "/console/api/command",
            {"user": "U_NOBODY", "channel": "C_APPROVALS", "text": "/ops help"},
            "unknown user",
        ),
        (
            "/console/api/command",
            {"user": "U_REQ", "channel": "C_NOWHERE", "text": "/ops help"},
            "unknown channel",
        ),
        ("/console/api/click", {"user": "U_REQ", "channel": "C_APPROVALS"}, "ts is required"),
        ("/console/api/views/submit", {"user": "U_REQ", "view_id": "V1", "values": []}, "no open view"),
    ]
    for path, body, reason in cases:
        response = await console.post(path, json=body)
        assert response.status_code in (400, 404), (path, response.status_code)
        assert reason in response.json()["error"], (path, response.json())
    not_json = await console.post(
        "/console/api/command", content=b"[1, 2]", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400


async def test_the_event_stream_forwards_the_emulators_changes(demo, console):
    async with console.stream("GET", "/console/events") as stream:
        assert stream.headers["content-type"] == "text/event-stream"
        lines = stream.aiter_lines()
        async with asyncio.timeout(WAIT_SECONDS):
            assert await anext(lines) == ": subscribed"
            await console.post(
                "/console/api/command", json={"user": "U_REQ", "channel": "C_APPROVALS", "text": "/ops help"}
            )
            async for line in lines:
                if line == "event: ephemeral_posted":
                    data = await anext(lines)
                    assert data.startswith("data: ") and json.loads(data[6:])["user"] == "U_REQ"
                    break


async def test_run_demo_serves_the_console_and_stops_cleanly_on_ctrl_c_within_10_seconds(tmp_path):
    script = (
        "import asyncio, pathlib, sys\n"
        "from bot.demo import run_demo\n"
        "asyncio.run(run_demo(port=0, data_dir=pathlib.Path(sys.argv[1]), out=lambda text: print(text, flush=True)))\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        str(tmp_path / "demo"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    try:
        console_url = None
        async with asyncio.timeout(60):
            while console_url is None:
                line = (await process.stdout.readline()).decode()
                assert line, "the demo exited before printing its URL"
                if line.strip().startswith("Console:"):
                    console_url = line.split("Console:", 1)[1].strip().rstrip("/")
        async with httpx.AsyncClient() as client:
            page = await client.get(console_url + "/")
        assert page.status_code == 200 and "opsgate" in page.text

        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            rest = (await process.stdout.read()).decode()
            assert await process.wait() == 0
        assert "stopping" in rest and "Traceback" not in rest, rest[-4000:]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
