"""Errors of the alert use cases; every message is fit to show the person who acted.

DomainError (bot.domain.errors)
 └─ AlertError
      ├─ AlertNotFound             no alert with that id
      ├─ AlertClosed               the alert is already resolved
      ├─ SilenceNotFound           no silence with that id
      ├─ SilenceAlreadyEnded       unsilence of an expired or lifted silence
      ├─ InvalidMatcher            a matcher such as `env=prod` could not be read
      ├─ InvalidSilence            no matchers, a bad or too long duration
      ├─ NotRetryable              the alert has nothing to re-run, or a retry was just requested
      └─ IncidentPageUnavailable   no incident page hook configured, or it failed
"""

from __future__ import annotations

from bot.domain.errors import DomainError

__all__ = [
    "AlertClosed",
    "AlertError",
    "AlertNotFound",
    "IncidentPageUnavailable",
    "InvalidMatcher",
    "InvalidSilence",
    "NotRetryable",
    "SilenceAlreadyEnded",
    "SilenceNotFound",
]


class AlertError(DomainError):
    """Base of the alert errors; `str(error)` is the user-facing explanation."""


class AlertNotFound(AlertError):
    pass


class AlertClosed(AlertError):
    pass


class SilenceNotFound(AlertError):
    pass


class SilenceAlreadyEnded(AlertError):
    pass


class InvalidMatcher(AlertError):
    pass


class InvalidSilence(AlertError):
    pass


class NotRetryable(AlertError):
    pass


class IncidentPageUnavailable(AlertError):
    pass
