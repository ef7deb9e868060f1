from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.blocks.home import MAX_AWAITING_SHOWN, MAX_LISTED, AlertSummary, build_home
from bot.domain.requests import ChangeRequest, RequestStatus
from bot.ids import ActionId
from bot.payloads import HomePage, RequestButton

from .conftest import HASH, NOW, dumped, request_factory, texts, view_dict


def _requests(count: int, **overrides: object) -> list[ChangeRequest]:
    return [request_factory(id=i, human_id=f"PRM-{i}", **overrides) for i in range(1, count + 1)]


def _alert(i: int = 1, **overrides: object) -> AlertSummary:
    fields: dict[str, object] = {
        "id": f"ALR-{i}",
        "title": "OpenText B2B unreachable",
        "severity": "critical",
        "status": "firing",
        "count": 3,
        "last_seen": NOW - timedelta(minutes=5),
    }
    fields.update(overrides)
    return AlertSummary(**fields)  # type: ignore[arg-type]


def _home(**overrides: object) -> dict:
    arguments: dict[str, object] = {
        "viewer": "U0LEAD1",
        "awaiting": [],
        "mine": [],
        "recent": [],
        "alerts": [],
        "page": 0,
        "has_more": False,
        "now": NOW,
    }
    arguments.update(overrides)
    return view_dict(build_home(**arguments), "home")  # type: ignore[arg-type]


def _actions(view: dict) -> list[dict]:
    return [b for b in view["blocks"] if b["type"] == "actions"]


def test_requests_awaiting_the_viewer_have_the_same_buttons_as_the_approval_message() -> None:
    view = _home(awaiting=[request_factory()])

    assert view["type"] == "home"
    (actions,) = _actions(view)
    approve, reject = actions["elements"]
    assert (approve["action_id"], reject["action_id"]) == (ActionId.APPROVE, ActionId.REJECT)
    assert RequestButton.model_validate_json(approve["value"]) == RequestButton(
        ref="PRM-42", params_hash=HASH[:16]
    )
    item = next(t for t in texts(view) if "`PRM-42`" in t)
    assert item == (
        ":hourglass_flowing_sand: `PRM-42` promotion · orders-api 1.4.0 test → prod · pending · 3h ago\n"
        "> Fixes the duplicate order bug\n"
        "Requested by <@U0REQUESTER> · needs 2 more approval(s) · expires 2026-11-24 14:00 UTC"
    )
    assert "Waiting for your approval (1)" in texts(view)


def test_empty_home_says_so_in_every_section() -> None:
    view = _home()
    shown = texts(view)
    for empty in (
        "_Nothing is waiting for your approval._",
        "_You have no open requests._",
        "_No changes yet._",
        "_No open alerts._",
    ):
        assert empty in shown
    assert _actions(view) == []


def test_lists_show_requests_and_alerts_one_line_each() -> None:
    mine = [request_factory(human_id="ROT-3", status=RequestStatus.APPROVED)]
    recent = [request_factory(human_id="REL-9", status=RequestStatus.SUCCEEDED)]
    view = _home(mine=mine, recent=recent, alerts=[_alert()])
    shown = texts(view)

    assert ":thumbsup: `ROT-3` promotion · orders-api 1.4.0 test → prod · approved · 3h ago" in shown
    assert ":white_check_mark: `REL-9` promotion · orders-api 1.4.0 test → prod · succeeded · 3h ago" in shown
    assert (
        ":red_circle: *OpenText B2B unreachable* · critical · firing · 3 times · last seen 5m ago · `ALR-1`"
        in shown
    )


def test_a_thousand_of_everything_still_fits_in_one_hundred_blocks() -> None:
    many = _requests(1000)
    view = _home(
        awaiting=many,
        mine=many,
        recent=many,
        alerts=[_alert(i) for i in range(1000)],
        page=3,
        has_more=True,
    )

    assert len(view["blocks"]) <= 100
    shown = texts(view)
    assert f"_…and {1000 - MAX_AWAITING_SHOWN} more waiting for you._" in shown
    assert f"_…and {1000 - MAX_LISTED} more open requests._" in shown
    assert f"_…and {1000 - MAX_LISTED} more changes on this page._" in shown
    assert f"_…and {1000 - MAX_LISTED} more alerts._" in shown
    assert len(_actions(view)) == MAX_AWAITING_SHOWN + 1  # request buttons + pagination


def test_hostile_alert_and_request_text_is_escaped() -> None:
    view = _home(
        awaiting=[request_factory(reason="<!channel> " + "&" * 3000)],
        alerts=[_alert(title="<!here> <script>", severity="<b>", status="&", id="<@U0X>")],
    )
    rendered = dumped(texts(view))
    for raw in ("<!channel>", "<!here>", "<script>", "<b>", "<@U0X>"):
        assert raw not in rendered
    assert "&lt;!here&gt; &lt;script&gt;" in rendered


def test_first_page_with_more_offers_only_older() -> None:
    view = _home(recent=_requests(3), has_more=True)
    (pagination,) = _actions(view)
    (older,) = pagination["elements"]
    assert older["action_id"] == ActionId.HOME_PAGE
    assert older["text"]["text"] == "Older →"
    assert HomePage.model_validate_json(older["value"]) == HomePage(page=1)
    assert "Page 1" in texts(view)


def test_middle_page_offers_newer_and_older_with_distinct_action_ids() -> None:
    view = _home(recent=_requests(3), page=2, has_more=True)
    (pagination,) = _actions(view)
    newer, older = pagination["elements"]
    assert (newer["action_id"], older["action_id"]) == (ActionId.HOME_PAGE_BACK, ActionId.HOME_PAGE)
    assert HomePage.model_validate_json(newer["value"]).page == 1
    assert HomePage.model_validate_json(older["value"]).page == 3


def test_last_page_offers_only_newer_and_single_page_offers_nothing() -> None:
    (pagination,) = _actions(_home(recent=_requests(1), page=1, has_more=False))
    assert [e["action_id"] for e in pagination["elements"]] == [ActionId.HOME_PAGE_BACK]
    assert _actions(_home(recent=_requests(1), page=0, has_more=False)) == []


def test_alert_seen_in_the_future_reads_just_now() -> None:
    view = _home(alerts=[_alert(last_seen=NOW + timedelta(minutes=3), count=1)])
    assert any(t.endswith("· firing · last seen just now · `ALR-1`") for t in texts(view))


_words = st.text(alphabet=st.sampled_from("ab<>&*_~`\n é🚨"), max_size=400)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    awaiting=st.integers(0, 60),
    mine=st.integers(0, 60),
    recent=st.integers(0, 60),
    alerts=st.integers(0, 60),
    text=_words,
    page=st.integers(0, 5),
    has_more=st.booleans(),
)
def test_any_mix_of_sizes_and_text_is_a_valid_home_view(
    awaiting: int, mine: int, recent: int, alerts: int, text: str, page: int, has_more: bool
) -> None:
    requests = _requests(max(awaiting, mine, recent), reason=text, target=text or "t")
    view = _home(
        awaiting=requests[:awaiting],
        mine=requests[:mine],
        recent=requests[:recent],
        alerts=[_alert(i, title=text) for i in range(alerts)],
        page=page,
        has_more=has_more,
    )
    assert len(view["blocks"]) <= 100
