"""`/ops` answers rendered from typed results: plain asserts on the text a person reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.blocks.ops import (
    render_audit,
    render_cancelled,
    render_listing,
    render_request,
    render_rollback,
    render_status,
)
from bot.domain.audit import AuditRecord, ChainedRecord
from bot.domain.policy import Action, ApproverSet, PolicyRule
from bot.domain.requests import ApprovalView, ChangeRequest, ChangeSpec, RequestStatus
from commands.ops import AuditListing, RequestListing, RollbackPlan, StatusReport

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
RULE = PolicyRule(
    name="prod", action="promotion", environment="prod", approvers=ApproverSet(groups=("leads",))
)


def request(human_id: str = "PRM-1", **overrides: object) -> ChangeRequest:
    values: dict[str, object] = {
        "id": 1, "human_id": human_id, "action": Action.PROMOTION, "target": "orders-api", "environment": "prod",
        "parameters": {"version": "1.4.0"}, "params_hash": "h1", "requester": "U_REQ", "reason": "fix 850",
        "status": RequestStatus.PENDING, "policy": RULE, "emergency": False, "created_at": NOW - timedelta(hours=2),
        "expires_at": NOW + timedelta(hours=22),
    }  # fmt: skip
    values.update(overrides)
    return ChangeRequest(**values)  # type: ignore[arg-type]


def test_status_counts_every_status_and_lists_what_is_in_flight():
    report = StatusReport(
        "prod",
        3,
        {RequestStatus.PENDING: 2, RequestStatus.FAILED: 1},
        (request(),),
        ("promotion:orders-api@prod",),
    )
    lines = render_status(report, now=NOW).text.splitlines()
    assert lines[0] == "Status for *prod* (last 3 requests):"
    assert (
        lines[1]
        == "pending: 2, approved: 0, rejected: 0, cancelled: 0, expired: 0, executing: 0, succeeded: 0, failed: 1"
    )
    assert lines[2] == "In flight:" and "PRM-1" in lines[3] and "2h ago" in lines[3]
    assert lines[4] == "Locked targets: promotion:orders-api@prod"
    quiet = render_status(StatusReport(None, 0, {}, (), ()), now=NOW).text
    assert quiet.startswith("Status for all environments (last 0 requests):") and "In flight" not in quiet
    assert quiet.endswith("Locked targets: none")


def test_status_shows_at_most_fifteen_in_flight():
    many = tuple(request(f"PRM-{n}") for n in range(20))
    text = render_status(StatusReport(None, 20, {RequestStatus.PENDING: 20}, many, ()), now=NOW).text
    assert text.count("• ") == 15


def test_listings_have_a_title_and_say_none():
    assert render_listing(RequestListing("pending", ()), now=NOW).text == "Waiting for approval: none."
    text = render_listing(RequestListing("mine", (request(), request("PRM-2"))), now=NOW).text
    assert text.splitlines()[0] == "*Your requests*" and text.count("• ") == 2


def test_a_request_in_detail():
    shown = request(approvals=(ApprovalView("U_LEAD1", NOW, "h1"), ApprovalView("U_OLD", NOW, "stale")),
                    emergency=True, reviewed_by="U_LEAD2", failure_reason="map compile error")  # fmt: skip
    lines = render_request(shown).text.splitlines()
    assert lines[0] == "*PRM-1* promotion of `orders-api` in *prod*: *pending*"
    assert lines[1] == "Requested by <@U_REQ>: fix 850"
    assert lines[2] == "Parameters: version=1.4.0"
    assert lines[3].startswith("Policy 'prod': 1 of @leads; self-approval off; expires 2026-11-25 10:00 UTC")
    assert lines[4] == "Approvals: <@U_LEAD1>"  # an approval of older parameters no longer counts
    assert lines[5:] == ["Failure: map compile error", "Break-glass change; review done by <@U_LEAD2>"]
    assert "review due" in render_request(request(emergency=True)).text
    assert "(no reason given)" in render_request(request(reason="")).text


def test_the_audit_trail_lists_each_event_with_its_place_in_the_chain():
    created = ChainedRecord(
        1, "a" * 64, AuditRecord(NOW, "U_REQ", "request.created", after_status="pending", reason="fix")
    )
    noted = ChainedRecord(2, "b" * 64, AuditRecord(NOW, "opsgate", "request.noted"))
    lines = render_audit(AuditListing(request(), (created, noted))).text.splitlines()
    assert lines == [
        "*Audit trail of PRM-1* (2 events, hash-chained)",
        "• 2026-11-24 12:00:00 UTC <@U_REQ> request.created ∅ → pending: fix `#1 aaaaaaaaaa`",
        "• 2026-11-24 12:00:00 UTC <@opsgate> request.noted `#2 bbbbbbbbbb`",
    ]


def test_cancel_and_rollback_answers():
    assert render_cancelled(request()).text == "PRM-1 cancelled. Its target is free again."
    spec = ChangeSpec(Action.PROMOTION, "orders-api", "prod", {"version": "1.3.2"})
    opened = request("PRM-2", status=RequestStatus.PENDING)
    assert render_rollback(RollbackPlan(request(), spec), opened).text == (
        "PRM-2 opened: promote orders-api 1.3.2 back into prod (rollback of PRM-1), status pending."
    )
