"""Canto's yyyyMMddHHmmssSSS dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.canto import format_canto_date, parse_canto_date


def test_full_canto_date_parses_to_utc_with_milliseconds() -> None:
    assert parse_canto_date("20250310090000123") == datetime(2025, 3, 10, 9, 0, 0, 123000, tzinfo=UTC)


def test_date_and_second_precision_prefixes_are_accepted() -> None:
    assert parse_canto_date("20250310") == datetime(2025, 3, 10, tzinfo=UTC)
    assert parse_canto_date("20250310235959") == datetime(2025, 3, 10, 23, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize("text", ["", "2025-03-10", "2025031", "20251310000000000", "yesterday"])
def test_other_text_is_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_canto_date(text)


def test_formatting_converts_to_utc() -> None:
    cet = timezone(timedelta(hours=1))
    assert format_canto_date(datetime(2025, 3, 10, 10, 0, 0, 500000, tzinfo=cet)) == "20250310090000500"


def test_formatting_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError):
        format_canto_date(datetime(2025, 3, 10))


@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)))
def test_format_then_parse_round_trips_to_the_millisecond(value: datetime) -> None:
    expected = value.replace(microsecond=value.microsecond // 1000 * 1000)
    assert parse_canto_date(format_canto_date(value)) == expected
