"""Errors raised by the domain; every message is fit to show the person who acted.

DomainError
 ├─ PolicyDenied            no rule allows this (fail closed), or the rule forbids this person
 │    ├─ NotEligibleRequester    the requester may not request (checked again at approval time)
 │    ├─ NotAnApprover           the clicker is not among the rule's approvers
 │    ├─ SelfApprovalRefused     the requester tried to approve their own request
 │    ├─ ChangeWindowClosed      a deny window is open, or no allow window is
 │    └─ BreakGlassRefused       break-glass not allowed for this person or rule, or no reason
 ├─ TargetLocked            another request holds the target
 ├─ RequestNotFound
 ├─ InvalidTransition       already decided, expired, executing...
 │    └─ RequestExpired          raised after the expiry it reports was recorded (keeps_changes)
 └─ QuorumNotMet            start_execution without enough valid approvals

An error whose `keeps_changes` is true reports a state change it made itself: the transaction it
is raised in (bot/db/transaction.py) commits that change, then lets the error reach the caller.
Every other error rolls the transaction back.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BreakGlassRefused",
    "ChangeWindowClosed",
    "DomainError",
    "InvalidTransition",
    "NotAnApprover",
    "NotEligibleRequester",
    "PolicyDenied",
    "QuorumNotMet",
    "RequestExpired",
    "RequestNotFound",
    "SelfApprovalRefused",
    "TargetLocked",
]


class DomainError(Exception):
    """Base of every rule violation; `str(error)` is the user-facing explanation."""

    keeps_changes: ClassVar[bool] = False


class PolicyDenied(DomainError):
    pass


class NotEligibleRequester(PolicyDenied):
    pass


class NotAnApprover(PolicyDenied):
    pass


class SelfApprovalRefused(PolicyDenied):
    pass


class ChangeWindowClosed(PolicyDenied):
    pass


class BreakGlassRefused(PolicyDenied):
    pass


class TargetLocked(DomainError):
    def __init__(self, message: str, *, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


class RequestNotFound(DomainError):
    pass


class InvalidTransition(DomainError):
    pass


class RequestExpired(InvalidTransition):
    """The request was past its deadline: it is expired now, and that expiry must stand."""

    keeps_changes = True


class QuorumNotMet(DomainError):
    pass
