"""Records of an emulated Slack workspace: messages, responses, errors, and the change feed.

These are the shapes the emulator stores and shows on its control routes; ``ChangeFeed`` fans
each change out to every subscriber (the demo console, the SSE endpoint, tests).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "ChangeFeed",
    "ChangeSubscription",
    "ChannelMessage",
    "EphemeralMessage",
    "MessageVersion",
    "RecordedResponse",
    "ResponseUrl",
    "SlackChange",
    "SlackMethodError",
    "dm_channel_id",
]

_SUBSCRIBER_QUEUE_SIZE = 1000

Json = dict[str, Any]


class SlackMethodError(Exception):
    """A call Slack answers with ``{"ok": false, "error": error}`` (HTTP ``status``)."""

    def __init__(
        self,
        error: str,
        *,
        status: int = 200,
        messages: Sequence[str] = (),
        retry_after: int | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.messages = list(messages)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        """HTTP headers Slack sends with this error (Retry-After for rate limits)."""
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}

    def body(self) -> Json:
        """The JSON body Slack sends for this error."""
        body: Json = {"ok": False, "error": self.error}
        if self.messages:
            body["response_metadata"] = {"messages": [f"[ERROR] {m}" for m in self.messages]}
        return body


def dm_channel_id(user_id: str) -> str:
    """The id of the bot's direct-message channel with ``user_id`` (stable, ``D`` + the user part)."""
    return "D" + user_id.removeprefix("U").removeprefix("W")


class MessageVersion(BaseModel):
    """What a message said before an edit replaced it."""

    text: str
    blocks: list[Json]
    replaced_at: str


class ChannelMessage(BaseModel):
    """A message in a channel or DM as the emulator stores it."""

    channel: str
    ts: str
    user: str
    bot_id: str | None
    app_id: str | None
    team: str
    text: str
    blocks: list[Json] = Field(default_factory=list)
    thread_ts: str | None = None
    metadata: Json | None = None
    reply_count: int = 0
    edited_ts: str | None = None
    history: list[MessageVersion] = Field(default_factory=list)
    deleted: bool = False
    via: Literal["api", "response_url", "ack"] = "api"

    def to_api(self) -> Json:
        """The message object the Web API returns (chat.postMessage ``message`` etc.)."""
        message: Json = {
            "type": "message",
            "user": self.user,
            "text": self.text,
            "blocks": self.blocks,
            "ts": self.ts,
            "team": self.team,
        }
        if self.bot_id:
            message |= {"bot_id": self.bot_id, "app_id": self.app_id}
        if self.thread_ts:
            message["thread_ts"] = self.thread_ts
        if self.reply_count:
            message["reply_count"] = self.reply_count
        if self.edited_ts:
            message["edited"] = {"user": self.user, "ts": self.edited_ts}
        if self.metadata:
            message["metadata"] = self.metadata
        return message


class EphemeralMessage(BaseModel):
    """A message only ``user`` sees in ``channel``; Slack never stores it in history."""

    channel: str
    user: str
    ts: str
    text: str
    blocks: list[Json] = Field(default_factory=list)
    thread_ts: str | None = None
    history: list[MessageVersion] = Field(default_factory=list)
    deleted: bool = False
    via: Literal["api", "response_url", "ack"] = "api"


class RecordedResponse(BaseModel):
    """One message an app sent to a response URL (or as the synchronous reply to a command)."""

    received_at: float
    via: Literal["response_url", "ack"]
    response_type: Literal["ephemeral", "in_channel"]
    replace_original: bool
    delete_original: bool
    text: str
    blocks: list[Json]
    thread_ts: str | None
    outcome: str


class ResponseUrl(BaseModel):
    """A response URL Slack handed to the app with a command or an interaction."""

    id: str
    url: str
    user_id: str
    channel_id: str
    message_ts: str | None
    is_ephemeral: bool
    created_at: float
    uses: int = 0
    responses: list[RecordedResponse] = Field(default_factory=list)


class SlackChange(BaseModel):
    """One observable change to the workspace, in the order it happened."""

    seq: int
    kind: str
    data: Json


class ChangeSubscription:
    """An async iterator of SlackChange, registered from the moment it is created."""

    def __init__(self, subscribers: set[asyncio.Queue[SlackChange | None]]) -> None:
        self._subscribers = subscribers
        self._queue: asyncio.Queue[SlackChange | None] = asyncio.Queue(maxsize=_SUBSCRIBER_QUEUE_SIZE)
        subscribers.add(self._queue)

    def __aiter__(self) -> ChangeSubscription:
        return self

    async def __anext__(self) -> SlackChange:
        change = await self._queue.get()
        if change is None:
            self.close()
            raise StopAsyncIteration
        return change

    def close(self) -> None:
        """Stop receiving changes."""
        self._subscribers.discard(self._queue)

    async def __aenter__(self) -> ChangeSubscription:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _offer(queue: asyncio.Queue[SlackChange | None], item: SlackChange | None) -> None:
    # A slow console must not stall the emulator: drop its oldest change instead.
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(item)


class ChangeFeed:
    """Numbers changes and hands each one to every current subscriber."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[SlackChange | None]] = set()
        self._seq = itertools.count(1)

    def subscribe(self) -> ChangeSubscription:
        """Follow every change published from now on."""
        return ChangeSubscription(self._subscribers)

    def publish(self, kind: str, data: Json) -> SlackChange:
        """Hand a change to every subscriber; returns it."""
        change = SlackChange(seq=next(self._seq), kind=kind, data=data)
        for queue in list(self._subscribers):
            _offer(queue, change)
        return change

    def close(self) -> None:
        """End every subscription's iteration (on shutdown)."""
        for queue in list(self._subscribers):
            _offer(queue, None)
