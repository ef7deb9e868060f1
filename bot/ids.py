"""Every action_id, callback_id and block_id opsgate puts into Block Kit, as string enums.

Listeners match on these and builders emit them, so a renamed id breaks both sides at once.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ActionId", "AlertActionId", "AlertBlockId", "BlockId", "ViewId"]


class ActionId(StrEnum):
    """action_id of interactive elements (buttons, selects, text inputs)."""

    APPROVE = "request_approve"
    REJECT = "request_reject"
    # Slack wants action_ids unique within a block, so the two pagination buttons differ;
    # both carry a HomePage payload naming the page to show.
    HOME_PAGE = "home_page"
    HOME_PAGE_BACK = "home_page_back"

    REASON_INPUT = "reason_input"
    ARTIFACT_SELECT = "artifact_select"
    VERSION_INPUT = "version_input"
    FROM_ENV_SELECT = "from_env_select"
    TO_ENV_SELECT = "to_env_select"
    CREDENTIAL_SELECT = "credential_select"
    ENVIRONMENT_SELECT = "environment_select"
    ASSET_INPUT = "asset_input"
    DESTINATION_SELECT = "destination_select"
    EMERGENCY_REASON_INPUT = "emergency_reason_input"


class ViewId(StrEnum):
    """callback_id of modals (view_submission routes on it)."""

    REJECT_REASON = "reject_reason"
    NEW_PROMOTION = "new_promotion"
    NEW_ROTATION = "new_rotation"
    NEW_RELEASE = "new_release"


class BlockId(StrEnum):
    """block_id of modal inputs: the keys of `view.state.values`."""

    REASON = "reason"
    ARTIFACT = "artifact"
    VERSION = "version"
    FROM_ENV = "from_env"
    TO_ENV = "to_env"
    CREDENTIAL = "credential"
    ENVIRONMENT = "environment"
    ASSET = "asset"
    DESTINATION = "destination"
    EMERGENCY_REASON = "emergency_reason"


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
