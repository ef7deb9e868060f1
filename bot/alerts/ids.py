"""Every action_id and block_id prefix the alert messages use, as str-enums."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["AlertActionId", "AlertBlockId"]


class AlertActionId(StrEnum):
    """Interactive elements of alert messages; each element's value is an `AlertActionValue`."""

    ACKNOWLEDGE = "alert_acknowledge"
    RESOLVE = "alert_resolve"
    SILENCE = "alert_silence"  # overflow: Silence 1 h / 4 h / 24 h
    INCIDENT_PAGE = "alert_incident_page"
    OPEN_INCIDENT_PAGE = "alert_open_incident_page"  # link button; Slack still sends an action
    RETRY = "alert_retry"
    MENU = "alert_menu"  # overflow on one line of a digest or of `/ops alerts`


class AlertBlockId(StrEnum):
    """Prefixes; the alert or digest id follows after a colon (`alert:42`)."""

    ALERT = "alert"
    ALERT_ACTIONS = "alert_actions"
    DIGEST = "alert_digest"

    def of(self, ident: int) -> str:
        return f"{self.value}:{ident}"
