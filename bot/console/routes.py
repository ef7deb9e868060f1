"""The demo console's HTTP surface, mounted on the Slack emulator app it shows.

Everything a person does in the page reaches the bot the way Slack would send it: through a
``SlackDriver`` (signed slash commands, block_actions, view_submission, block_suggestion,
app_home_opened). What the page shows is read from the emulator's workspace in-process.

    GET  /                                the page; its script and style under /console/static/
    GET  /console/api/workspace           team, people (with demo roles), channels, fault presets
    GET  /console/api/messages?channel=&user=    top-level messages + the user's ephemeral ones
    GET  /console/api/thread?channel=&ts=        a parent message and its replies
    POST /console/api/command             {user, channel, text: "/promote ..."} -> the bot's reply
    POST /console/api/click               {user, channel, ts, action_id, value, block_id?, ephemeral?}
    POST /console/api/home/open           {user}: the app_home_opened event
    GET  /console/api/home?user=          the user's App Home view
    POST /console/api/home/click          {user, action_id, value, block_id?}
    GET  /console/api/views?user=         the user's open modals and their field errors
    POST /console/api/views/submit        {user, view_id, values} -> {response_action, errors}
    POST /console/api/views/close         {user, view_id}
    POST /console/api/views/options       {user, view_id, block_id, action_id, value} -> {options}
    GET  /console/api/faults              presets and the ones armed since the last clear
    POST /console/api/faults              {preset}
    GET  /console/events                  server-sent events: the emulator's change feed
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlencode

import httpx
from aiohttp import web

from bot.console.faults import FAULT_PRESETS, FaultPresetName, apply_fault_preset
from bot.console.page_state import channel_json, thread_json, workspace_json
from bot.emulators.slack_control import workspace_of
from bot.emulators.slack_driver import VERIFICATION_TOKEN, DriverResult, SlackDriver
from bot.emulators.slack_records import SlackMethodError
from bot.emulators.slack_state import SlackWorkspace

__all__ = ["STATIC_DIR", "add_console_routes"]

STATIC_DIR = Path(__file__).parent / "static"
_API = "/console/api"

Json = dict[str, Any]
DriverFactory = Callable[[], SlackDriver]


@dataclass
class _Console:
    driver_factory: DriverFactory
    fault_targets: Mapping[str, str]
    user_labels: Mapping[str, str]
    tips: Sequence[str] = ()
    armed: list[str] = field(default_factory=list)
    _driver: SlackDriver | None = None
    _http: httpx.AsyncClient | None = None

    def driver(self) -> SlackDriver:
        # Built on first use: the emulator's own URL is known only once it listens.
        if self._driver is None:
            self._driver = self.driver_factory()
        return self._driver

    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(5.0))
        return self._http

    async def aclose(self) -> None:
        if self._driver is not None:
            await self._driver.aclose()
        if self._http is not None:
            await self._http.aclose()


_CONSOLE = web.AppKey("opsgate_console", _Console)


def add_console_routes(
    slack_app: web.Application,
    *,
    driver_factory: DriverFactory,
    fault_targets: Mapping[str, str],
    user_labels: Mapping[str, str] | None = None,
    tips: Sequence[str] = (),
) -> None:
    """Serve the console page and its JSON API on ``slack_app`` (a Slack emulator app, not started).

    ``driver_factory`` builds the SlackDriver that talks to the bot (called on first use);
    ``fault_targets`` maps vendor names (opentext, canto, iconik...) to emulator base URLs;
    ``user_labels`` names each demo person's role ("requester"...) for the user switcher;
    ``tips`` are commands the page offers to fill into its message box.
    """
    slack_app[_CONSOLE] = _Console(driver_factory, dict(fault_targets), dict(user_labels or {}), tuple(tips))

    async def close_console(app: web.Application) -> None:
        await app[_CONSOLE].aclose()

    slack_app.on_cleanup.append(close_console)
    router = slack_app.router
    router.add_get("/", _index)
    router.add_static("/console/static/", STATIC_DIR, append_version=False)
    router.add_get(f"{_API}/workspace", _get_workspace)
    router.add_get(f"{_API}/messages", _get_messages)
    router.add_get(f"{_API}/thread", _get_thread)
    router.add_post(f"{_API}/command", _post_command)
    router.add_post(f"{_API}/click", _post_click)
    router.add_post(f"{_API}/home/open", _post_home_open)
    router.add_get(f"{_API}/home", _get_home)
    router.add_post(f"{_API}/home/click", _post_home_click)
    router.add_get(f"{_API}/views", _get_views)
    router.add_post(f"{_API}/views/submit", _post_view_submit)
    router.add_post(f"{_API}/views/close", _post_view_close)
    router.add_post(f"{_API}/views/options", _post_view_options)
    router.add_get(f"{_API}/faults", _get_faults)
    router.add_post(f"{_API}/faults", _post_faults)
    router.add_get("/console/events", _get_events)


# -- request plumbing ----------------------------------------------------------------------------


class _BadRequest(web.HTTPBadRequest):
    def __init__(self, message: str) -> None:
        super().__init__(text=json.dumps({"error": message}), content_type="application/json")


def _console(request: web.Request) -> _Console:
    return request.app[_CONSOLE]


def _workspace(request: web.Request) -> SlackWorkspace:
    return workspace_of(request.app)


async def _body(request: web.Request) -> Json:
    try:
        body = await request.json()
    except ValueError:
        raise _BadRequest("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise _BadRequest("the body must be a JSON object")
    return body


def _text(source: Mapping[str, Any], name: str, *, required: bool = True) -> str:
    value = source.get(name)
    if value is None or value == "":
        if required:
            raise _BadRequest(f"{name} is required")
        return ""
    if not isinstance(value, str):
        raise _BadRequest(f"{name} must be a string")
    return value


def _user(request: web.Request, source: Mapping[str, Any]) -> str:
    user_id = _text(source, "user")
    try:
        _workspace(request).user(user_id)
    except SlackMethodError:
        raise _BadRequest(f"unknown user {user_id}") from None
    return user_id


def _open_view(request: web.Request, user_id: str, view_id: str) -> Json:
    for view in _workspace(request).open_modals(user_id):
        if view["id"] == view_id:
            return view
    raise web.HTTPNotFound(
        text=json.dumps({"error": f"no open view {view_id} for {user_id}"}), content_type="application/json"
    )


def _answer(result: DriverResult) -> Any:
    """The bot's answer body: JSON when it sent JSON, else {"text": body} (None when empty)."""
    if not result.body.strip():
        return None
    if result.headers.get("content-type", "").startswith("application/json"):
        try:
            return result.json()
        except ValueError:
            return {"text": result.text}
    return {"text": result.text}


def _bot_unreachable(error: httpx.HTTPError) -> web.Response:
    return web.json_response({"error": f"the bot did not answer ({type(error).__name__})"}, status=502)


def _outcome(result: DriverResult) -> Json:
    return {"ok": result.status == 200, "status": result.status, "answer": _answer(result)}


# -- page and reads ------------------------------------------------------------------------------


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def _get_workspace(request: web.Request) -> web.Response:
    body = workspace_json(_workspace(request), _console(request).user_labels)
    body["tips"] = list(_console(request).tips)
    body["fault_presets"] = [
        {"name": p.name, "label": p.label, "description": p.description} for p in FAULT_PRESETS
    ]
    return web.json_response(body)


async def _get_messages(request: web.Request) -> web.Response:
    channel = _text(request.query, "channel")
    user_id = request.query.get("user") or None
    try:
        return web.json_response(channel_json(_workspace(request), channel, user_id))
    except SlackMethodError as error:
        return web.json_response({"error": error.error}, status=404)


async def _get_thread(request: web.Request) -> web.Response:
    try:
        body = thread_json(_workspace(request), _text(request.query, "channel"), _text(request.query, "ts"))
    except SlackMethodError as error:
        return web.json_response({"error": error.error}, status=404)
    return web.json_response(body)


async def _get_home(request: web.Request) -> web.Response:
    user_id = _user(request, request.query)
    return web.json_response({"user": user_id, "view": _workspace(request).home(user_id)})


async def _get_views(request: web.Request) -> web.Response:
    user_id = _user(request, request.query)
    workspace = _workspace(request)
    return web.json_response(
        {"user": user_id, "views": workspace.open_modals(user_id), "errors": workspace.modal_errors(user_id)}
    )


# -- what people do ------------------------------------------------------------------------------


async def _post_command(request: web.Request) -> web.Response:
    body = await _body(request)
    user_id = _user(request, body)
    channel = _text(body, "channel")
    typed = _text(body, "text").strip()
    if not typed.startswith("/") or len(typed) < 2:
        raise _BadRequest("The console sends slash commands: start with / (try /ops help).")
    command, _, arguments = typed.partition(" ")
    try:
        channel_id = _workspace(request).resolve_channel(channel)
    except SlackMethodError:
        raise _BadRequest(f"unknown channel {channel}") from None
    try:
        result = (
            await _console(request).driver().slash_command(user_id, command, arguments.strip(), channel_id)
        )
    except httpx.HTTPError as error:
        return _bot_unreachable(error)
    return web.json_response(_outcome(result))


async def _post_click(request: web.Request) -> web.Response:
    body = await _body(request)
    user_id = _user(request, body)
    try:
        result = (
            await _console(request)
            .driver()
            .block_action(
                user_id,
                message_ts=_text(body, "ts"),
                channel_id=_workspace(request).resolve_channel(_text(body, "channel")),
                action_id=_text(body, "action_id"),
                value=_text(body, "value", required=False),
                block_id=_text(body, "block_id", required=False) or None,
                is_ephemeral=bool(body.get("ephemeral", False)),
            )
        )
    except SlackMethodError as error:
        return web.json_response({"error": error.error}, status=404)
    except httpx.HTTPError as error:
        return _bot_unreachable(error)
    return web.json_response(_outcome(result))


async def _post_home_open(request: web.Request) -> web.Response:
    user_id = _user(request, await _body(request))
    try:
        result = await _console(request).driver().app_home_opened(user_id)
    except httpx.HTTPError as error:
        return _bot_unreachable(error)
    return web.json_response(_outcome(result))


async def _post_home_click(request: web.Request) -> web.Response:
    body = await _body(request)
    user_id = _user(request, body)
    try:
        result = (
            await _console(request)
            .driver()
            .home_block_action(
                user_id,
                action_id=_text(body, "action_id"),
                value=_text(body, "value", required=False),
                block_id=_text(body, "block_id", required=False) or None,
            )
        )
    except LookupError as error:
        return web.json_response({"error": str(error)}, status=404)
    except httpx.HTTPError as error:
        return _bot_unreachable(error)
    return web.json_response(_outcome(result))


def _state_values(raw: Any) -> dict[str, dict[str, Any]]:
    """The submitted ``values`` (block_id -> action_id -> state object or text), checked."""
    if not isinstance(raw, dict):
        raise _BadRequest("values must map block_id -> action_id -> value")
    values: dict[str, dict[str, Any]] = {}
    for block_id, actions in raw.items():
        if not isinstance(actions, dict):
            raise _BadRequest(f"values.{block_id} must map action_id -> value")
        for action_id, value in actions.items():
            if not isinstance(value, (str, dict)):
                raise _BadRequest(f"values.{block_id}.{action_id} must be text or a state object")
        values[str(block_id)] = dict(actions)
    return values


async def _post_view_submit(request: web.Request) -> web.Response:
    body = await _body(request)
    user_id = _user(request, body)
    view = _open_view(request, user_id, _text(body, "view_id"))
    values = _state_values(body.get("values", {}))
    try:
        result = await _console(request).driver().view_submission(user_id, view, values)
    except httpx.HTTPError as error:
        return _bot_unreachable(error)
    answer = _answer(result)
    action = answer.get("response_action") if isinstance(answer, dict) else None
    errors = answer.get("errors", {}) if isinstance(answer, dict) and action == "errors" else {}
    return web.json_response(_outcome(result) | {"response_action": action, "errors": errors})


async def _post_view_close(request: web.Request) -> web.Response:
    body = await _body(request)
    user_id = _user(request, body)
    view = _open_view(request, user_id, _text(body, "view_id"))
    workspace = _workspace(request)
    if view.get("notify_on_close"):
        seed = workspace.seed
        payload = {
            "type": "view_closed",
            "team": {"id": seed.team_id, "domain": seed.team_domain},
            "user": {"id": user_id, "name": workspace.user(user_id).name, "team_id": seed.team_id},
            "api_app_id": seed.app_id,
            "token": VERIFICATION_TOKEN,
            "view": view,
            "is_cleared": False,
        }
        try:
            await _console(request).driver().send_raw(urlencode({"payload": json.dumps(payload)}).encode())
        except httpx.HTTPError as error:
            return _bot_unreachable(error)
    # Closing takes the view (and any pushed above it) off the stack, as an empty answer to a
    # submission does.
    workspace.acknowledge_submission(user_id, view["id"], None)
    return web.json_response({"ok": True})


async def _post_view_options(request: web.Request) -> web.Response:
    """Ask the bot for an external select's options (Slack's block_suggestion request)."""
    body = await _body(request)
    user_id = _user(request, body)
    view = _open_view(request, user_id, _text(body, "view_id"))
    workspace = _workspace(request)
    seed = workspace.seed
    payload = {
        "type": "block_suggestion",
        "user": {"id": user_id, "name": workspace.user(user_id).name, "team_id": seed.team_id},
        "container": {"type": "view", "view_id": view["id"]},
        "api_app_id": seed.app_id,
        "token": VERIFICATION_TOKEN,
        "action_id": _text(body, "action_id"),
        "block_id": _text(body, "block_id"),
        "value": _text(body, "value", required=False),
        "team": {"id": seed.team_id, "domain": seed.team_domain},
        "view": view,
    }
    try:
        result = (
            await _console(request).driver().send_raw(urlencode({"payload": json.dumps(payload)}).encode())
        )
    except httpx.HTTPError as error:
        return _bot_unreachable(error)
    answer = _answer(result)
    options = answer.get("options", []) if isinstance(answer, dict) else []
    return web.json_response({"ok": result.status == 200, "status": result.status, "options": options})


async def _get_faults(request: web.Request) -> web.Response:
    console = _console(request)
    return web.json_response(
        {
            "presets": [p.name for p in FAULT_PRESETS],
            "armed": console.armed,
            "targets": list(console.fault_targets),
        }
    )


async def _post_faults(request: web.Request) -> web.Response:
    body = await _body(request)
    name = _text(body, "preset")
    if name not in get_args(FaultPresetName):
        raise _BadRequest(f"unknown preset {name}; one of {', '.join(get_args(FaultPresetName))}")
    console = _console(request)
    report = await apply_fault_preset(
        name,  # type: ignore[arg-type]  # checked against the Literal's values above
        slack_app=request.app,
        fault_targets=console.fault_targets,
        client=console.http(),
    )
    if name == "clear":
        console.armed.clear()
    elif report.ok:
        console.armed.append(name)
    return web.json_response(report.to_json() | {"armed": console.armed}, status=200 if report.ok else 502)


async def _get_events(request: web.Request) -> web.StreamResponse:
    """The emulator's change feed as server-sent events (``event: <kind>``, JSON data)."""
    workspace = _workspace(request)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    async with workspace.subscribe() as changes:
        await response.prepare(request)
        # A comment first: a client that has read it is subscribed and misses no later change.
        await response.write(b": subscribed\nretry: 1000\n\n")
        async for change in changes:
            await response.write(
                f"id: {change.seq}\nevent: {change.kind}\ndata: {json.dumps(change.data)}\n\n".encode()
            )
    return response
