"""Limits several layers must agree on, named once."""

from __future__ import annotations

__all__ = ["MAX_JOB_ATTEMPTS"]

# A persisted job is tried at most this many times (about 2**attempt seconds apart, at most
# 300 s) before it is marked dead and reported.
MAX_JOB_ATTEMPTS = 8
