"""What the console page shows, read from the Slack emulator's workspace: pure functions to JSON.

A channel shows its top-level messages plus the ephemeral messages the viewing user was shown
there (as Slack's client does, marked ephemeral); a thread shows a parent and its replies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.emulators.slack_records import ChannelMessage, EphemeralMessage, SlackMethodError, dm_channel_id
from bot.emulators.slack_state import SlackWorkspace

__all__ = ["channel_json", "thread_json", "workspace_json"]

Json = dict[str, Any]


def workspace_json(workspace: SlackWorkspace, user_labels: Mapping[str, str]) -> Json:
    """Team, people (with their demo role), channels and each person's DM with the bot."""
    seed = workspace.seed
    users = [
        {
            "id": user.id,
            "name": user.name,
            "real_name": user.real_name or user.name,
            "label": user_labels.get(user.id, ""),
            "dm": dm_channel_id(user.id),
        }
        for user in seed.users
        if not user.deleted
    ]
    # People with a demo role come first, in the order the roles were given.
    order = {user_id: index for index, user_id in enumerate(user_labels)}
    users.sort(key=lambda user: order.get(str(user["id"]), len(order)))
    return {
        "team": {"id": seed.team_id, "name": seed.team_name},
        "bot": {"id": seed.bot_user_id, "name": seed.bot_name},
        "users": users,
        "usergroups": [{"id": group.id, "handle": group.handle} for group in seed.usergroups],
        "channels": [
            {"id": channel.id, "name": channel.name, "topic": channel.topic, "is_private": channel.is_private}
            for channel in seed.channels
        ],
    }


def _author(workspace: SlackWorkspace, user_id: str) -> str:
    try:
        user = workspace.user(user_id)
    except SlackMethodError:  # an unknown author is shown by id
        return user_id
    return user.real_name or user.name


def _message_json(workspace: SlackWorkspace, message: ChannelMessage) -> Json:
    return {
        "channel": message.channel,
        "ts": message.ts,
        "thread_ts": message.thread_ts,
        "user": message.user,
        "author": _author(workspace, message.user),
        "is_bot": message.bot_id is not None,
        "text": message.text,
        "blocks": message.blocks,
        "reply_count": message.reply_count,
        "edited": message.edited_ts is not None,
        "ephemeral": False,
    }


def _ephemeral_json(workspace: SlackWorkspace, message: EphemeralMessage) -> Json:
    return {
        "channel": message.channel,
        "ts": message.ts,
        "thread_ts": message.thread_ts,
        "user": workspace.seed.bot_user_id,
        "author": workspace.seed.bot_name,
        "is_bot": True,
        "text": message.text,
        "blocks": message.blocks,
        "reply_count": 0,
        "edited": bool(message.history),
        "ephemeral": True,
    }


def channel_json(workspace: SlackWorkspace, channel: str, user_id: str | None) -> Json:
    """Top-level messages of ``channel`` and the ephemeral ones ``user_id`` saw there, in ts order.

    Raises SlackMethodError(channel_not_found) for an unknown channel.
    """
    channel_id = workspace.resolve_channel(channel)
    shown = [
        _message_json(workspace, message)
        for message in workspace.messages(channel_id)
        if message.thread_ts in (None, message.ts)
    ]
    if user_id:
        shown += [
            _ephemeral_json(workspace, message)
            for message in workspace.ephemeral_messages(user_id)
            if message.channel == channel_id
        ]
    shown.sort(key=lambda message: float(message["ts"]))
    return {"channel": channel_id, "messages": shown}


def thread_json(workspace: SlackWorkspace, channel: str, ts: str) -> Json:
    """The parent at ``ts`` and its replies, oldest first; raises SlackMethodError when not found."""
    channel_id = workspace.resolve_channel(channel)
    parent = workspace.message(channel_id, ts)
    replies = [
        _message_json(workspace, message)
        for message in workspace.messages(channel_id)
        if message.thread_ts == ts and message.ts != ts
    ]
    return {"channel": channel_id, "parent": _message_json(workspace, parent), "replies": replies}
