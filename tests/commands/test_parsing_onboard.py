"""`/onboard <template> <name> <env> [reason...]` parsing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commands.parsing import OnboardArgs, UsageError, format_text, parse_command, parse_onboard, usage_for

USAGE = '/onboard <template> <name> <env> [reason...] [--emergency "reason"]'


def _error(text: str, command: str | None = None) -> UsageError:
    with pytest.raises(UsageError) as caught:
        parse_command("onboard", text, command=command)
    return caught.value


def test_onboard_reads_template_name_environment_and_a_free_text_reason() -> None:
    assert parse_onboard("edi-partner globex prod  new partner,  go-live Monday") == OnboardArgs(
        "edi-partner", "globex", "prod", "new partner, go-live Monday"
    )


def test_onboard_takes_an_emergency_reason_anywhere() -> None:
    assert parse_onboard('--emergency "contract starts today" edi-partner globex prod') == OnboardArgs(
        "edi-partner", "globex", "prod", "", "contract starts today"
    )


def test_the_usage_line_names_the_command_as_configured() -> None:
    assert usage_for("onboard") == USAGE
    assert _error("", command="/og-onboard").usage == USAGE.replace("/onboard", "/og-onboard")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "missing <template>"),
        ("edi-partner", "missing <name>"),
        ("edi-partner globex", "missing <env>"),
        (
            "EDI-Partner globex prod",
            "<template> 'EDI-Partner' must be lower-case letters, digits, '-' or '_'",
        ),
        ("edi-partner Globex prod", "did you mean 'globex'?"),
        ("edi-partner globex_corp prod", "<name> 'globex_corp' must be lower-case letters, digits and '-'"),
        ("edi-partner globex pr/od", "<env> 'pr/od' is not an environment name"),
        ("edi-partner --force globex prod", "unknown option '--force'"),
        ("edi-partner globex prod --emergency", "--emergency needs a reason"),
    ],
)
def test_onboard_says_what_is_wrong_and_how_to_type_it(text: str, message: str) -> None:
    error = _error(text)
    assert message in error.message
    assert error.usage == USAGE


def test_a_name_longer_than_forty_characters_is_refused() -> None:
    assert "at most 40" in _error(f"edi-partner {'a' * 41} prod").message
    assert parse_onboard(f"edi-partner {'a' * 40} prod").name == "a" * 40


_word = st.from_regex(r"[a-z0-9][a-z0-9-]{0,8}", fullmatch=True)
_reason = st.lists(st.from_regex(r"[A-Za-z0-9,.!?']{1,8}", fullmatch=True), max_size=5).map(" ".join)


@settings(max_examples=100, deadline=None)
@given(
    args=st.builds(
        OnboardArgs,
        st.from_regex(r"[a-z0-9][a-z0-9_-]{0,10}", fullmatch=True),
        _word,
        st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,10}", fullmatch=True),
        _reason,
        st.none() | _reason.filter(bool),
    )
)
def test_formatted_onboard_arguments_parse_back_to_themselves(args: OnboardArgs) -> None:
    text = format_text(args)
    assert parse_command("onboard", text) == args, text
