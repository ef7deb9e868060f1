"""In-memory state of an emulated Slack workspace, and the rules Slack applies to changing it.

``SlackWorkspace`` holds channel messages (ts ordered, threads, edit history), ephemeral messages,
open modals, App Home views, trigger ids and response URLs. Its methods enforce Slack's rules
(per-channel posting rate, trigger ids valid 3 s and single use, response URLs good for 5 uses in
30 min, view hashes) and raise ``SlackMethodError`` with Slack's error code when a call would
fail. Every change is published to subscribers (``subscribe()``) so a console can follow along.
"""

from __future__ import annotations

import itertools
import math
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field

from bot.emulators.slack_records import (
    ChangeFeed,
    ChangeSubscription,
    ChannelMessage,
    EphemeralMessage,
    MessageVersion,
    RecordedResponse,
    ResponseUrl,
    SlackMethodError,
    dm_channel_id,
)
from bot.emulators.slack_seed import SlackChannel, SlackSeed, SlackUser

__all__ = [
    "MAX_MESSAGE_TEXT",
    "RESPONSE_URL_LIFETIME_SECONDS",
    "RESPONSE_URL_MAX_USES",
    "TRIGGER_LIFETIME_SECONDS",
    "SlackWorkspace",
]

TRIGGER_LIFETIME_SECONDS = 3.0
RESPONSE_URL_MAX_USES = 5
RESPONSE_URL_LIFETIME_SECONDS = 30 * 60
# Slack truncates message text above 40,000 characters; the emulator refuses instead so a bot
# that would lose text notices in tests.
MAX_MESSAGE_TEXT = 40_000
_TRIGGER_ID = re.compile(r"^\d+\.\d+\.[0-9a-f]+$")

Json = dict[str, Any]


class _Trigger(BaseModel):
    user_id: str
    issued_at: float
    exchanged: bool = False


class _OpenModal(BaseModel):
    user_id: str
    view: Json
    errors: dict[str, str] = Field(default_factory=dict)


class _Bucket(BaseModel):
    tokens: float
    refilled_at: float


class SlackWorkspace:
    """The emulated workspace: seed data plus everything the app has done to it."""

    def __init__(
        self,
        seed: SlackSeed,
        *,
        clock: Callable[[], float],
        per_channel_rate: float = 1.0,
        burst: int = 3,
    ) -> None:
        if per_channel_rate <= 0 or burst < 1:
            raise ValueError("per_channel_rate must be > 0 and burst >= 1")
        self.seed = seed
        self.clock = clock
        self.per_channel_rate = per_channel_rate
        self.burst = burst
        self._feed = ChangeFeed()
        self.reset()

    # -- lifecycle and change feed ---------------------------------------------------------

    def reset(self) -> None:
        """Forget everything the app did; back to the seed."""
        self._users = {user.id: user for user in (*self.seed.users, self.seed.bot_user())}
        self._usergroups = {group.id: group for group in self.seed.usergroups}
        self._channels = {channel.id: channel for channel in self.seed.channels}
        self._messages: dict[str, list[ChannelMessage]] = {channel_id: [] for channel_id in self._channels}
        self._ephemeral: dict[str, list[EphemeralMessage]] = {}
        self._modals: dict[str, list[_OpenModal]] = {}
        self._homes: dict[str, Json] = {}
        self._triggers: dict[str, _Trigger] = {}
        self._response_urls: dict[str, ResponseUrl] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._last_ts_micros = 0
        self._serial = itertools.count(1)
        self.token_expired = False
        self._publish("reset", {})

    def subscribe(self) -> ChangeSubscription:
        """Follow every change from now on (``async for change in workspace.subscribe()``)."""
        return self._feed.subscribe()

    def close_subscriptions(self) -> None:
        """End every subscription's iteration (on shutdown)."""
        self._feed.close()

    def _publish(self, kind: str, data: Json) -> None:
        self._feed.publish(kind, data)

    def _next_ts(self) -> str:
        micros = max(int(self.clock() * 1_000_000), self._last_ts_micros + 1)
        self._last_ts_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    # -- directory ---------------------------------------------------------------------------

    def user(self, user_id: str) -> SlackUser:
        """The user ``user_id``; raises user_not_found."""
        try:
            return self._users[user_id]
        except KeyError:
            raise SlackMethodError("user_not_found") from None

    def usergroup_members(self, usergroup_id: str) -> list[str]:
        """Member ids of the user group; raises no_such_subteam."""
        try:
            return list(self._usergroups[usergroup_id].users)
        except KeyError:
            raise SlackMethodError("no_such_subteam") from None

    def open_dm(self, user_id: str) -> str:
        """The DM channel id between the bot and ``user_id``, creating it on first use."""
        self.user(user_id)
        channel_id = dm_channel_id(user_id)
        self._messages.setdefault(channel_id, [])
        return channel_id

    def resolve_channel(self, ref: str) -> str:
        """Channel id for an id, ``#name``/name, user id (its DM) or DM id; raises channel_not_found."""
        if ref in self._channels:
            return ref
        if ref in self._users:
            return self.open_dm(ref)
        dm_user = next((user_id for user_id in self._users if dm_channel_id(user_id) == ref), None)
        if dm_user is not None:
            return self.open_dm(dm_user)
        name = ref.removeprefix("#")
        for channel in self._channels.values():
            if channel.name == name:
                return channel.id
        raise SlackMethodError("channel_not_found")

    def channel_info(self, channel_id: str) -> Json:
        """The conversation object conversations.info returns."""
        channel_id = self.resolve_channel(channel_id)
        if channel_id in self._channels:
            channel = self._channels[channel_id]
            return {
                "id": channel.id,
                "name": channel.name,
                "is_channel": not channel.is_private,
                "is_group": channel.is_private,
                "is_im": False,
                "is_private": channel.is_private,
                "is_archived": False,
                "is_member": self._is_member(channel, self.seed.bot_user_id),
                "created": 1_600_000_000,
                "creator": self.seed.users[0].id if self.seed.users else self.seed.bot_user_id,
                "topic": {"value": channel.topic, "creator": "", "last_set": 0},
                "purpose": {"value": "", "creator": "", "last_set": 0},
            }
        user_id = next(u for u in self._users if dm_channel_id(u) == channel_id)
        return {"id": channel_id, "is_im": True, "user": user_id, "is_open": True, "created": 1_600_000_000}

    def _is_member(self, channel: SlackChannel, user_id: str) -> bool:
        return channel.members is None or user_id in channel.members

    # -- messages ----------------------------------------------------------------------------

    def take_post_token(self, channel_id: str) -> None:
        """Spend one chat.postMessage slot of ``channel_id``; raises ratelimited (HTTP 429)."""
        now = self.clock()
        bucket = self._buckets.setdefault(channel_id, _Bucket(tokens=float(self.burst), refilled_at=now))
        bucket.tokens = min(
            float(self.burst), bucket.tokens + max(0.0, now - bucket.refilled_at) * self.per_channel_rate
        )
        bucket.refilled_at = now
        if bucket.tokens < 1.0:
            wait = (1.0 - bucket.tokens) / self.per_channel_rate
            raise SlackMethodError("ratelimited", status=429, retry_after=max(1, math.ceil(wait)))
        bucket.tokens -= 1.0

    def post_message(
        self,
        channel_id: str,
        *,
        text: str,
        blocks: list[Json],
        thread_ts: str | None = None,
        metadata: Json | None = None,
        via: Literal["api", "response_url", "ack"] = "api",
    ) -> ChannelMessage:
        """Append a bot message to ``channel_id`` (a reply when ``thread_ts`` is set)."""
        message = ChannelMessage(
            channel=channel_id,
            ts=self._next_ts(),
            user=self.seed.bot_user_id,
            bot_id=self.seed.bot_id,
            app_id=self.seed.app_id,
            team=self.seed.team_id,
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
            metadata=metadata,
            via=via,
        )
        if thread_ts is not None:
            parent = self._find_message(channel_id, thread_ts)
            if parent is not None:
                parent.reply_count += 1
        self._messages.setdefault(channel_id, []).append(message)
        self._publish("message_posted", message.model_dump(mode="json"))
        return message

    def message(self, channel_id: str, ts: str) -> ChannelMessage:
        """The live message at ``ts``; raises message_not_found."""
        message = self._find_message(channel_id, ts)
        if message is None:
            raise SlackMethodError("message_not_found")
        return message

    def _find_message(self, channel_id: str, ts: str) -> ChannelMessage | None:
        for message in self._messages.get(channel_id, []):
            if message.ts == ts and not message.deleted:
                return message
        return None

    def update_message(self, channel_id: str, ts: str, *, text: str, blocks: list[Json]) -> ChannelMessage:
        """Replace a bot message's text and blocks, keeping the old version in its history."""
        message = self.message(channel_id, ts)
        if message.user != self.seed.bot_user_id:
            raise SlackMethodError("cant_update_message")
        edited_ts = self._next_ts()
        message.history.append(
            MessageVersion(text=message.text, blocks=message.blocks, replaced_at=edited_ts)
        )
        message.text, message.blocks, message.edited_ts = text, blocks, edited_ts
        self._publish("message_updated", message.model_dump(mode="json"))
        return message

    def delete_message(self, channel_id: str, ts: str) -> None:
        """Remove a bot message from the channel."""
        message = self.message(channel_id, ts)
        if message.user != self.seed.bot_user_id:
            raise SlackMethodError("cant_delete_message")
        message.deleted = True
        self._publish("message_deleted", {"channel": channel_id, "ts": ts})

    def post_ephemeral(
        self,
        channel_id: str,
        user_id: str,
        *,
        text: str,
        blocks: list[Json],
        thread_ts: str | None = None,
        via: Literal["api", "response_url", "ack"] = "api",
    ) -> EphemeralMessage:
        """Show a message to ``user_id`` only; raises user_not_found / user_not_in_channel."""
        self.user(user_id)
        channel = self._channels.get(channel_id)
        if channel is not None and not self._is_member(channel, user_id):
            raise SlackMethodError("user_not_in_channel")
        message = EphemeralMessage(
            channel=channel_id,
            user=user_id,
            ts=self._next_ts(),
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
            via=via,
        )
        self._ephemeral.setdefault(user_id, []).append(message)
        self._publish("ephemeral_posted", message.model_dump(mode="json"))
        return message

    def _find_ephemeral(self, user_id: str, ts: str) -> EphemeralMessage | None:
        for message in self._ephemeral.get(user_id, []):
            if message.ts == ts and not message.deleted:
                return message
        return None

    def permalink(self, channel_id: str, ts: str) -> str:
        """The https permalink of a message, as chat.getPermalink builds it."""
        message = self.message(channel_id, ts)
        link = f"https://{self.seed.team_domain}.slack.com/archives/{channel_id}/p{ts.replace('.', '')}"
        if message.thread_ts and message.thread_ts != ts:
            link += f"?thread_ts={message.thread_ts}&cid={channel_id}"
        return link

    def messages(self, channel_id: str, *, include_deleted: bool = False) -> list[ChannelMessage]:
        """Messages of a channel in ts order (thread replies included, with thread_ts set)."""
        found = self._messages.get(self.resolve_channel(channel_id), [])
        return [m for m in found if include_deleted or not m.deleted]

    def channel_ids(self) -> list[str]:
        """Every channel and DM that exists so far."""
        return list(self._messages)

    def ephemeral_messages(self, user_id: str) -> list[EphemeralMessage]:
        """Ephemeral messages shown to ``user_id``, oldest first (deleted ones left out)."""
        return [m for m in self._ephemeral.get(user_id, []) if not m.deleted]

    # -- triggers and views ------------------------------------------------------------------

    def issue_trigger(self, user_id: str) -> str:
        """A fresh trigger_id for an interaction by ``user_id`` (what Slack puts in payloads)."""
        self.user(user_id)
        trigger_id = f"{int(self.clock())}.{next(self._serial)}.{uuid.uuid4().hex}"
        self._triggers[trigger_id] = _Trigger(user_id=user_id, issued_at=self.clock())
        return trigger_id

    def exchange_trigger(self, trigger_id: str) -> str:
        """Use a trigger_id once within 3 s; returns its user. Raises *_trigger_id errors."""
        if not _TRIGGER_ID.match(trigger_id):
            raise SlackMethodError("invalid_trigger_id")
        trigger = self._triggers.get(trigger_id)
        if trigger is None:
            raise SlackMethodError("invalid_trigger_id")
        if trigger.exchanged:
            raise SlackMethodError("exchanged_trigger_id")
        if self.clock() - trigger.issued_at > TRIGGER_LIFETIME_SECONDS:
            raise SlackMethodError("expired_trigger_id")
        trigger.exchanged = True
        return trigger.user_id

    def _view_hash(self) -> str:
        return f"{int(self.clock())}.{next(self._serial):08x}"

    def _complete_view(
        self, view: Json, *, view_id: str, root_view_id: str | None, previous: str | None
    ) -> Json:
        full: Json = {
            "id": view_id,
            "team_id": self.seed.team_id,
            "type": view["type"],
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": self._view_hash(),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "root_view_id": root_view_id or view_id,
            "previous_view_id": previous,
            "app_id": self.seed.app_id,
            "app_installed_team_id": self.seed.team_id,
            "bot_id": self.seed.bot_id,
        }
        for key in ("title", "submit", "close"):
            if key in view:
                full[key] = view[key]
        return full

    def _new_view_id(self) -> str:
        return f"V{next(self._serial):010d}"

    def open_modal(self, user_id: str, view: Json) -> Json:
        """Open ``view`` as a new modal for ``user_id`` (replacing any open one); returns it."""
        view_id = self._new_view_id()
        full = self._complete_view(view, view_id=view_id, root_view_id=None, previous=None)
        self._modals[user_id] = [_OpenModal(user_id=user_id, view=full)]
        self._publish("view_opened", {"user": user_id, "view": full})
        return full

    def push_modal(self, user_id: str, view: Json) -> Json:
        """Push ``view`` on top of the user's open modal stack (at most 3 views)."""
        stack = self._modals.get(user_id)
        if not stack:
            raise SlackMethodError("not_found")
        if len(stack) >= 3:
            raise SlackMethodError("push_limit_reached")
        top = stack[-1].view
        full = self._complete_view(
            view, view_id=self._new_view_id(), root_view_id=top["root_view_id"], previous=top["id"]
        )
        stack.append(_OpenModal(user_id=user_id, view=full))
        self._publish("view_pushed", {"user": user_id, "view": full})
        return full

    def update_view(
        self, view: Json, *, view_id: str | None, external_id: str | None, hash_: str | None
    ) -> Json:
        """Replace an open modal or a Home view in place; raises not_found / hash_conflict."""
        for stack in self._modals.values():
            for open_modal in stack:
                current = open_modal.view
                if current["id"] == view_id or (external_id and current["external_id"] == external_id):
                    if hash_ and hash_ != current["hash"]:
                        raise SlackMethodError("hash_conflict")
                    open_modal.view = self._complete_view(
                        view,
                        view_id=current["id"],
                        root_view_id=current["root_view_id"],
                        previous=current["previous_view_id"],
                    )
                    open_modal.errors = {}
                    self._publish("view_updated", {"user": open_modal.user_id, "view": open_modal.view})
                    return open_modal.view
        for user_id, current in self._homes.items():
            if current["id"] == view_id or (external_id and current["external_id"] == external_id):
                return self.publish_home(user_id, view, hash_=hash_)
        raise SlackMethodError("not_found")

    def publish_home(self, user_id: str, view: Json, *, hash_: str | None) -> Json:
        """Set the App Home tab ``user_id`` sees; raises hash_conflict for a stale hash."""
        self.user(user_id)
        current = self._homes.get(user_id)
        if current is not None and hash_ and hash_ != current["hash"]:
            raise SlackMethodError("hash_conflict")
        view_id = current["id"] if current is not None else self._new_view_id()
        full = self._complete_view(view, view_id=view_id, root_view_id=None, previous=None)
        self._homes[user_id] = full
        self._publish("home_published", {"user": user_id, "view": full})
        return full

    def acknowledge_submission(self, user_id: str, view_id: str, ack: Json | None) -> None:
        """Apply the app's answer to a view_submission the way Slack's client does.

        No body closes the submitted view; ``response_action`` clear closes the whole stack,
        update replaces the submitted view, push opens another on top, errors keeps it open and
        shows the field errors.
        """
        stack = self._modals.get(user_id, [])
        index = next((i for i, m in enumerate(stack) if m.view["id"] == view_id), None)
        if index is None:
            raise SlackMethodError("not_found")
        action = (ack or {}).get("response_action")
        if action == "errors":
            stack[index].errors = dict((ack or {}).get("errors", {}))
            self._publish("view_errors", {"user": user_id, "view_id": view_id, "errors": stack[index].errors})
        elif action == "update":
            self.update_view((ack or {})["view"], view_id=view_id, external_id=None, hash_=None)
        elif action == "push":
            self.push_modal(user_id, (ack or {})["view"])
        elif action == "clear":
            self._modals[user_id] = []
            self._publish("view_closed", {"user": user_id, "view_id": view_id, "cleared": True})
        else:
            del stack[index:]
            self._publish("view_closed", {"user": user_id, "view_id": view_id, "cleared": False})

    def open_modals(self, user_id: str) -> list[Json]:
        """The user's open modal stack, bottom first."""
        return [m.view for m in self._modals.get(user_id, [])]

    def modal_errors(self, user_id: str) -> dict[str, dict[str, str]]:
        """Field errors shown on the user's open modals, by view id."""
        return {m.view["id"]: m.errors for m in self._modals.get(user_id, []) if m.errors}

    def home(self, user_id: str) -> Json | None:
        """The App Home view last published for ``user_id``."""
        return self._homes.get(user_id)

    # -- response URLs -----------------------------------------------------------------------

    def issue_response_url(
        self,
        base_url: str,
        *,
        user_id: str,
        channel_id: str,
        message_ts: str | None = None,
        is_ephemeral: bool = False,
    ) -> ResponseUrl:
        """A response URL for an interaction of ``user_id`` in ``channel_id`` (on ``message_ts``)."""
        self.user(user_id)
        response_id = uuid.uuid4().hex
        response_url = ResponseUrl(
            id=response_id,
            url=f"{base_url}/_response_url/{response_id}",
            user_id=user_id,
            channel_id=self.resolve_channel(channel_id),
            message_ts=message_ts,
            is_ephemeral=is_ephemeral,
            created_at=self.clock(),
        )
        self._response_urls[response_id] = response_url
        return response_url

    def response_url(self, response_id: str) -> ResponseUrl:
        """The response URL record; raises expired_url (HTTP 404) for an unknown id."""
        try:
            return self._response_urls[response_id]
        except KeyError:
            raise SlackMethodError("expired_url", status=404) from None

    def respond(
        self,
        response_id: str,
        body: Mapping[str, Any],
        *,
        text: str,
        blocks: list[Json],
        via: Literal["response_url", "ack"] = "response_url",
    ) -> RecordedResponse:
        """Apply a message sent to a response URL; ``via="ack"`` does not spend one of its 5 uses."""
        target = self.response_url(response_id)
        if via == "response_url":
            if self.clock() - target.created_at > RESPONSE_URL_LIFETIME_SECONDS:
                raise SlackMethodError("expired_url", status=404)
            if target.uses >= RESPONSE_URL_MAX_USES:
                raise SlackMethodError("used_url", status=404)
        response_type: Literal["ephemeral", "in_channel"] = (
            "in_channel" if body.get("response_type") == "in_channel" else "ephemeral"
        )
        replace = _truthy(body.get("replace_original"))
        delete = _truthy(body.get("delete_original"))
        thread_ts = body.get("thread_ts") if isinstance(body.get("thread_ts"), str) else None
        outcome = self._apply_response(
            target,
            response_type=response_type,
            replace=replace,
            delete=delete,
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
            via=via,
        )
        recorded = RecordedResponse(
            received_at=self.clock(),
            via=via,
            response_type=response_type,
            replace_original=replace,
            delete_original=delete,
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
            outcome=outcome,
        )
        if via == "response_url":
            target.uses += 1
        target.responses.append(recorded)
        self._publish("response_recorded", {"id": response_id, "response": recorded.model_dump(mode="json")})
        return recorded

    def _apply_response(
        self,
        target: ResponseUrl,
        *,
        response_type: Literal["ephemeral", "in_channel"],
        replace: bool,
        delete: bool,
        text: str,
        blocks: list[Json],
        thread_ts: str | None,
        via: Literal["response_url", "ack"],
    ) -> str:
        original_ts = target.message_ts
        if (delete or replace) and original_ts is not None:
            if target.is_ephemeral:
                original = self._find_ephemeral(target.user_id, original_ts)
                if original is None:
                    return "original_not_found"
                if delete:
                    original.deleted = True
                    self._publish("ephemeral_deleted", {"user": target.user_id, "ts": original_ts})
                    return "deleted_original"
                original.history.append(
                    MessageVersion(text=original.text, blocks=original.blocks, replaced_at=self._next_ts())
                )
                original.text, original.blocks = text, blocks
                self._publish("ephemeral_updated", original.model_dump(mode="json"))
                return "replaced_original"
            if self._find_message(target.channel_id, original_ts) is None:
                return "original_not_found"
            if delete:
                self.delete_message(target.channel_id, original_ts)
                return "deleted_original"
            self.update_message(target.channel_id, original_ts, text=text, blocks=blocks)
            return "replaced_original"
        if response_type == "in_channel":
            posted = self.post_message(
                target.channel_id, text=text, blocks=blocks, thread_ts=thread_ts, via=via
            )
            return f"posted:{posted.ts}"
        shown = self.post_ephemeral(
            target.channel_id, target.user_id, text=text, blocks=blocks, thread_ts=thread_ts, via=via
        )
        return f"ephemeral:{shown.ts}"


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.lower() in ("true", "1", "yes")
    return bool(value)
