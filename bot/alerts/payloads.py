"""What alert buttons carry in their `value`: pydantic models, JSON on the wire."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SILENCE_HOURS", "AlertActionValue", "AlertOp"]

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
