"""State carried through Slack: button values and modal private_metadata, as pydantic models.

Write with `model_dump_json()` and read with `model_validate_json(raw)`. Every field is bounded,
so a dumped model always fits where Slack carries it (button value <= 2,000 characters,
private_metadata <= 3,000); unknown keys are ignored so an older message's buttons keep working.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.domain.requests import ChangeRequest

__all__ = [
    "SILENCE_HOURS",
    "AlertActionValue",
    "AlertOp",
    "HomePage",
    "NewRequestModalMetadata",
    "RejectModalMetadata",
    "RequestButton",
]

_REF = Field(min_length=1, max_length=32, description="the request's human id, e.g. PRM-42")
_SLACK_ID = Field(default=None, max_length=64)


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class RequestButton(_Payload):
    """Approve/Reject button value: which request, and which parameters the clicker saw."""

    ref: str = _REF
    params_hash: str = Field(min_length=1, max_length=16)

    @classmethod
    def for_request(cls, request: ChangeRequest) -> RequestButton:
        # A prefix is enough to notice that the parameters changed after the message was drawn.
        return cls(ref=request.human_id, params_hash=request.params_hash[:16])


class RejectModalMetadata(_Payload):
    """What the reject modal needs on submit; channel and ts are None when opened from App Home."""

    ref: str = _REF
    channel_id: str | None = _SLACK_ID
    message_ts: str | None = _SLACK_ID


class NewRequestModalMetadata(_Payload):
    """Which kind of request the modal opens, and the channel to answer in (None from App Home)."""

    kind: Literal["promotion", "rotation", "release"]
    channel_id: str | None = _SLACK_ID


class HomePage(_Payload):
    """The App Home page a pagination button asks for (0 is the first)."""

    page: int = Field(ge=0, le=100_000)


SILENCE_HOURS = (1, 4, 24)


class AlertOp(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"
    SILENCE = "silence"
    INCIDENT_PAGE = "incident_page"
    RETRY = "retry"


class AlertActionValue(BaseModel):
    """`AlertActionValue.model_validate_json(action["value"])` in the listener; <= 150 chars
    so it also fits an overflow option's value."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    alert_id: int = Field(ge=1)
    op: AlertOp
    hours: int | None = Field(default=None, ge=1, le=24 * 30)
