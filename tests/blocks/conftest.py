"""Change requests to render, and checks that Slack would accept what the builders produce.

Validity is checked twice: slack_sdk's `to_dict()` (lengths it knows) and the Slack emulator's
`block_violations` / `view_violations` (block counts, empty texts, option values).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.domain.policy import Action, ApproverSet, PolicyRule
from bot.domain.requests import ApprovalView, ChangeRequest, RequestStatus
from bot.emulators.slack_block_limits import block_violations, view_violations

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
HASH = "0123456789abcdef" * 4

RULE = PolicyRule(
    name="prod-promotions",
    action="promotion",
    environment="prod",
    approvers=ApproverSet(groups=("integration-leads",)),
    min_approvals=2,
)


def request_factory(**overrides: Any) -> ChangeRequest:
    fields: dict[str, Any] = {
        "id": 42,
        "human_id": "PRM-42",
        "action": Action.PROMOTION,
        "target": "orders-api",
        "environment": "prod",
        "parameters": {"artifact": "orders-api", "version": "1.4.0", "from_env": "test", "to_env": "prod"},
        "params_hash": HASH,
        "requester": "U0REQUESTER",
        "reason": "Fixes the duplicate order bug",
        "status": RequestStatus.PENDING,
        "policy": RULE,
        "emergency": False,
        "created_at": NOW - timedelta(hours=3),
        "expires_at": NOW + timedelta(hours=2),
    }
    fields.update(overrides)
    return ChangeRequest(**fields)


def approval(user: str, minutes_ago: int = 10, params_hash: str = HASH) -> ApprovalView:
    return ApprovalView(user, NOW - timedelta(minutes=minutes_ago), params_hash)


def message_dicts(blocks: Sequence[Block]) -> list[dict[str, Any]]:
    """The blocks as Slack receives them, failing the test if Slack would refuse them."""
    dicts = [block.to_dict() for block in blocks]
    assert block_violations(dicts, surface="message") == []
    return dicts


def view_dict(view: View, surface: str) -> dict[str, Any]:
    data = view.to_dict()
    assert view_violations(data, surface=surface) == []  # type: ignore[arg-type]
    return data


def texts(data: Any) -> list[str]:
    """Every "text" string inside a block structure (what people read)."""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "text" and isinstance(value, str):
                found.append(value)
            else:
                found.extend(texts(value))
    elif isinstance(data, list):
        for item in data:
            found.extend(texts(item))
    return found


def dumped(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)
