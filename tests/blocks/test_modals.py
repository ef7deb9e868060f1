from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bot.blocks.modals import (
    build_new_request_modal,
    build_options,
    build_reject_modal,
    validate_new_request_submission,
)
from bot.config.opsgate import OpsgateConfig
from bot.ids import ActionId, BlockId, ViewId
from bot.payloads import HomePage, NewRequestModalMetadata, RejectModalMetadata, RequestButton

from .conftest import request_factory, texts, view_dict

CONFIG = OpsgateConfig.model_validate(
    {
        "environments": {
            "dev": {},
            "test": {"description": "Integration test"},
            "prod": {"production": True},
        },
        "solutions": [
            {"name": "orders", "artifacts": ["orders-api", "orders-mapping"]},
            {"name": "billing", "artifacts": ["billing-api", "orders-api"]},
        ],
        "slack": {"commands": {"promote": "/og-promote"}},
    }
)


def _modal(kind: str = "promotion", *, config: OpsgateConfig = CONFIG, **overrides: Any) -> dict:
    arguments: dict[str, Any] = {
        "config": config,
        "credentials": ["otds-client", "iconik-token"],
        "destinations": ["iconik-marketing"],
        "metadata": NewRequestModalMetadata(kind=kind, channel_id="C0OPS"),  # type: ignore[arg-type]
    }
    arguments.update(overrides)
    return view_dict(build_new_request_modal(kind, **arguments), "modal")  # type: ignore[arg-type]


def _inputs(view: dict) -> dict[str, dict]:
    return {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}


def _option_values(element: dict) -> list[str]:
    return [o["value"] for o in element["options"]]


def _selected(value: str) -> dict:
    return {
        "type": "static_select",
        "selected_option": {"text": {"type": "plain_text", "text": value}, "value": value},
    }


def _typed(value: str | None) -> dict:
    return {"type": "plain_text_input", "value": value}


def _promotion_values(**overrides: dict) -> dict[str, dict[str, dict]]:
    values = {
        BlockId.ARTIFACT: {ActionId.ARTIFACT_SELECT: _selected("orders-api")},
        BlockId.VERSION: {ActionId.VERSION_INPUT: _typed(" 1.4.0 ")},
        BlockId.FROM_ENV: {ActionId.FROM_ENV_SELECT: _selected("test")},
        BlockId.TO_ENV: {ActionId.TO_ENV_SELECT: _selected("prod")},
        BlockId.REASON: {ActionId.REASON_INPUT: _typed("Fixes the duplicate order bug")},
        BlockId.EMERGENCY_REASON: {ActionId.EMERGENCY_REASON_INPUT: _typed(None)},
    }
    values.update(overrides)  # type: ignore[arg-type]
    return {str(k): {str(a): v for a, v in inner.items()} for k, inner in values.items()}


# ------------------------------------------------------------------ reject


def test_reject_modal_asks_for_a_required_reason_and_carries_its_metadata() -> None:
    metadata = RejectModalMetadata(ref="PRM-42", channel_id="C0APPROVALS", message_ts="1700000000.000100")
    view = view_dict(build_reject_modal(request_factory(), metadata), "modal")

    assert view["callback_id"] == ViewId.REJECT_REASON
    assert (view["title"]["text"], view["submit"]["text"], view["close"]["text"]) == (
        "Reject PRM-42",
        "Reject",
        "Cancel",
    )
    assert RejectModalMetadata.model_validate_json(view["private_metadata"]) == metadata
    reason = _inputs(view)[BlockId.REASON]
    assert reason.get("optional", False) is False
    assert reason["element"] == {
        "type": "plain_text_input",
        "action_id": ActionId.REASON_INPUT,
        "multiline": True,
        "min_length": 1,
        "max_length": 2000,
        "placeholder": {"type": "plain_text", "text": "What would have to change for you to approve it"},
    }
    assert view["blocks"][0]["text"]["text"].startswith("*Promotion PRM-42: orders-api 1.4.0 test → prod*")


def test_reject_modal_from_home_has_no_message_and_survives_hostile_requests() -> None:
    request = request_factory(
        human_id="PRM-123456789", reason="<!channel> " + "x" * 5000, target="<b>" * 1000
    )
    view = view_dict(build_reject_modal(request, RejectModalMetadata(ref="PRM-123456789")), "modal")

    assert len(view["title"]["text"]) <= 24
    assert "<!channel>" not in view["blocks"][0]["text"]["text"]
    assert RejectModalMetadata.model_validate_json(view["private_metadata"]).channel_id is None


# ------------------------------------------------------------------ new request


def test_promotion_modal_offers_configured_artifacts_and_environments() -> None:
    view = _modal()
    inputs = _inputs(view)

    assert view["callback_id"] == ViewId.NEW_PROMOTION
    assert (view["title"]["text"], view["submit"]["text"]) == ("New promotion", "Request approval")
    assert list(inputs) == ["artifact", "version", "from_env", "to_env", "reason", "emergency_reason"]
    artifact = inputs[BlockId.ARTIFACT]["element"]
    assert artifact["type"] == "static_select"
    assert artifact["action_id"] == ActionId.ARTIFACT_SELECT
    assert _option_values(artifact) == ["orders-api", "orders-mapping", "billing-api"]
    assert artifact["options"][0]["description"]["text"] == "solution orders"
    to_env = inputs[BlockId.TO_ENV]["element"]
    assert _option_values(to_env) == ["dev", "test", "prod"]
    assert [o.get("description", {}).get("text") for o in to_env["options"]] == [
        None,
        "Integration test",
        "production",
    ]
    assert inputs[BlockId.VERSION]["element"]["type"] == "plain_text_input"
    assert inputs[BlockId.REASON]["optional"] is True
    assert inputs[BlockId.EMERGENCY_REASON]["optional"] is True
    assert NewRequestModalMetadata.model_validate_json(view["private_metadata"]).channel_id == "C0OPS"
    assert any("/og-promote &lt;artifact&gt;" in t for t in texts(view))


def test_rotation_and_release_modals_list_credentials_and_destinations() -> None:
    rotation = _inputs(_modal("rotation"))
    assert list(rotation) == ["credential", "environment", "reason", "emergency_reason"]
    assert _option_values(rotation[BlockId.CREDENTIAL]["element"]) == ["otds-client", "iconik-token"]

    release_view = _modal("release")
    release = _inputs(release_view)
    assert release_view["callback_id"] == ViewId.NEW_RELEASE
    assert list(release) == ["asset", "destination", "reason", "emergency_reason"]
    assert release[BlockId.ASSET]["element"]["type"] == "plain_text_input"
    assert _option_values(release[BlockId.DESTINATION]["element"]) == ["iconik-marketing"]


def test_more_than_one_hundred_choices_become_an_external_select() -> None:
    credentials = [f"credential-{i}" for i in range(101)]
    element = _inputs(_modal("rotation", credentials=credentials))[BlockId.CREDENTIAL]["element"]
    assert element == {
        "type": "external_select",
        "action_id": ActionId.CREDENTIAL_SELECT,
        "min_query_length": 0,
        "placeholder": {"type": "plain_text", "text": "Choose a credential"},
    }
    exactly = _inputs(_modal("rotation", credentials=credentials[:100]))[BlockId.CREDENTIAL]["element"]
    assert exactly["type"] == "static_select" and len(exactly["options"]) == 100


def test_no_choices_becomes_a_text_input_and_unusable_choices_are_left_out() -> None:
    empty = _inputs(_modal("rotation", credentials=[]))[BlockId.CREDENTIAL]["element"]
    assert empty["type"] == "plain_text_input"

    names = ["x" * 151, "y" * 120, "ok", "ok"]
    element = _inputs(_modal("rotation", credentials=names))[BlockId.CREDENTIAL]["element"]
    assert _option_values(element) == ["y" * 120, "ok"]
    assert element["options"][0]["text"]["text"] == "y" * 74 + "…"


def test_every_modal_title_fits_twenty_four_characters() -> None:
    for kind in ("promotion", "rotation", "release"):
        view = _modal(kind)
        for key in ("title", "submit", "close"):
            assert 0 < len(view[key]["text"]) <= 24


# ------------------------------------------------------------------ submission


def test_valid_promotion_submission_yields_trimmed_fields_and_no_errors() -> None:
    fields, errors = validate_new_request_submission("promotion", _promotion_values())
    assert errors == {}
    assert fields == {
        "artifact": "orders-api",
        "version": "1.4.0",
        "from_env": "test",
        "to_env": "prod",
        "reason": "Fixes the duplicate order bug",
    }


def test_missing_inputs_are_reported_per_block() -> None:
    _, errors = validate_new_request_submission("promotion", {})
    assert errors == {
        "artifact": "Choose the artifact to promote.",
        "version": "Enter the version to promote, like 1.4.0.",
        "from_env": "Choose the environment to promote from.",
        "to_env": "Choose the environment to promote to.",
    }
    _, unselected = validate_new_request_submission(
        "rotation",
        {"credential": {"credential_select": {"type": "static_select", "selected_option": None}}},
    )
    assert set(unselected) == {"credential", "environment"}


def test_bad_version_and_same_environments_are_refused() -> None:
    values = _promotion_values(
        **{
            BlockId.VERSION: {ActionId.VERSION_INPUT: _typed("abc")},
            BlockId.TO_ENV: {ActionId.TO_ENV_SELECT: _selected("test")},
        }
    )
    _, errors = validate_new_request_submission("promotion", values)
    assert errors == {
        "version": "'abc' must look like 1.4.0.",
        "to_env": "Choose an environment other than the source.",
    }


def test_emergency_reason_is_passed_on_only_when_given() -> None:
    values = _promotion_values(
        **{BlockId.EMERGENCY_REASON: {ActionId.EMERGENCY_REASON_INPUT: _typed("Orders down")}}
    )
    fields, errors = validate_new_request_submission("promotion", values)
    assert errors == {}
    assert fields["emergency_reason"] == "Orders down"


def test_over_long_reasons_and_bad_asset_ids_are_refused() -> None:
    values = {
        "asset": {"asset_input": _typed("has spaces")},
        "destination": {"destination_select": _selected("iconik-marketing")},
        "reason": {"reason_input": _typed("r" * 2001)},
    }
    fields, errors = validate_new_request_submission("release", values)
    assert errors == {
        "asset": "One word of letters, digits, . _ : / or -.",
        "reason": "At most 2000 characters.",
    }
    assert fields["destination"] == "iconik-marketing"


def test_typed_value_from_a_text_input_fallback_is_accepted() -> None:
    values = {
        "credential": {"credential_select": _typed("otds-client")},
        "environment": {"environment_select": _selected("prod")},
    }
    fields, errors = validate_new_request_submission("rotation", values)
    assert errors == {}
    assert (fields["credential"], fields["environment"], fields["reason"]) == ("otds-client", "prod", "")


# ------------------------------------------------------------------ options


def test_options_match_case_insensitively_with_prefix_matches_first() -> None:
    choices = ["billing-api", "orders-api", "Orders-mapping", "legacy-orders"]
    assert [o.value for o in build_options("ord", choices)] == [
        "orders-api",
        "Orders-mapping",
        "legacy-orders",
    ]
    assert [o.value for o in build_options("", choices)] == choices


@pytest.mark.parametrize("limit", [0, 5, 100, 500])
def test_options_never_exceed_the_limit_or_slack_maximum(limit: int) -> None:
    choices = [f"c{i}" for i in range(1000)] + ["z" * 151]
    options = build_options("c", choices, limit=limit)
    assert len(options) == min(limit, 100)
    for option in options:
        data = option.to_dict()
        assert len(data["value"]) <= 150 and len(data["text"]["text"]) <= 75


# ------------------------------------------------------------------ payloads


def test_largest_payloads_fit_where_slack_carries_them_and_old_keys_are_ignored() -> None:
    biggest = RejectModalMetadata(ref="R" * 32, channel_id="C" * 64, message_ts="1" * 64)
    assert len(biggest.model_dump_json()) <= 3000
    assert len(RequestButton(ref="R" * 32, params_hash="f" * 16).model_dump_json()) <= 2000
    assert NewRequestModalMetadata.model_validate_json('{"kind": "release", "legacy": 1}').channel_id is None
    assert HomePage.model_validate_json('{"page": 2, "extra": "x"}') == HomePage(page=2)
    with pytest.raises(ValidationError):
        RequestButton(ref="R" * 33, params_hash="f")
    with pytest.raises(ValidationError):
        HomePage(page=-1)
