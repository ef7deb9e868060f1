from __future__ import annotations

from datetime import timedelta

import pytest

from bot.blocks.requests import (
    build_approval_message,
    build_decision_dm,
    build_progress_reply,
    build_request_details,
    build_request_line,
)
from bot.domain.policy import Action
from bot.domain.requests import RequestStatus
from bot.ids import ActionId
from bot.payloads import RequestButton

from .conftest import HASH, NOW, approval, dumped, message_dicts, request_factory, texts

POLICY = "2 of @integration-leads; self-approval off; expires 2026-11-24 14:00 UTC"


def _actions(blocks: list[dict]) -> list[dict]:
    return [b for b in blocks if b["type"] == "actions"]


def test_pending_promotion_shows_what_where_who_why_and_policy() -> None:
    text, blocks = build_approval_message(request_factory(), policy_text=POLICY, now=NOW)
    dicts = message_dicts(blocks)

    assert dicts[0] == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": "Promotion PRM-42: orders-api 1.4.0 test → prod",
            "emoji": True,
        },
    }
    fields = [f["text"] for f in dicts[1]["fields"]]
    assert fields[:5] == [
        "*Artifact*\norders-api",
        "*Environments*\ntest → prod",
        "*Version*\n1.4.0",
        "*Requested by*\n<@U0REQUESTER>",
        "*Reason*\nFixes the duplicate order bug",
    ]
    assert f"*Policy:* {POLICY}" in texts(dicts)
    assert "*Approvals (0 of 2)*\n_None yet._" in texts(dicts)
    assert any("Waiting for 2 more approvals" in t and "(in 2h)" in t for t in texts(dicts))
    assert (
        text
        == "Promotion PRM-42: orders-api 1.4.0 test → prod — waiting for approval (0 of 2) (requested by <@U0REQUESTER>)"
    )


def test_pending_request_has_approve_and_reject_buttons_bound_to_its_parameters() -> None:
    _, blocks = build_approval_message(request_factory(), policy_text=POLICY, now=NOW)
    (actions,) = _actions(message_dicts(blocks))

    approve, reject = actions["elements"]
    assert (approve["action_id"], approve["style"], approve["text"]["text"]) == (
        ActionId.APPROVE,
        "primary",
        "Approve",
    )
    assert (reject["action_id"], reject["style"], reject["text"]["text"]) == (
        ActionId.REJECT,
        "danger",
        "Reject",
    )
    button = RequestButton.model_validate_json(approve["value"])
    assert button == RequestButton(ref="PRM-42", params_hash=HASH[:16])
    assert reject["value"] == approve["value"]


@pytest.mark.parametrize(
    ("status", "overrides", "expected"),
    [
        (
            RequestStatus.APPROVED,
            {"decided_by": "U0LEAD2"},
            ":thumbsup: *Approved* by <@U0LEAD2>; starting shortly.",
        ),
        (
            RequestStatus.REJECTED,
            {"decided_by": "U0LEAD1", "decision_reason": "Wait for the freeze to end"},
            ":x: *Rejected* by <@U0LEAD1>: Wait for the freeze to end",
        ),
        (
            RequestStatus.CANCELLED,
            {"decided_by": "U0REQUESTER"},
            ":no_entry_sign: *Cancelled* by <@U0REQUESTER>; nothing ran.",
        ),
        (
            RequestStatus.EXPIRED,
            {"finished_at": NOW},
            ":hourglass: *Expired* at 2026-11-24 12:00 UTC without enough approvals; nothing ran.",
        ),
        (
            RequestStatus.EXECUTING,
            {"started_at": NOW - timedelta(minutes=1)},
            ":gear: *Executing* since 2026-11-24 11:59 UTC…",
        ),
        (
            RequestStatus.SUCCEEDED,
            {"finished_at": NOW, "result": {"deployed_version": "1.4.0"}},
            ":white_check_mark: *Succeeded* at 2026-11-24 12:00 UTC.\ndeployed_version: 1.4.0",
        ),
        (
            RequestStatus.FAILED,
            {"finished_at": NOW, "failure_reason": "OpenText answered 503 twice"},
            ":boom: *Failed* at 2026-11-24 12:00 UTC: OpenText answered 503 twice",
        ),
    ],
)
def test_decided_request_shows_its_outcome_and_no_buttons(
    status: RequestStatus, overrides: dict, expected: str
) -> None:
    request = request_factory(status=status, **overrides)
    text, blocks = build_approval_message(request, policy_text=POLICY, now=NOW)
    dicts = message_dicts(blocks)

    assert _actions(dicts) == []
    assert dicts[-1]["text"]["text"] == expected
    assert status.value in text


def test_only_pending_renders_buttons_for_every_status() -> None:
    for status in RequestStatus:
        _, blocks = build_approval_message(request_factory(status=status), policy_text=POLICY, now=NOW)
        assert bool(_actions(message_dicts(blocks))) is (status is RequestStatus.PENDING), status


def test_rejection_without_recorded_reason_still_reads_sensibly() -> None:
    request = request_factory(status=RequestStatus.REJECTED, decided_by="U0LEAD1")
    _, blocks = build_approval_message(request, policy_text=POLICY, now=NOW)
    assert message_dicts(blocks)[-1]["text"]["text"] == ":x: *Rejected* by <@U0LEAD1>: no reason given"


def test_hostile_text_is_escaped_everywhere_it_is_shown() -> None:
    request = request_factory(
        target="<script>alert(1)</script>",
        reason="<!channel> ship it & <https://evil.example|click>",
        parameters={"version": "1.4.0", "from_env": "<@U0EVIL>", "note": "a&b"},
        status=RequestStatus.REJECTED,
        decided_by="U0LEAD1",
        decision_reason="<!here> no",
    )
    text, blocks = build_approval_message(request, policy_text="<!everyone> & co", now=NOW)
    dicts = message_dicts(blocks)
    rendered = dumped([t for t in texts(dicts) if t is not dicts[0]["text"]["text"]]) + text

    for raw in ("<script>", "<!channel>", "<https://evil", "<!here>", "<!everyone>", "<@U0EVIL>"):
        assert raw not in rendered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered
    assert "&lt;!channel&gt; ship it &amp; &lt;https://evil.example|click&gt;" in rendered
    assert "note: a&amp;b" in rendered
    # The header is plain_text: shown literally, so it needs no escaping.
    assert dicts[0]["text"]["text"].startswith("Promotion PRM-42: <script>")


def test_very_long_inputs_are_cut_with_an_ellipsis_and_stay_valid() -> None:
    request = request_factory(
        target="t" * 5000,
        reason="&" * 5000,
        parameters={"version": "9" * 3000, "from_env": "e" * 3000, "blob": "x" * 5000},
    )
    text, blocks = build_approval_message(request, policy_text="p" * 5000, now=NOW)
    dicts = message_dicts(blocks)

    header = dicts[0]["text"]["text"]
    assert len(header) <= 150 and header.endswith("…")
    reason = next(f["text"] for f in dicts[1]["fields"] if f["text"].startswith("*Reason*"))
    assert reason.endswith("&amp;…")  # cut between entities, never inside one
    assert all(len(f["text"]) <= 2000 for f in dicts[1]["fields"])
    assert len(text) < 4000


def test_two_hundred_approvals_are_listed_until_the_limit_then_counted() -> None:
    approvals = tuple(approval(f"U0LEAD{i:03d}", minutes_ago=i) for i in range(200))
    request = request_factory(
        approvals=approvals, policy=request_factory().policy.model_copy(update={"min_approvals": 250})
    )
    _, blocks = build_approval_message(request, policy_text=POLICY, now=NOW)
    dicts = message_dicts(blocks)

    section = next(t for t in texts(dicts) if t.startswith("*Approvals (200 of 250)*"))
    assert len(section) <= 3000
    assert "• <@U0LEAD000> · 2026-11-24 12:00 UTC" in section
    assert section.splitlines()[-1].startswith("…and ") and section.splitlines()[-1].endswith(" more")
    shown = section.count("• ")
    assert section.splitlines()[-1] == f"…and {200 - shown} more"


def test_approvals_show_known_names_and_times_and_ignore_stale_ones() -> None:
    request = request_factory(
        approvals=(approval("U0LEAD1", 30), approval("U0LEAD2", 5, params_hash="f" * 64)),
    )
    _, blocks = build_approval_message(
        request, policy_text=POLICY, approver_names={"U0LEAD1": "Ana <Lead>"}, now=NOW
    )
    section = next(t for t in texts(message_dicts(blocks)) if t.startswith("*Approvals"))

    assert section == (
        "*Approvals (1 of 2)*\n• *Ana &lt;Lead&gt;* · 2026-11-24 11:30 UTC\n"
        "_1 earlier approval for different parameters no longer count._"
    )


def test_preview_shows_versions_warnings_and_a_truncated_diff_code_block() -> None:
    preview = {
        "current_version": "1.3.2",
        "requested_version": "1.4.0",
        "warnings": ["Mapping <Order> changed"],
        "diff": [f"+ line {i} ``` & <b>" for i in range(1000)],
    }
    _, blocks = build_approval_message(request_factory(preview=preview), policy_text=POLICY, now=NOW)
    section = next(t for t in texts(message_dicts(blocks)) if t.startswith("*Preview*"))

    assert "*Current version:* 1.3.2 → *requested:* 1.4.0" in section
    assert ":warning: Mapping &lt;Order&gt; changed" in section
    assert "```\n+ line 0 ''' &amp; &lt;b&gt;\n" in section
    assert section.endswith("more line(s)\n```")
    assert section.count("```") == 2
    assert len(section) <= 3000


def test_break_glass_request_carries_a_badge_reason_and_review_deadline() -> None:
    request = request_factory(
        emergency=True,
        status=RequestStatus.APPROVED,
        decided_by="U0REQUESTER",
        decision_reason="Orders are failing in prod",
        review_due_at=NOW + timedelta(hours=48),
    )
    _, blocks = build_approval_message(request, policy_text=POLICY, now=NOW)
    dicts = message_dicts(blocks)

    badge = dicts[1]["text"]["text"]
    assert badge.startswith(":rotating_light: *Break-glass change*")
    assert "*Emergency reason:* Orders are failing in prod" in badge
    assert "*Review due* by 2026-11-26 12:00 UTC." in badge
    assert dicts[-1]["text"]["text"].startswith(":thumbsup: *Approved by break-glass*")


@pytest.mark.parametrize(
    ("action", "target", "environment", "parameters", "header"),
    [
        (
            Action.ROTATION,
            "otds-client",
            "prod",
            {"credential": "otds-client"},
            "Rotation ROT-3: otds-client in prod",
        ),
        (
            Action.RELEASE,
            "a1b2c3",
            "iconik",
            {"asset": "a1b2c3", "destination": "iconik-marketing"},
            "Release REL-9: asset a1b2c3 → iconik-marketing",
        ),
        (Action.ARCHIVE, "orders-api", "prod", {}, "Archive ARC-1: orders-api in prod"),
        (Action.ONBOARDING, "acme", "test", {}, "Onboarding ONB-2: acme in test"),
    ],
)
def test_header_names_the_change_in_the_words_of_its_kind(
    action: Action, target: str, environment: str, parameters: dict, header: str
) -> None:
    ref = header.split(" ")[1].rstrip(":")
    request = request_factory(
        action=action, human_id=ref, target=target, environment=environment, parameters=parameters
    )
    _, blocks = build_approval_message(request, policy_text=POLICY, now=NOW)
    assert message_dicts(blocks)[0]["text"]["text"] == header


def test_rotation_fields_show_the_credential_and_environment_once() -> None:
    request = request_factory(
        action=Action.ROTATION,
        human_id="ROT-3",
        target="otds-client",
        parameters={"credential": "otds-client", "environment": "prod", "schedule": "quarterly"},
    )
    _, blocks = build_approval_message(request, policy_text=POLICY, now=NOW)
    fields = [f["text"] for f in message_dicts(blocks)[1]["fields"]]
    assert fields[:2] == ["*Credential*\notds-client", "*Environment*\nprod"]
    assert fields[-1] == "*Parameters*\nschedule: quarterly"


def test_request_details_add_times_and_never_buttons() -> None:
    request = request_factory(started_at=NOW, status=RequestStatus.EXECUTING)
    dicts = message_dicts(build_request_details(request, policy_text=POLICY))

    assert _actions(dicts) == []
    assert dicts[-1]["elements"][0]["text"] == (
        "Created 2026-11-24 09:00 UTC · expires 2026-11-24 14:00 UTC · started 2026-11-24 12:00 UTC · "
        "parameters `0123456789ab`"
    )
    pending = message_dicts(build_request_details(request_factory(), policy_text=POLICY))
    assert _actions(pending) == []


@pytest.mark.parametrize(
    ("event", "overrides", "actor", "line"),
    [
        (
            "approval.recorded",
            {"approvals": (approval("U0LEAD1"),)},
            "U0LEAD1",
            ":thumbsup: <@U0LEAD1> approved *PRM-42* (1 of 2).",
        ),
        (
            "request.approved",
            {"status": RequestStatus.APPROVED},
            "U0LEAD2",
            ":white_check_mark: *PRM-42* is approved (last approval by <@U0LEAD2>); it starts shortly.",
        ),
        (
            "request.rejected",
            {"status": RequestStatus.REJECTED, "decision_reason": "Not <now>"},
            "U0LEAD1",
            ":x: <@U0LEAD1> rejected *PRM-42*: Not &lt;now&gt;",
        ),
        (
            "request.expired",
            {"status": RequestStatus.EXPIRED},
            "opsgate",
            ":hourglass: *PRM-42* expired without enough approvals; nothing ran.",
        ),
        (
            "request.cancelled",
            {"status": RequestStatus.CANCELLED},
            "U0REQUESTER",
            ":no_entry_sign: *PRM-42* was cancelled by <@U0REQUESTER>; nothing ran.",
        ),
        ("execution.started", {"status": RequestStatus.EXECUTING}, "opsgate", ":gear: *PRM-42* started."),
        (
            "execution.succeeded",
            {"status": RequestStatus.SUCCEEDED},
            "opsgate",
            ":white_check_mark: *PRM-42* succeeded.",
        ),
        (
            "execution.failed",
            {"status": RequestStatus.FAILED, "failure_reason": "iconik 500"},
            "opsgate",
            ":boom: *PRM-42* failed: iconik 500",
        ),
        ("something.new", {"status": RequestStatus.EXECUTING}, None, ":gear: *PRM-42* is now executing."),
    ],
)
def test_requester_dm_says_what_happened(event: str, overrides: dict, actor: str | None, line: str) -> None:
    text, blocks = build_decision_dm(request_factory(**overrides), event=event, actor=actor)
    dicts = message_dicts(blocks)

    assert dicts[0]["text"]["text"] == line
    assert text == line
    assert dicts[1]["elements"][0]["text"] == "Promotion PRM-42: orders-api 1.4.0 test → prod"


def test_rejection_dm_with_a_5000_character_reason_stays_within_limits() -> None:
    request = request_factory(status=RequestStatus.REJECTED, decision_reason="x" * 5000)
    text, blocks = build_decision_dm(request, event="request.rejected", actor="U0LEAD1")
    dicts = message_dicts(blocks)
    assert dicts[0]["text"]["text"].endswith("x…")
    assert len(text) < 4000


@pytest.mark.parametrize(
    ("ok", "emoji", "suffix"),
    [
        (None, ":arrows_counterclockwise:", ""),
        (True, ":white_check_mark:", " — done"),
        (False, ":x:", " — failed"),
    ],
)
def test_progress_reply_marks_the_step_state(ok: bool | None, emoji: str, suffix: str) -> None:
    text, blocks = build_progress_reply(
        request_factory(), step="Deploy to prod", detail="run <42> & co", ok=ok
    )
    (section,) = message_dicts(blocks)

    assert section["text"]["text"] == f"{emoji} *Deploy to prod*\nrun &lt;42&gt; &amp; co"
    assert text == f"PRM-42: Deploy to prod{suffix}"


def test_progress_reply_with_huge_detail_is_truncated() -> None:
    _, blocks = build_progress_reply(request_factory(), step="s" * 500, detail="<" * 10_000, ok=False)
    (section,) = message_dicts(blocks)
    assert len(section["text"]["text"]) <= 3000
    assert section["text"]["text"].endswith("&lt;…")


def test_request_line_shows_id_kind_target_status_and_age() -> None:
    line = build_request_line(request_factory(), now=NOW)
    assert (
        line
        == ":hourglass_flowing_sand: `PRM-42` promotion · orders-api 1.4.0 test → prod · pending · 3h ago"
    )


def test_request_line_without_a_clock_lets_slack_render_the_date_and_flags_break_glass() -> None:
    request = request_factory(emergency=True, status=RequestStatus.SUCCEEDED, target="<b>")
    line = build_request_line(request)
    assert line.startswith(":white_check_mark: `PRM-42` :rotating_light: promotion · &lt;b&gt; 1.4.0")
    epoch = int((NOW - timedelta(hours=3)).timestamp())
    assert line.endswith(f"succeeded · <!date^{epoch}^{{date_short_pretty}} {{time}}|2026-11-24 09:00 UTC>")


def test_request_line_stays_short_for_huge_targets() -> None:
    line = build_request_line(request_factory(target="&" * 5000, parameters={"version": "1" * 5000}), now=NOW)
    assert len(line) < 500
