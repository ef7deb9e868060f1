"""Slash command listeners: parse, then either answer at once or persist a job and ack.

Usage errors are answered inline (ephemeral, with the usage line); a command with no arguments
opens its modal; everything else becomes a `slack.command` job keyed by the trigger id, so a
retried delivery never opens a second request.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.blocks.modals import build_new_request_modal
from bot.listeners.context import COMMAND_JOB, SlackContext
from bot.payloads import NewRequestModalMetadata
from commands.parsing import OpenModal, UsageError, parse_command, usage_for

__all__ = ["HELP_TEXT", "register"]

log = logging.getLogger("opsgate.slack.commands")

KINDS = {"promote": "promotion", "rotate": "rotation", "release": "release"}


def help_text(ctx: SlackContext) -> str:
    names = {name: ctx.config.slack.command(name) for name in ("promote", "rotate", "release", "ops")}
    lines = ["*opsgate* governs risky changes. Commands:"]
    for name in ("promote", "rotate", "release", "ops"):
        lines.append(f"• `{usage_for(name, command=names[name])}`")
    lines.append('Add `--emergency "reason"` to use break-glass where a policy allows it.')
    return "\n".join(lines)


HELP_TEXT = help_text


def register(app: AsyncApp, ctx: SlackContext) -> None:
    for name in ("promote", "rotate", "release", "ops"):
        app.command(ctx.config.slack.command(name))(_listener(name, ctx))

    @app.command(re.compile(".*"))
    async def unknown(ack: AsyncAck, command: dict[str, Any]) -> None:
        await ack(
            response_type="ephemeral",
            text=f"opsgate does not know `{command.get('command')}`. Try `/ops help`.",
        )


def _listener(name: str, ctx: SlackContext) -> Any:
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


async def _open_modal(ctx: SlackContext, name: str, command: dict[str, Any]) -> None:
    kind = KINDS[name]
    view = build_new_request_modal(
        kind,
        config=ctx.config,
        credentials=ctx.extras.get("credential_names", ()),
        destinations=[d.name for d in getattr(ctx.config, "destinations", [])],
        metadata=NewRequestModalMetadata(kind=kind, channel_id=command.get("channel_id")),
    )
    await ctx.runtime.slack.views_open(trigger_id=command["trigger_id"], view=view)
