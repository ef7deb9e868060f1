"""Verifying the chain in ranges and joining them gives exactly the sequential answer."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.audit import GENESIS_HASH, AuditRecord, ChainSegment, ChainVerifier, chain_hash, join_segments

Row = tuple[dict[str, Any], str, str]


def chain(length: int) -> list[Row]:
    rows: list[Row] = []
    prev = GENESIS_HASH
    for seq in range(1, length + 1):
        body = AuditRecord(
            occurred_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seq),
            actor=f"U{seq}",
            action="request.created",
            evidence={"n": seq},
        ).body(seq)
        digest = chain_hash(prev, body)
        rows.append((body, prev, digest))
        prev = digest
    return rows


def sequential(rows: list[Row], head: tuple[int, str]) -> tuple[int, Any]:
    verifier = ChainVerifier()
    verifier.feed_all(rows)
    return verifier.count, verifier.finish(*head)


def in_ranges(rows: list[Row], head: tuple[int, str], cuts: list[int], last_seq: int) -> tuple[int, Any]:
    """Split seq 1..last_seq at `cuts` and verify each range on its own, as the processes do."""
    bounds = [1, *sorted({c for c in cuts if 1 < c <= last_seq}), last_seq + 1]
    segments: list[ChainSegment] = []
    for index, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        upper = None if index == len(bounds) - 2 else hi - 1
        verifier = ChainVerifier(first_seq=lo, prev_hash=GENESIS_HASH if index == 0 else None)
        verifier.feed_all(r for r in rows if lo <= r[0]["seq"] and (upper is None or r[0]["seq"] <= upper))
        segments.append(verifier.segment(lo))
    return join_segments(segments, *head)


def test_an_intact_chain_joins_to_the_full_count():
    rows = chain(10)
    head = (10, rows[-1][2])
    assert in_ranges(rows, head, [4, 8], 10) == sequential(rows, head) == (10, None)


def test_events_deleted_across_a_range_boundary_are_named_as_deleted():
    rows = chain(10)
    head = (10, rows[-1][2])
    kept = [r for r in rows if r[0]["seq"] not in (4, 5, 6)]
    count, problem = in_ranges(kept, head, [5], 10)
    assert (count, problem) == sequential(kept, head)
    assert problem is not None and problem.seq == 4 and "4..6 were deleted" in problem.problem


def test_a_whole_empty_middle_range_is_a_deletion_not_a_pass():
    rows = chain(12)
    head = (12, rows[-1][2])
    kept = [r for r in rows if not 5 <= r[0]["seq"] <= 8]
    assert in_ranges(kept, head, [5, 9], 12) == sequential(kept, head)
    assert in_ranges(kept, head, [5, 9], 12)[1].seq == 5


def test_a_replaced_event_at_a_range_start_breaks_the_link_between_ranges():
    rows = chain(8)
    head = (8, rows[-1][2])
    body, _, _ = rows[4]  # seq 5 rewritten by someone who recomputed its hash from a wrong link
    forged = chain_hash("f" * 64, body)
    tampered = [*rows[:4], (body, "f" * 64, forged), *rows[5:]]
    count, problem = in_ranges(tampered, head, [5], 8)
    assert (count, problem) == sequential(tampered, head)
    assert problem is not None and problem.seq == 5 and "link" in problem.problem


@settings(max_examples=300, deadline=None)
@given(
    length=st.integers(min_value=0, max_value=25),
    cuts=st.lists(st.integers(min_value=1, max_value=26), max_size=4),
    deleted=st.sets(st.integers(min_value=1, max_value=25), max_size=5),
    edited=st.sets(st.integers(min_value=1, max_value=25), max_size=2),
    cut_tail=st.integers(min_value=0, max_value=3),
)
def test_ranges_joined_always_equal_one_sequential_pass(length, cuts, deleted, edited, cut_tail):
    rows = chain(length)
    head = (length, rows[-1][2] if rows else GENESIS_HASH)
    tampered: list[Row] = []
    for body, prev, digest in rows[: max(0, length - cut_tail)]:
        if body["seq"] in deleted:
            continue
        if body["seq"] in edited:
            body = {**body, "actor": "U_MALLORY"}
        tampered.append((body, prev, digest))
    last_seq = max(length, 1)
    assert in_ranges(tampered, head, cuts, last_seq) == sequential(tampered, head)
