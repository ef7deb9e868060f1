"""Routes of the Slack emulator that are not Slack's Web API: response URLs, control, events.

Never authenticated, never faulted (except ``/_response_url/{id}``, which stands in for Slack's
hooks.slack.com URL and so can be faulted like any Slack endpoint):

    GET  /_control/seed                    the workspace (team, users, user groups, channels)
    GET  /_control/messages?channel=C..    messages of a channel or DM, ts order (&include_deleted=1)
    GET  /_control/ephemeral?user=U..      ephemeral messages a user sees
    GET  /_control/views?user=U..          the user's open modal stack and field errors
    GET  /_control/home?user=U..           the user's App Home view
    POST /_control/triggers                {"user_id"} -> {"trigger_id"} (valid 3 s, single use)
    POST /_control/response_urls           {"user_id", "channel_id", "message_ts"?, "is_ephemeral"?}
                                           -> {"id", "url", ...}
    POST /_control/responses/{id}/ack      the app's synchronous reply to a command, shown like a
                                           response_url message without spending one of its uses
    GET  /_control/responses?id=..         what the app sent to that response URL
    POST /_control/views/{view_id}/ack     {"user_id", "body"}: the app's answer to a view_submission
    GET  /_control/events                  server-sent events, one per change
    POST /_response_url/{id}               the response URL itself (5 uses within 30 minutes)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from bot.emulators.slack_block_limits import block_violations
from bot.emulators.slack_records import SlackMethodError
from bot.emulators.slack_state import MAX_MESSAGE_TEXT, SlackWorkspace

__all__ = ["SLACK_WORKSPACE", "add_control_routes", "workspace_of"]

SLACK_WORKSPACE = web.AppKey("opsgate_slack_workspace", SlackWorkspace)

Json = dict[str, Any]


def workspace_of(app: web.Application) -> SlackWorkspace:
    """The emulator state behind ``app`` (for in-process tests and the demo console)."""
    return app[SLACK_WORKSPACE]


def add_control_routes(app: web.Application, workspace: SlackWorkspace) -> None:
    """Register the response URL, control and event routes for ``workspace`` on ``app``."""
    app[SLACK_WORKSPACE] = workspace

    async def close_subscriptions(app: web.Application) -> None:
        # Ends open /_control/events streams so shutdown does not wait for them.
        workspace.close_subscriptions()

    app.on_shutdown.append(close_subscriptions)
    app.router.add_post("/_response_url/{id}", _use_response_url)
    app.router.add_get("/_control/seed", _get_seed)
    app.router.add_get("/_control/messages", _get_messages)
    app.router.add_get("/_control/ephemeral", _get_ephemeral)
    app.router.add_get("/_control/views", _get_views)
    app.router.add_get("/_control/home", _get_home)
    app.router.add_post("/_control/triggers", _post_trigger)
    app.router.add_post("/_control/response_urls", _post_response_url)
    app.router.add_get("/_control/responses", _get_responses)
    app.router.add_post("/_control/responses/{id}/ack", _post_command_ack)
    app.router.add_post("/_control/views/{view_id}/ack", _post_view_ack)
    app.router.add_get("/_control/events", _get_events)


def _error_response(error: SlackMethodError) -> web.Response:
    return web.json_response(error.body(), status=error.status, headers=error.headers())


# -- response URLs -----------------------------------------------------------------------------


def _response_content(body: Mapping[str, Any]) -> tuple[str, list[Json]]:
    text = str(body.get("text") or "")
    blocks = body.get("blocks")
    if blocks is not None:
        problems = block_violations(blocks, surface="message")
        if problems:
            raise SlackMethodError("invalid_blocks", status=400, messages=problems)
    deleting = str(body.get("delete_original", "")).lower() in ("true", "1")
    if not text and not blocks and not deleting:
        raise SlackMethodError("no_text", status=400)
    if len(text) > MAX_MESSAGE_TEXT:
        raise SlackMethodError("msg_too_long", status=400)
    return text, list(blocks or [])


async def _response_body(request: web.Request) -> Json:
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise SlackMethodError("invalid_payload", status=400) from None
    else:
        form = await request.post()
        raw = form.get("payload")
        try:
            body = json.loads(raw) if isinstance(raw, str) else dict(form)
        except ValueError:
            raise SlackMethodError("invalid_payload", status=400) from None
    if not isinstance(body, dict):
        raise SlackMethodError("invalid_payload", status=400)
    return body


async def _use_response_url(request: web.Request) -> web.Response:
    workspace = workspace_of(request.app)
    try:
        workspace.response_url(request.match_info["id"])
        body = await _response_body(request)
        text, blocks = _response_content(body)
        workspace.respond(request.match_info["id"], body, text=text, blocks=blocks)
    except SlackMethodError as error:
        return _error_response(error)
    return web.json_response({"ok": True})


# -- control routes ----------------------------------------------------------------------------


def _control_error(error: SlackMethodError) -> web.Response:
    return web.json_response(error.body(), status=404 if error.status == 404 else 400)


def _required_query(request: web.Request, name: str) -> str:
    value = request.query.get(name)
    if not value:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"query parameter {name} is required"}), content_type="application/json"
        )
    return value


async def _json_object(request: web.Request) -> Json:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body must be a JSON object"}), content_type="application/json"
        ) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body must be a JSON object"}), content_type="application/json"
        )
    return body


async def _get_seed(request: web.Request) -> web.Response:
    return web.json_response(workspace_of(request.app).seed.model_dump(mode="json"))


async def _get_messages(request: web.Request) -> web.Response:
    workspace = workspace_of(request.app)
    include_deleted = request.query.get("include_deleted", "").lower() in ("1", "true")
    channel = request.query.get("channel")
    try:
        channel_ids = [workspace.resolve_channel(channel)] if channel else workspace.channel_ids()
        result = {
            channel_id: [
                m.model_dump(mode="json")
                for m in workspace.messages(channel_id, include_deleted=include_deleted)
            ]
            for channel_id in channel_ids
        }
    except SlackMethodError as error:
        return _control_error(error)
    if channel:
        ((channel_id, messages),) = result.items()
        return web.json_response({"channel": channel_id, "messages": messages})
    return web.json_response({"channels": result})


async def _get_ephemeral(request: web.Request) -> web.Response:
    user_id = _required_query(request, "user")
    messages = workspace_of(request.app).ephemeral_messages(user_id)
    return web.json_response({"user": user_id, "messages": [m.model_dump(mode="json") for m in messages]})


async def _get_views(request: web.Request) -> web.Response:
    user_id = _required_query(request, "user")
    workspace = workspace_of(request.app)
    return web.json_response(
        {"user": user_id, "views": workspace.open_modals(user_id), "errors": workspace.modal_errors(user_id)}
    )


async def _get_home(request: web.Request) -> web.Response:
    user_id = _required_query(request, "user")
    return web.json_response({"user": user_id, "view": workspace_of(request.app).home(user_id)})


async def _post_trigger(request: web.Request) -> web.Response:
    body = await _json_object(request)
    try:
        trigger_id = workspace_of(request.app).issue_trigger(str(body.get("user_id", "")))
    except SlackMethodError as error:
        return _control_error(error)
    return web.json_response({"trigger_id": trigger_id}, status=201)


async def _post_response_url(request: web.Request) -> web.Response:
    body = await _json_object(request)
    try:
        response_url = workspace_of(request.app).issue_response_url(
            str(request.url.origin()),
            user_id=str(body.get("user_id", "")),
            channel_id=str(body.get("channel_id", "")),
            message_ts=body.get("message_ts"),
            is_ephemeral=bool(body.get("is_ephemeral", False)),
        )
    except SlackMethodError as error:
        return _control_error(error)
    return web.json_response(response_url.model_dump(mode="json"), status=201)


async def _get_responses(request: web.Request) -> web.Response:
    try:
        response_url = workspace_of(request.app).response_url(_required_query(request, "id"))
    except SlackMethodError as error:
        return _control_error(error)
    return web.json_response(response_url.model_dump(mode="json"))


async def _post_command_ack(request: web.Request) -> web.Response:
    workspace = workspace_of(request.app)
    try:
        workspace.response_url(request.match_info["id"])
        body = await _response_body(request)
        text, blocks = _response_content(body)
        recorded = workspace.respond(request.match_info["id"], body, text=text, blocks=blocks, via="ack")
    except SlackMethodError as error:
        return _control_error(error)
    return web.json_response(recorded.model_dump(mode="json"))


async def _post_view_ack(request: web.Request) -> web.Response:
    body = await _json_object(request)
    ack = body.get("body")
    try:
        workspace_of(request.app).acknowledge_submission(
            str(body.get("user_id", "")),
            request.match_info["view_id"],
            ack if isinstance(ack, dict) else None,
        )
    except SlackMethodError as error:
        return _control_error(error)
    except (KeyError, TypeError):
        return web.json_response({"error": "response_action needs a view"}, status=400)
    return web.json_response({"ok": True})


async def _get_events(request: web.Request) -> web.StreamResponse:
    workspace = workspace_of(request.app)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    async with workspace.subscribe() as changes:
        await response.prepare(request)
        # A comment line first: once a client reads it, it is subscribed and misses nothing.
        await response.write(b": subscribed\n\n")
        async for change in changes:
            await response.write(
                f"id: {change.seq}\nevent: {change.kind}\ndata: {json.dumps(change.data)}\n\n".encode()
            )
    return response
