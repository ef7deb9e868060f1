"""Plays Slack's side towards the bot: signed slash commands, interactions and events over HTTP.

``SlackDriver`` formats each request exactly as Slack does (form-encoded slash commands,
``payload=`` JSON for interactions, JSON ``event_callback`` envelopes), signs it with the app's
signing secret, and registers the trigger_id and response_url it hands out with the Slack
emulator, so whatever the bot does next (views.open, posting to the response URL) lands in the
emulator where tests and the demo console can see it. After the bot answers, the driver applies
the answer as Slack's client would: a command's synchronous reply is shown to the user, a
view_submission's ``response_action`` closes, updates or keeps the modal.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from bot.emulators.slack_records import ChannelMessage, dm_channel_id
from bot.web.slack_signature import sign

__all__ = ["DriverResult", "SlackDriver"]

DEFAULT_CHANNEL = "C_APPROVALS"
# Slack's deprecated verification token still travels in every payload; bots must ignore it.
VERIFICATION_TOKEN = "opsgate-verification-token"
_FORM = "application/x-www-form-urlencoded"

Json = dict[str, Any]


@dataclass(frozen=True)
class DriverResult:
    """What the bot answered to one request, plus the ids Slack handed it with the request."""

    status: int
    headers: httpx.Headers
    body: bytes
    sent: Json
    elapsed: float
    response_url_id: str | None = None
    trigger_id: str | None = None

    @property
    def text(self) -> str:
        """The answer body decoded as UTF-8."""
        return self.body.decode(errors="replace")

    def json(self) -> Any:
        """The answer body parsed as JSON; None when the body is empty."""
        return json.loads(self.body) if self.body.strip() else None


@dataclass
class _Tampering:
    signature: str | None = None
    timestamp_offset: float = 0.0
    retry_num: int | None = None
    retry_reason: str = "http_timeout"
    extra_headers: Mapping[str, str] = field(default_factory=dict)


class SlackDriver:
    """Sends signed Slack requests to the bot at ``bot_url`` on behalf of emulator users."""

    def __init__(
        self,
        bot_url: str,
        signing_secret: str,
        emulator_url: str,
        team_id: str = "T0001",
        clock: Callable[[], float] = time.time,
        *,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.bot_url = bot_url
        self.emulator_url = emulator_url.rstrip("/")
        self.team_id = team_id
        self._signing_secret = signing_secret
        self._clock = clock
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(10.0))
        self._owns_client = client is None
        self._seed: Json | None = None
        self._event_ids = itertools.count(1)

    async def aclose(self) -> None:
        """Close the HTTP client if the driver created it."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> SlackDriver:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- requests Slack sends --------------------------------------------------------------

    async def slash_command(
        self,
        user_id: str,
        command: str,
        text: str = "",
        channel_id: str = DEFAULT_CHANNEL,
        *,
        retry_num: int | None = None,
        signature: str | None = None,
        timestamp_offset: float = 0.0,
    ) -> DriverResult:
        """Invoke ``command`` (e.g. "/promote") with ``text`` as ``user_id`` in ``channel_id``."""
        seed = await self._workspace()
        response_url = await self._issue_response_url(user_id, channel_id)
        trigger_id = await self._issue_trigger(user_id)
        fields = {
            "token": VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "team_domain": seed["team_domain"],
            "channel_id": channel_id,
            "channel_name": self._channel_name(seed, channel_id),
            "user_id": user_id,
            "user_name": self._user_name(seed, user_id),
            "command": command,
            "text": text,
            "api_app_id": seed["app_id"],
            "is_enterprise_install": "false",
            "response_url": response_url["url"],
            "trigger_id": trigger_id,
        }
        result = await self._send(
            urlencode(fields).encode(),
            _FORM,
            fields,
            _Tampering(signature, timestamp_offset, retry_num),
            response_url_id=response_url["id"],
            trigger_id=trigger_id,
        )
        if result.status == 200 and result.body.strip():
            # Slack shows a command's synchronous reply to the user like a response_url message.
            reply = result.json() if _is_json(result) else {"text": result.text}
            await self._control("POST", f"/_control/responses/{response_url['id']}/ack", json=reply)
        return result

    async def block_action(
        self,
        user_id: str,
        *,
        message_ts: str,
        channel_id: str,
        action_id: str,
        value: str,
        block_id: str | None = None,
        message: Json | None = None,
        is_ephemeral: bool = False,
        signature: str | None = None,
        timestamp_offset: float = 0.0,
    ) -> DriverResult:
        """Click the element ``action_id`` (a button unless the message says otherwise) on a message.

        ``message`` defaults to the message the emulator holds at ``message_ts``; ephemeral
        messages are never included, as in Slack.
        """
        seed = await self._workspace()
        if message is None and not is_ephemeral:
            message = await self._stored_message(channel_id, message_ts)
        element, found_block_id = _find_element(message or {}, action_id)
        response_url = await self._issue_response_url(
            user_id, channel_id, message_ts=message_ts, is_ephemeral=is_ephemeral
        )
        trigger_id = await self._issue_trigger(user_id)
        payload: Json = {
            "type": "block_actions",
            "user": self._user_ref(seed, user_id),
            "api_app_id": seed["app_id"],
            "token": VERIFICATION_TOKEN,
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel_id,
                "is_ephemeral": is_ephemeral,
            },
            "trigger_id": trigger_id,
            "team": {"id": self.team_id, "domain": seed["team_domain"]},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel_id, "name": self._channel_name(seed, channel_id)},
            "state": {"values": {}},
            "response_url": response_url["url"],
            "actions": [
                self._action(element, action_id=action_id, block_id=block_id or found_block_id, value=value)
            ],
        }
        if message is not None:
            payload["message"] = message
        return await self._send_payload(
            payload,
            _Tampering(signature, timestamp_offset),
            response_url_id=response_url["id"],
            trigger_id=trigger_id,
        )

    async def home_block_action(
        self,
        user_id: str,
        *,
        action_id: str,
        value: str,
        block_id: str | None = None,
        signature: str | None = None,
        timestamp_offset: float = 0.0,
    ) -> DriverResult:
        """Click the element ``action_id`` on the App Home view the emulator shows ``user_id``."""
        seed = await self._workspace()
        home = (await self._control("GET", "/_control/home", params={"user": user_id}))["view"]
        if home is None:
            raise LookupError(f"no App Home view has been published for {user_id}")
        element, found_block_id = _find_element(home, action_id)
        trigger_id = await self._issue_trigger(user_id)
        payload: Json = {
            "type": "block_actions",
            "user": self._user_ref(seed, user_id),
            "api_app_id": seed["app_id"],
            "token": VERIFICATION_TOKEN,
            "container": {"type": "view", "view_id": home["id"]},
            "trigger_id": trigger_id,
            "team": {"id": self.team_id, "domain": seed["team_domain"]},
            "enterprise": None,
            "is_enterprise_install": False,
            "view": home,
            "actions": [
                self._action(element, action_id=action_id, block_id=block_id or found_block_id, value=value)
            ],
        }
        return await self._send_payload(
            payload, _Tampering(signature, timestamp_offset), trigger_id=trigger_id
        )

    async def view_submission(
        self,
        user_id: str,
        view: Json,
        values: Mapping[str, Mapping[str, Any]],
        *,
        signature: str | None = None,
        timestamp_offset: float = 0.0,
    ) -> DriverResult:
        """Submit the modal ``view`` (as views.open returned it) with ``values`` filled in.

        ``values`` maps block_id -> action_id -> Slack's state value object, or a plain string
        for a plain_text_input. The bot's answer is applied to the emulator's modal stack.
        """
        seed = await self._workspace()
        trigger_id = await self._issue_trigger(user_id)
        submitted = dict(view) | {"state": {"values": _state_values(values)}}
        payload: Json = {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": seed["team_domain"]},
            "user": self._user_ref(seed, user_id),
            "api_app_id": seed["app_id"],
            "token": VERIFICATION_TOKEN,
            "trigger_id": trigger_id,
            "view": submitted,
            "response_urls": [],
            "enterprise": None,
            "is_enterprise_install": False,
        }
        result = await self._send_payload(
            payload, _Tampering(signature, timestamp_offset), trigger_id=trigger_id
        )
        if result.status == 200 and "id" in view:
            ack = result.json() if _is_json(result) else None
            # A view the emulator never opened (hand-built in a test) has no stack to update.
            await self._control(
                "POST",
                f"/_control/views/{view['id']}/ack",
                json={"user_id": user_id, "body": ack},
                allow=(404,),
            )
        return result

    async def app_home_opened(
        self,
        user_id: str,
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        signature: str | None = None,
        timestamp_offset: float = 0.0,
    ) -> DriverResult:
        """Deliver the app_home_opened event for ``user_id`` (pass ``event_id`` to redeliver one)."""
        seed = await self._workspace()
        home = (await self._control("GET", "/_control/home", params={"user": user_id}))["view"]
        now = self._clock()
        event: Json = {
            "type": "app_home_opened",
            "user": user_id,
            "channel": dm_channel_id(user_id),
            "tab": "home",
            "event_ts": f"{now:.6f}",
        }
        if home is not None:
            event["view"] = home
        envelope: Json = {
            "token": VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "api_app_id": seed["app_id"],
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{int(now)}{next(self._event_ids):06d}",
            "event_time": int(now),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": seed["bot_user_id"],
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-app_home_opened-{self.team_id}-{dm_channel_id(user_id)}",
        }
        tampering = _Tampering(signature, timestamp_offset, retry_num, retry_reason)
        return await self._send(json.dumps(envelope).encode(), "application/json", envelope, tampering)

    async def send_raw(
        self,
        body: bytes,
        content_type: str = _FORM,
        *,
        signature: str | None = None,
        timestamp_offset: float = 0.0,
        headers: Mapping[str, str] | None = None,
    ) -> DriverResult:
        """Send an arbitrary signed body (for malformed-request tests); headers override Slack's."""
        tampering = _Tampering(signature, timestamp_offset, extra_headers=headers or {})
        return await self._send(body, content_type, {}, tampering)

    # -- what users see in the emulator ----------------------------------------------------

    async def messages(self, channel: str) -> list[Json]:
        """Messages of a channel or DM, ts order, as the emulator stores them."""
        result = await self._control("GET", "/_control/messages", params={"channel": channel})
        return list(result["messages"])

    async def ephemeral(self, user_id: str) -> list[Json]:
        """Ephemeral messages ``user_id`` has seen."""
        result = await self._control("GET", "/_control/ephemeral", params={"user": user_id})
        return list(result["messages"])

    async def open_views(self, user_id: str) -> list[Json]:
        """The modal stack open for ``user_id``, bottom first."""
        result = await self._control("GET", "/_control/views", params={"user": user_id})
        return list(result["views"])

    async def home(self, user_id: str) -> Json | None:
        """The App Home view ``user_id`` sees, if any was published."""
        result = await self._control("GET", "/_control/home", params={"user": user_id})
        view: Json | None = result["view"]
        return view

    async def responses(self, response_url_id: str) -> list[Json]:
        """What the bot sent to a response URL (and replied synchronously), oldest first."""
        result = await self._control("GET", "/_control/responses", params={"id": response_url_id})
        return list(result["responses"])

    # -- plumbing ----------------------------------------------------------------------------

    async def _send_payload(
        self,
        payload: Json,
        tampering: _Tampering,
        *,
        response_url_id: str | None = None,
        trigger_id: str | None = None,
    ) -> DriverResult:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self._send(
            body, _FORM, payload, tampering, response_url_id=response_url_id, trigger_id=trigger_id
        )

    async def _send(
        self,
        body: bytes,
        content_type: str,
        sent: Json,
        tampering: _Tampering,
        *,
        response_url_id: str | None = None,
        trigger_id: str | None = None,
    ) -> DriverResult:
        timestamp = int(self._clock() + tampering.timestamp_offset)
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": tampering.signature or sign(self._signing_secret, timestamp, body),
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        }
        if tampering.retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(tampering.retry_num)
            headers["X-Slack-Retry-Reason"] = tampering.retry_reason
        headers.update(tampering.extra_headers)
        started = time.perf_counter()
        response = await self._client.post(self.bot_url, content=body, headers=headers)
        return DriverResult(
            status=response.status_code,
            headers=response.headers,
            body=response.content,
            sent=sent,
            elapsed=time.perf_counter() - started,
            response_url_id=response_url_id,
            trigger_id=trigger_id,
        )

    async def _control(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        allow: tuple[int, ...] = (),
    ) -> Any:
        response = await self._client.request(method, self.emulator_url + path, params=params, json=json)
        if response.status_code in allow:
            return None
        response.raise_for_status()
        return response.json()

    async def _workspace(self) -> Json:
        if self._seed is None:
            self._seed = await self._control("GET", "/_control/seed")
        return self._seed

    async def _issue_trigger(self, user_id: str) -> str:
        issued = await self._control("POST", "/_control/triggers", json={"user_id": user_id})
        return str(issued["trigger_id"])

    async def _issue_response_url(
        self, user_id: str, channel_id: str, *, message_ts: str | None = None, is_ephemeral: bool = False
    ) -> Json:
        issued: Json = await self._control(
            "POST",
            "/_control/response_urls",
            json={
                "user_id": user_id,
                "channel_id": channel_id,
                "message_ts": message_ts,
                "is_ephemeral": is_ephemeral,
            },
        )
        return issued

    async def _stored_message(self, channel_id: str, ts: str) -> Json | None:
        for stored in await self.messages(channel_id):
            if stored["ts"] == ts:
                return ChannelMessage.model_validate(stored).to_api()
        return None

    def _action(self, element: Json | None, *, action_id: str, block_id: str | None, value: str) -> Json:
        action: Json = {
            "type": "button",
            "action_id": action_id,
            "block_id": block_id or "actions",
            "value": value,
            "action_ts": f"{self._clock():.6f}",
        }
        if element is not None:
            action["type"] = element.get("type", "button")
            if "text" in element:
                action["text"] = element["text"]
            if "style" in element:
                action["style"] = element["style"]
        if action["type"] in ("static_select", "overflow", "radio_buttons"):
            option = next(
                (o for o in (element or {}).get("options", []) if o.get("value") == value),
                {"text": {"type": "plain_text", "text": value}, "value": value},
            )
            del action["value"]
            action["selected_option"] = option
        return action

    @staticmethod
    def _user_name(seed: Json, user_id: str) -> str:
        return next((str(u["name"]) for u in seed["users"] if u["id"] == user_id), user_id.lower())

    def _user_ref(self, seed: Json, user_id: str) -> Json:
        name = self._user_name(seed, user_id)
        return {"id": user_id, "username": name, "name": name, "team_id": self.team_id}

    @staticmethod
    def _channel_name(seed: Json, channel_id: str) -> str:
        if channel_id.startswith("D"):
            return "directmessage"
        return next((str(c["name"]) for c in seed["channels"] if c["id"] == channel_id), channel_id.lower())


def _is_json(result: DriverResult) -> bool:
    content_type: str = result.headers.get("content-type", "")
    return content_type.startswith("application/json")


def _find_element(surface: Mapping[str, Any], action_id: str) -> tuple[Json | None, str | None]:
    """The interactive element with ``action_id`` in a message's or view's blocks, and its block_id."""
    for block in surface.get("blocks", []) or []:
        candidates = list(block.get("elements", [])) if block.get("type") == "actions" else []
        for key in ("accessory", "element"):
            if isinstance(block.get(key), dict):
                candidates.append(block[key])
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return element, block.get("block_id")
    return None, None


def _state_values(values: Mapping[str, Mapping[str, Any]]) -> Json:
    return {
        block_id: {
            action_id: (
                {"type": "plain_text_input", "value": value} if isinstance(value, str) else dict(value)
            )
            for action_id, value in actions.items()
        }
        for block_id, actions in values.items()
    }
