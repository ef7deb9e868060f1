"""Slash command listeners: parse, then either answer at once or persist a job and ack.

Usage errors are answered inline (ephemeral, with the usage line); a command with no arguments
opens its modal; everything else becomes a `slack.command` job keyed by the trigger id, so a
retried delivery never opens a second request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.blocks.modals import build_new_request_modal, build_options
from bot.ids import ActionId
from bot.listeners.context import COMMAND_JOB, SlackContext
from bot.payloads import NewRequestModalMetadata
from commands.parsing import OpenModal, UsageError, parse_command, usage_for

__all__ = ["HELP_TEXT", "register"]

log = logging.getLogger("opsgate.slack.commands")

CommandName = Literal["promote", "rotate", "release", "ops"]
RequestKind = Literal["promotion", "rotation", "release"]
KINDS: dict[str, RequestKind] = {"promote": "promotion", "rotate": "rotation", "release": "release"}
COMMANDS: tuple[CommandName, ...] = ("promote", "rotate", "release", "ops")


def help_text(ctx: SlackContext) -> str:
    names = {name: ctx.config.slack.command(name) for name in COMMANDS}
    lines = ["*opsgate* governs risky changes. Commands:"]
    for name in COMMANDS:
        lines.append(f"• `{usage_for(name, command=names[name])}`")
    lines.append('Add `--emergency "reason"` to use break-glass where a policy allows it.')
    return "\n".join(lines)


HELP_TEXT = help_text


def register(app: AsyncApp, ctx: SlackContext) -> None:
    for name in COMMANDS:
        app.command(ctx.config.slack.command(name))(_listener(name, ctx))
    _register_option_sources(app, ctx)


def _register_option_sources(app: AsyncApp, ctx: SlackContext) -> None:
    """Suggestions for selects too long for a static list (more than 100 choices)."""
    sources: dict[ActionId, Callable[[], list[str]]] = {
        ActionId.ARTIFACT_SELECT: lambda: sorted({a for s in ctx.config.solutions for a in s.artifacts}),
        ActionId.CREDENTIAL_SELECT: lambda: list(ctx.extras.get("credential_names", ())),
        ActionId.DESTINATION_SELECT: lambda: [d.name for d in getattr(ctx.config, "destinations", [])],
    }
    for action_id, choices in sources.items():
        app.options(action_id.value)(_suggestions(choices))


def _suggestions(choices: Callable[[], list[str]]) -> Any:
    async def suggest(ack: AsyncAck, payload: dict[str, Any]) -> None:
        options = build_options(str(payload.get("value") or ""), choices())
        await ack(options=[o.to_dict() for o in options])

    return suggest


def _listener(name: CommandName, ctx: SlackContext) -> Any:
    slash = ctx.config.slack.command(name)

    async def on_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        text = str(command.get("text") or "")
        try:
            parsed = parse_command(name, text, command=slash)
        except UsageError as error:
            await ack(response_type="ephemeral", text=f":warning: {error.message}\nUsage: `{error.usage}`")
            return
        if isinstance(parsed, OpenModal):
            if name == "ops":
                await ack(response_type="ephemeral", text=help_text(ctx))
                return
            await ack()
            ctx.runtime.supervisor.spawn(_open_modal(ctx, name, command), name=f"modal-{name}")
            return
        if name == "ops" and getattr(parsed, "sub", "") == "help":
            await ack(response_type="ephemeral", text=help_text(ctx))
            return
        trigger = str(command.get("trigger_id") or "")
        await ctx.enqueue(
            COMMAND_JOB,
            {
                "name": name,
                "command": slash,
                "text": text,
                "user_id": command.get("user_id"),
                "channel_id": command.get("channel_id"),
                "team_id": command.get("team_id"),
                "response_url": command.get("response_url"),
                "trigger_id": trigger,
            },
            dedup_key=f"cmd:{trigger}" if trigger else None,
        )
        await ack(response_type="ephemeral", text=f":hourglass_flowing_sand: Checking `{slash} {text}`…")

    return on_command


async def _open_modal(ctx: SlackContext, name: CommandName, command: dict[str, Any]) -> None:
    kind = KINDS[name]
    view = build_new_request_modal(
        kind,
        config=ctx.config,
        credentials=ctx.extras.get("credential_names", ()),
        destinations=[d.name for d in getattr(ctx.config, "destinations", [])],
        metadata=NewRequestModalMetadata(kind=kind, channel_id=command.get("channel_id")),
    )
    await ctx.runtime.slack.views_open(trigger_id=command["trigger_id"], view=view)
