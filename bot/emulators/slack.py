"""A Slack Web API emulator (aiohttp) for tests, the demo, and local runs of the bot.

Point ``slack_sdk``'s ``AsyncWebClient(base_url=f"{url}/api/")`` at it. It answers the methods
opsgate calls with Slack's response shapes and error codes, accepts form-encoded and JSON bodies
and the token as ``Authorization: Bearer`` or a ``token`` parameter, limits chat.postMessage to
about one message per second per channel (HTTP 429 + Retry-After), and keeps everything in memory.

Besides ``/api/<method>`` it serves response URLs and control routes to register triggers and
read what users see (``bot.emulators.slack_control``), and the fault-injection routes of
``connectors.emulators.faults`` (/_control/faults, /_control/reset, ...).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from bot.emulators.slack_block_limits import block_violations, view_violations
from bot.emulators.slack_control import SLACK_WORKSPACE, add_control_routes, workspace_of
from bot.emulators.slack_records import SlackChange, SlackMethodError, dm_channel_id
from bot.emulators.slack_seed import (
    DEFAULT_BOT_TOKEN,
    SlackChannel,
    SlackSeed,
    SlackUser,
    SlackUsergroup,
)
from bot.emulators.slack_socket import DEFAULT_APP_TOKEN, add_socket_mode_routes
from bot.emulators.slack_state import MAX_MESSAGE_TEXT, SlackWorkspace
from connectors.emulators.faults import add_fault_injection

__all__ = [
    "DEFAULT_BOT_TOKEN",
    "SLACK_WORKSPACE",
    "SlackChange",
    "SlackChannel",
    "SlackMethodError",
    "SlackSeed",
    "SlackUser",
    "SlackUsergroup",
    "SlackWorkspace",
    "create_app",
    "dm_channel_id",
    "workspace_of",
]

# Slack refuses views whose JSON exceeds 250 kB.
_MAX_VIEW_BYTES = 250_000

Json = dict[str, Any]
MethodHandler = Callable[[SlackWorkspace, "_Args"], Json]


def create_app(
    *,
    clock: Callable[[], float] = time.time,
    users: Sequence[SlackUser] | None = None,
    usergroups: Sequence[SlackUsergroup] | None = None,
    channels: Sequence[SlackChannel] | None = None,
    bot_token: str = DEFAULT_BOT_TOKEN,
    app_token: str = DEFAULT_APP_TOKEN,
    team_id: str | None = None,
    per_channel_rate: float = 1.0,
    burst: int = 3,
    seed: SlackSeed | None = None,
) -> web.Application:
    """Build the emulator app; keyword arguments override the matching fields of ``seed``.

    ``clock`` (wall-clock seconds) drives message ts, trigger and response URL expiry and the
    per-channel rate limit (``per_channel_rate`` messages/s, bursts of ``burst``).
    """
    overrides = {"users": users, "usergroups": usergroups, "channels": channels, "team_id": team_id}
    base = seed or SlackSeed()
    resolved = SlackSeed.model_validate(
        base.model_dump() | {key: value for key, value in overrides.items() if value is not None}
    )
    workspace = SlackWorkspace(resolved, clock=clock, per_channel_rate=per_channel_rate, burst=burst)
    app = web.Application()

    def expire_tokens() -> None:
        workspace.token_expired = True

    add_fault_injection(app, reset=workspace.reset, expire_tokens=expire_tokens, error_body=_fault_error_body)

    async def web_api(request: web.Request) -> web.Response:
        return await _call_method(request, workspace, bot_token)

    app.router.add_route("*", "/api/{method}", web_api)
    add_control_routes(app, workspace)
    add_socket_mode_routes(app, app_token=app_token, app_id=resolved.app_id, clock=clock)
    return app


def _fault_error_body(status: int) -> Json:
    errors = {429: "ratelimited", 503: "service_unavailable"}
    return {
        "ok": False,
        "error": errors.get(status, "internal_error" if status >= 500 else "invalid_arguments"),
    }


# -- Web API ---------------------------------------------------------------------------------


class _Args:
    """The merged query, form and JSON arguments of one Web API call."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = dict(values)

    def text(self, name: str) -> str:
        value = self.values.get(name)
        return "" if value is None else str(value)

    def optional(self, name: str) -> str | None:
        value = self.values.get(name)
        return None if value in (None, "") else str(value)

    def json(self, name: str, *, error: str) -> Any:
        """A JSON-valued argument: a JSON body carries it as is, a form as a JSON string."""
        value = self.values.get(name)
        if isinstance(value, str):
            if not value.strip():
                return None
            try:
                return json.loads(value)
            except ValueError:
                raise SlackMethodError(error) from None
        return value


async def _read_args(request: web.Request) -> _Args:
    values: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.body_exists:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise SlackMethodError("invalid_json") from None
            if not isinstance(body, dict):
                raise SlackMethodError("invalid_json")
            values.update(body)
        else:
            form = await request.post()
            values.update({key: value for key, value in form.items() if isinstance(value, str)})
    return _Args(values)


def _token_of(request: web.Request, args: _Args) -> str | None:
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("Bearer "):
        return authorization.removeprefix("Bearer ").strip() or None
    return args.optional("token")


def _error_response(error: SlackMethodError) -> web.Response:
    return web.json_response(error.body(), status=error.status, headers=error.headers())


async def _call_method(request: web.Request, workspace: SlackWorkspace, bot_token: str) -> web.Response:
    name = request.match_info["method"]
    handler = _METHODS.get(name)
    if handler is None:
        return web.json_response({"ok": False, "error": "unknown_method", "req_method": name}, status=404)
    try:
        args = await _read_args(request)
        if name != "api.test":
            token = _token_of(request, args)
            if token is None:
                raise SlackMethodError("not_authed")
            if token != bot_token:
                raise SlackMethodError("invalid_auth")
            if workspace.token_expired:
                raise SlackMethodError("token_expired")
        result = handler(workspace, args)
    except SlackMethodError as error:
        return _error_response(error)
    return web.json_response({"ok": True} | result)


def _message_content(args: _Args, *, required: bool = True) -> tuple[str, list[Json] | None]:
    """Text and blocks of a chat.* call, checked against Slack's limits."""
    text = args.text("text")
    blocks = args.json("blocks", error="invalid_blocks_format")
    attachments = args.json("attachments", error="invalid_attachments")
    if blocks is not None:
        problems = block_violations(blocks, surface="message")
        if problems:
            raise SlackMethodError("invalid_blocks", messages=problems)
    if required and not text and not blocks and not attachments:
        raise SlackMethodError("no_text")
    if len(text) > MAX_MESSAGE_TEXT:
        raise SlackMethodError("msg_too_long")
    return text, blocks


def _api_test(workspace: SlackWorkspace, args: _Args) -> Json:
    return {"args": {key: value for key, value in args.values.items() if key != "token"}}


def _auth_test(workspace: SlackWorkspace, args: _Args) -> Json:
    seed = workspace.seed
    return {
        "url": f"https://{seed.team_domain}.slack.com/",
        "team": seed.team_name,
        "user": seed.bot_name,
        "team_id": seed.team_id,
        "user_id": seed.bot_user_id,
        "bot_id": seed.bot_id,
        "is_enterprise_install": False,
    }


def _post_message(workspace: SlackWorkspace, args: _Args) -> Json:
    channel_id = workspace.resolve_channel(args.text("channel"))
    info = workspace.channel_info(channel_id)
    if info.get("is_private") and not info.get("is_member"):
        raise SlackMethodError("not_in_channel")
    text, blocks = _message_content(args)
    metadata = args.json("metadata", error="invalid_metadata_format")
    workspace.take_post_token(channel_id)
    message = workspace.post_message(
        channel_id, text=text, blocks=blocks or [], thread_ts=args.optional("thread_ts"), metadata=metadata
    )
    return {"channel": channel_id, "ts": message.ts, "message": message.to_api()}


def _update(workspace: SlackWorkspace, args: _Args) -> Json:
    channel_id = workspace.resolve_channel(args.text("channel"))
    current = workspace.message(channel_id, args.text("ts"))
    text, blocks = _message_content(args, required=False)
    # Slack keeps the fields a chat.update call leaves out.
    new_text = text if "text" in args.values else current.text
    new_blocks = blocks if blocks is not None else current.blocks
    message = workspace.update_message(channel_id, current.ts, text=new_text, blocks=new_blocks)
    return {"channel": channel_id, "ts": message.ts, "text": message.text, "message": message.to_api()}


def _delete(workspace: SlackWorkspace, args: _Args) -> Json:
    channel_id = workspace.resolve_channel(args.text("channel"))
    workspace.delete_message(channel_id, args.text("ts"))
    return {"channel": channel_id, "ts": args.text("ts")}


def _post_ephemeral(workspace: SlackWorkspace, args: _Args) -> Json:
    channel_id = workspace.resolve_channel(args.text("channel"))
    text, blocks = _message_content(args)
    message = workspace.post_ephemeral(
        channel_id, args.text("user"), text=text, blocks=blocks or [], thread_ts=args.optional("thread_ts")
    )
    return {"message_ts": message.ts}


def _get_permalink(workspace: SlackWorkspace, args: _Args) -> Json:
    channel_id = workspace.resolve_channel(args.text("channel"))
    return {"channel": channel_id, "permalink": workspace.permalink(channel_id, args.text("message_ts"))}


def _view_arg(args: _Args, *, surface: str | None) -> Json:
    view = args.json("view", error="invalid_arguments")
    if not isinstance(view, dict):
        raise SlackMethodError("invalid_arguments", messages=["missing required field: view"])
    if len(json.dumps(view)) > _MAX_VIEW_BYTES:
        raise SlackMethodError("view_too_large")
    kind = surface or view.get("type")
    if kind not in ("modal", "home"):
        raise SlackMethodError(
            "invalid_arguments", messages=["type must be modal or home [json-pointer:/view/type]"]
        )
    problems = view_violations(view, surface="home" if kind == "home" else "modal")
    if problems:
        raise SlackMethodError("invalid_arguments", messages=problems)
    return view


def _views_open(workspace: SlackWorkspace, args: _Args) -> Json:
    view = _view_arg(args, surface="modal")
    user_id = workspace.exchange_trigger(args.text("trigger_id"))
    return {"view": workspace.open_modal(user_id, view)}


def _views_push(workspace: SlackWorkspace, args: _Args) -> Json:
    view = _view_arg(args, surface="modal")
    user_id = workspace.exchange_trigger(args.text("trigger_id"))
    return {"view": workspace.push_modal(user_id, view)}


def _views_update(workspace: SlackWorkspace, args: _Args) -> Json:
    view = _view_arg(args, surface=None)
    view_id, external_id = args.optional("view_id"), args.optional("external_id")
    if view_id is None and external_id is None:
        raise SlackMethodError("invalid_arguments", messages=["view_id or external_id is required"])
    return {
        "view": workspace.update_view(
            view, view_id=view_id, external_id=external_id, hash_=args.optional("hash")
        )
    }


def _views_publish(workspace: SlackWorkspace, args: _Args) -> Json:
    view = _view_arg(args, surface="home")
    return {"view": workspace.publish_home(args.text("user_id"), view, hash_=args.optional("hash"))}


def _users_info(workspace: SlackWorkspace, args: _Args) -> Json:
    user = workspace.user(args.text("user"))
    return {
        "user": {
            "id": user.id,
            "team_id": workspace.seed.team_id,
            "name": user.name,
            "deleted": user.deleted,
            "real_name": user.real_name,
            "tz": user.tz,
            "is_admin": user.is_admin,
            "is_owner": False,
            "is_bot": user.is_bot,
            "is_app_user": False,
            "profile": {
                "real_name": user.real_name,
                "display_name": user.name,
                "email": user.email,
                "team": workspace.seed.team_id,
            },
        }
    }


def _usergroup_users(workspace: SlackWorkspace, args: _Args) -> Json:
    return {"users": workspace.usergroup_members(args.text("usergroup"))}


def _conversations_open(workspace: SlackWorkspace, args: _Args) -> Json:
    if args.optional("channel"):
        channel_id = workspace.resolve_channel(args.text("channel"))
        return {"channel": workspace.channel_info(channel_id)}
    users = [user for user in args.text("users").split(",") if user]
    if not users:
        raise SlackMethodError("users_list_not_supplied")
    if len(users) > 1:
        raise SlackMethodError("invalid_arguments", messages=["the emulator opens 1:1 DMs only"])
    already_open = dm_channel_id(users[0]) in workspace.channel_ids()
    channel_id = workspace.open_dm(users[0])
    full = args.text("return_im").lower() in ("1", "true")
    channel = workspace.channel_info(channel_id) if full else {"id": channel_id}
    return {"channel": channel} | ({"no_op": True, "already_open": True} if already_open else {})


def _conversations_info(workspace: SlackWorkspace, args: _Args) -> Json:
    return {"channel": workspace.channel_info(args.text("channel"))}


_METHODS: dict[str, MethodHandler] = {
    "api.test": _api_test,
    "auth.test": _auth_test,
    "chat.postMessage": _post_message,
    "chat.update": _update,
    "chat.delete": _delete,
    "chat.postEphemeral": _post_ephemeral,
    "chat.getPermalink": _get_permalink,
    "views.open": _views_open,
    "views.push": _views_push,
    "views.update": _views_update,
    "views.publish": _views_publish,
    "users.info": _users_info,
    "usergroups.users.list": _usergroup_users,
    "conversations.open": _conversations_open,
    "conversations.info": _conversations_info,
}
