from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commands.parsing import (
    Matcher,
    OpenModal,
    OpsArgs,
    OpsSub,
    PromoteArgs,
    ReleaseArgs,
    RotateArgs,
    UsageError,
    format_text,
    normalise_request_id,
    ops_usage_lines,
    parse_command,
    parse_ops,
    parse_promote,
    parse_release,
    parse_rotate,
    usage_for,
)

# Curly quotes as iOS and macOS type them.
LDQ, RDQ, LSQ, RSQ = "\u201c", "\u201d", "\u2018", "\u2019"


def _error(name: str, text: str, command: str | None = None) -> UsageError:
    with pytest.raises(UsageError) as caught:
        parse_command(name, text, command=command)
    return caught.value


# ------------------------------------------------------------------ promote / rotate / release


def test_promote_reads_four_words_and_a_free_text_reason() -> None:
    assert parse_promote("orders-api 1.4.0 test prod  can't wait,  customers are waiting") == PromoteArgs(
        "orders-api", "1.4.0", "test", "prod", "can't wait, customers are waiting"
    )


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_empty_text_asks_for_the_modal(text: str) -> None:
    assert parse_promote(text) == OpenModal("promotion")
    assert parse_rotate(text) == OpenModal("rotation")
    assert parse_release(text) == OpenModal("release")


@pytest.mark.parametrize(
    "text",
    [
        'orders-api 1.4.0 test prod hotfix --emergency "orders are failing"',
        "--emergency 'orders are failing' orders-api 1.4.0 test prod hotfix",
        f"orders-api 1.4.0 --emergency={LDQ}orders are failing{RDQ} test prod hotfix",
        "orders-api 1.4.0 test prod --emergency='orders are failing' hotfix",
    ],
)
def test_emergency_reason_may_appear_anywhere_in_either_form(text: str) -> None:
    assert parse_promote(text) == PromoteArgs(
        "orders-api", "1.4.0", "test", "prod", "hotfix", emergency_reason="orders are failing"
    )


def test_double_single_and_curly_quotes_group_words() -> None:
    assert parse_promote(f'"orders api" 1.4.0 test prod {LSQ}quoted reason{RSQ}') == PromoteArgs(
        "orders api", "1.4.0", "test", "prod", "quoted reason"
    )
    assert parse_rotate(f"{LDQ}otds client{RDQ} prod it{RSQ}s due") == RotateArgs(
        "otds client", "prod", "it's due"
    )


def test_text_slack_escaped_is_read_as_typed() -> None:
    args = parse_rotate("otds-client prod R&amp;D asked &lt;today&gt;")
    assert args == RotateArgs("otds-client", "prod", "R&D asked <today>")


def test_a_quoted_emergency_word_is_just_text() -> None:
    args = parse_rotate("otds-client prod '--emergency' is not a flag here")
    assert args == RotateArgs("otds-client", "prod", "--emergency is not a flag here")


def test_release_reads_asset_destination_and_reason() -> None:
    assert parse_release("image/a1B2c3 iconik-marketing for the spring campaign") == ReleaseArgs(
        "image/a1B2c3", "iconik-marketing", "for the spring campaign"
    )


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("promote", "orders-api 1.4.0 test", "missing <to-env>"),
        ("promote", "orders-api", "missing <version>"),
        ("promote", "orders-api abc test prod", "version 'abc' must look like 1.4.0"),
        (
            "promote",
            "orders-api 1.4.0 prod prod",
            "<from-env> and <to-env> are both 'prod'; promote between two",
        ),
        (
            "promote",
            "orders-api 1.4.0 test 'pr od'",
            "<to-env> 'pr od' is not an environment name (letters, digits, '.', '_' or '-')",
        ),
        (
            "promote",
            "orders-api 1.4.0 test prod 'oops",
            "unbalanced quote: the ' before 'oops' is never closed",
        ),
        (
            "promote",
            '"orders-api 1.4.0 test prod',
            "unbalanced quote: the \" before 'orders-api 1.4.0 test prod' is never closed",
        ),
        (
            "promote",
            "--force orders-api 1.4.0 test prod",
            "unknown option '--force' (only --emergency is known)",
        ),
        (
            "promote",
            "orders-api 1.4.0 test prod --emergency",
            '--emergency needs a reason, e.g. --emergency "orders are failing"',
        ),
        (
            "promote",
            "orders-api 1.4.0 test prod --emergency=",
            '--emergency needs a reason, e.g. --emergency "orders are failing"',
        ),
        ("promote", "a 1.0 test prod --emergency x --emergency y", "--emergency is given twice"),
        ("promote", "a 1.0 test prod " + "r" * 2001, "the reason is 2001 characters; keep it under 2000"),
        ("rotate", "otds-client", "missing <env>"),
        ("release", "a1b2c3", "missing <destination>"),
        ("release", "'a b' iconik", "<asset-id> 'a b' must be one word of letters, digits, . _ : / -"),
        ("release", '"" iconik', "<asset-id> must not be empty"),
    ],
)
def test_usage_errors_name_the_problem(name: str, text: str, message: str) -> None:
    error = _error(name, text)
    assert error.message == message
    assert str(error) == message
    assert error.usage == usage_for(name)  # type: ignore[arg-type]


def test_usage_lines_use_the_configured_command_names() -> None:
    assert usage_for("promote", "/og-promote") == (
        '/og-promote <artifact> <version> <from-env> <to-env> [reason...] [--emergency "reason"]'
    )
    assert usage_for("rotate") == '/rotate <credential> <env> [reason...] [--emergency "reason"]'
    assert usage_for("release") == '/release <asset-id> <destination> [reason...] [--emergency "reason"]'
    assert usage_for("ops", "/og", sub="silence") == "/og silence <matcher=value>... <duration> [reason...]"
    assert usage_for("ops").startswith("/ops <subcommand> [args] (subcommands: help, status, pending")
    assert "\n" not in usage_for("ops")
    assert ops_usage_lines("/og")[0] == "/og help [subcommand]"
    assert len(ops_usage_lines()) == len(OpsSub)
    assert _error("promote", "x", command="/og-promote").usage.startswith("/og-promote <artifact>")


# ------------------------------------------------------------------ ops


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", OpsArgs(OpsSub.HELP)),
        ("help", OpsArgs(OpsSub.HELP)),
        ("HELP Silence", OpsArgs(OpsSub.HELP, topic="silence")),
        ("status", OpsArgs(OpsSub.STATUS)),
        ("status prod", OpsArgs(OpsSub.STATUS, environment="prod")),
        ("pending", OpsArgs(OpsSub.PENDING)),
        ("mine", OpsArgs(OpsSub.MINE)),
        ("requests", OpsArgs(OpsSub.REQUESTS)),
        ("silences", OpsArgs(OpsSub.SILENCES)),
        ("show prm-012", OpsArgs(OpsSub.SHOW, ref="PRM-12")),
        ("audit Rot-3", OpsArgs(OpsSub.AUDIT, ref="ROT-3")),
        (
            "cancel REL-9 not needed any more",
            OpsArgs(OpsSub.CANCEL, ref="REL-9", reason="not needed any more"),
        ),
        ("rollback arc-1", OpsArgs(OpsSub.ROLLBACK, ref="ARC-1")),
        (
            'rollback ONB-2 --emergency "onboarding broke billing" see INC-4',
            OpsArgs(
                OpsSub.ROLLBACK, ref="ONB-2", reason="see INC-4", emergency_reason="onboarding broke billing"
            ),
        ),
        ("alerts", OpsArgs(OpsSub.ALERTS)),
        ("alerts critical prod", OpsArgs(OpsSub.ALERTS, filter="critical prod")),
        ("unsilence SIL-7", OpsArgs(OpsSub.UNSILENCE, silence_id="SIL-7")),
        ("publish-docs", OpsArgs(OpsSub.PUBLISH_DOCS)),
        ("publish-docs Orders", OpsArgs(OpsSub.PUBLISH_DOCS, solution="orders")),
        ("readiness Orders API runbook", OpsArgs(OpsSub.READINESS, page="Orders API runbook")),
        ("spec-check 123456", OpsArgs(OpsSub.SPEC_CHECK, page="123456")),
        (
            'silence alertname=OpenTextDown,env=prod service=~"orders (api|mapping)" 1h30m planned maintenance',
            OpsArgs(
                OpsSub.SILENCE,
                matchers=(
                    Matcher("alertname", "=", "OpenTextDown"),
                    Matcher("env", "=", "prod"),
                    Matcher("service", "=~", "orders (api|mapping)"),
                ),
                duration=timedelta(hours=1, minutes=30),
                reason="planned maintenance",
            ),
        ),
        (
            "silence severity!=info 2h",
            OpsArgs(
                OpsSub.SILENCE, matchers=(Matcher("severity", "!=", "info"),), duration=timedelta(hours=2)
            ),
        ),
    ],
)
def test_ops_subcommands_parse_into_typed_arguments(text: str, expected: OpsArgs) -> None:
    assert parse_ops(text) == expected


@pytest.mark.parametrize(
    ("text", "message", "usage"),
    [
        ("pendng", "unknown subcommand 'pendng'; did you mean 'pending'?", "/ops <subcommand>"),
        ("xyzzy", "unknown subcommand 'xyzzy'", "/ops <subcommand>"),
        ("show", "missing <ID>", "/ops show <ID>"),
        ("show PRM-1 extra", "unexpected 'extra'", "/ops show <ID>"),
        (
            "show 42",
            "'42' is not a request ID (like PRM-12; kinds ARC, ONB, PRM, REL, ROT)",
            "/ops show <ID>",
        ),
        (
            "cancel XYZ-1",
            "'XYZ-1' is not a request ID (like PRM-12; kinds ARC, ONB, PRM, REL, ROT)",
            "/ops cancel",
        ),
        ("status prod extra", "unexpected 'extra'", "/ops status [env]"),
        ("pending now", "unexpected 'now'", "/ops pending"),
        (
            'status prod --emergency "x"',
            "--emergency only applies to rollback, not status",
            "/ops status [env]",
        ),
        ("--emergency x", "missing subcommand", "/ops <subcommand>"),
        ("silence", "missing <matcher=value> (like alertname=OpenTextDown)", "/ops silence"),
        ("silence 2h", "'2h' is not a matcher like alertname=OpenTextDown", "/ops silence"),
        ("silence env=prod", "missing <duration> (like 2h)", "/ops silence"),
        ("silence env=prod soon", "duration 'soon' must look like 30m, 2h or 1d", "/ops silence"),
        ("silence env=prod 0m", "the duration must be longer than 0", "/ops silence"),
        (
            "silence env=prod 91d",
            "a silence can last at most 90d; renew it if you need longer",
            "/ops silence",
        ),
        (
            "silence env=prod 99999999999999999999d",
            "duration '99999999999999999999d' must look like 30m, 2h or 1d",
            "/ops silence",
        ),
        ("readiness", "missing <page>", "/ops readiness <page>"),
        (
            "publish-docs Not_OK!",
            "solution 'not_ok!' must be lower-case letters, digits, '-' or '_'",
            "/ops publish-docs",
        ),
        ("unsilence", "missing <silence-ID>", "/ops unsilence"),
    ],
)
def test_ops_usage_errors_name_the_problem_and_the_right_usage(text: str, message: str, usage: str) -> None:
    error = _error("ops", text)
    assert error.message == message
    assert error.usage.startswith(usage)


def test_request_ids_are_normalised_or_refused() -> None:
    assert normalise_request_id(" prm-0042 ") == "PRM-42"
    assert normalise_request_id("onb-2") == "ONB-2"
    for bad in ("PRM", "PRM-", "PRM-1a", "PRX-1", "PRM-٣", "PRM-1234567890"):
        assert normalise_request_id(bad) is None, bad


def test_unknown_command_name_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown command name"):
        parse_command("deploy", "x")


# ------------------------------------------------------------------ properties

_HOSTILE = st.lists(
    st.sampled_from(
        [*"ab1.- =,~!\"'&;<>\n\t", LDQ, RDQ, LSQ, RSQ, "--emergency", "--emergency=", "&amp;", "PRM-1", "2h"]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(["promote", "rotate", "release", "ops"]),
    text=st.one_of(_HOSTILE, st.text(max_size=60)),
)
def test_any_text_either_parses_or_raises_a_usage_error(name: str, text: str) -> None:
    try:
        parse_command(name, text)
    except UsageError as error:
        assert error.message and error.usage


# Words as people type them: anything printable but spaces and curly quotes (read as straight quotes).
_CHARS = st.characters(
    blacklist_categories=("Cc", "Cf", "Cn", "Co", "Cs", "Zl", "Zp", "Zs"),
    blacklist_characters="\u201c\u201d\u201e\u2018\u2019",
)
_word = st.text(_CHARS, min_size=1, max_size=12)
_phrase = st.lists(_word, min_size=1, max_size=4).map(" ".join)
_reason = st.lists(_word, max_size=5).map(" ".join)
_emergency = st.none() | _phrase
_name = _phrase.filter(lambda w: not w.startswith("--"))
_env = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,10}", fullmatch=True)
_version = st.from_regex(r"v?[0-9]{1,3}(\.[0-9]{1,3}){0,3}(-rc\.[0-9])?", fullmatch=True)
_asset = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,20}", fullmatch=True)
_ref = st.builds(
    lambda p, n: f"{p}-{n}", st.sampled_from(["PRM", "ROT", "REL", "ARC", "ONB"]), st.integers(1, 10**6)
)
_matcher = st.builds(
    Matcher,
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
    st.sampled_from(["=", "!=", "=~", "!~"]),
    _phrase,
)

_promote = st.builds(PromoteArgs, _name, _version, _env, _env, _reason, _emergency).filter(
    lambda a: a.from_env != a.to_env
)
_rotate = st.builds(RotateArgs, _name, _env, _reason, _emergency)
_release = st.builds(ReleaseArgs, _asset, _name, _reason, _emergency)
_ops = st.one_of(
    st.builds(
        OpsArgs, st.sampled_from([OpsSub.PENDING, OpsSub.MINE, OpsSub.SILENCES, OpsSub.REQUESTS, OpsSub.HELP])
    ),
    st.builds(OpsArgs, st.just(OpsSub.STATUS), environment=st.none() | _env),
    st.builds(OpsArgs, st.sampled_from([OpsSub.SHOW, OpsSub.AUDIT]), ref=_ref),
    st.builds(OpsArgs, st.just(OpsSub.CANCEL), ref=_ref, reason=_reason),
    st.builds(OpsArgs, st.just(OpsSub.ROLLBACK), ref=_ref, reason=_reason, emergency_reason=_emergency),
    st.builds(OpsArgs, st.just(OpsSub.ALERTS), filter=st.none() | _phrase),
    st.builds(
        OpsArgs,
        st.just(OpsSub.SILENCE),
        matchers=st.lists(_matcher, min_size=1, max_size=3).map(tuple),
        duration=st.integers(1, 90 * 24 * 60).map(lambda m: timedelta(minutes=m)),
        reason=_reason,
    ),
    st.builds(OpsArgs, st.just(OpsSub.UNSILENCE), silence_id=_name),
    st.builds(
        OpsArgs,
        st.just(OpsSub.PUBLISH_DOCS),
        solution=st.none() | st.from_regex(r"[a-z0-9][a-z0-9_-]{0,8}", fullmatch=True),
    ),
    st.builds(OpsArgs, st.sampled_from([OpsSub.READINESS, OpsSub.SPEC_CHECK]), page=_phrase),
)
_NAME_OF = {PromoteArgs: "promote", RotateArgs: "rotate", ReleaseArgs: "release", OpsArgs: "ops"}


@settings(max_examples=300, deadline=None)
@given(args=st.one_of(_promote, _rotate, _release, _ops))
def test_formatted_arguments_parse_back_to_themselves(
    args: PromoteArgs | RotateArgs | ReleaseArgs | OpsArgs,
) -> None:
    text = format_text(args)
    assert parse_command(_NAME_OF[type(args)], text) == args, text


def test_formatting_quotes_what_would_otherwise_be_misread() -> None:
    args = RotateArgs('it\'s "ok"', "prod", "--emergency 'x", emergency_reason="a, b")
    text = format_text(args)
    assert text == "\"it's \"'\"ok\"' prod '--emergency' \"'x\" --emergency 'a, b'"
    assert parse_rotate(text) == args


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="'\"\u201c\u201d\u201e\u2018\u2019"), max_size=80))
def test_quote_free_fast_path_splits_exactly_like_the_general_splitter(text: str) -> None:
    from commands.parsing import _split, _split_quoted

    assert _split(text, "usage") == _split_quoted(text, "usage")
