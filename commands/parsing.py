"""Slash command text -> typed arguments, or a UsageError that says what is wrong and how to type it.

Pure and Slack-free. Grammar (command names are configurable, so usage lines take the name):

    /promote <artifact> <version> <from-env> <to-env> [reason...]
    /rotate <credential> <env> [reason...]
    /release <asset-id> <destination> [reason...]
    /onboard <template> <name> <env> [reason...]
    /ops <subcommand> [args]      (see OPS_USAGE)

`--emergency "reason"` or `--emergency=reason` may appear anywhere in promote, rotate, release,
onboard and `/ops rollback`. Words may be quoted with "double" or 'single' quotes (and the curly quotes Slack
clients send). A quote opens only at the start of a word, right after `=`, `=~` or `!~`, or right
after a closing quote, so apostrophes inside words ("can't") need no quoting. Text Slack escaped (&amp; &lt; &gt;)
is unescaped first. Empty text asks for the modal (`OpenModal`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Literal

from bot.domain.durations import format_duration, parse_duration
from bot.domain.requests import ACTION_PREFIX

__all__ = [
    "MAX_REASON",
    "OPS_USAGE",
    "CommandArgs",
    "CommandName",
    "Matcher",
    "OnboardArgs",
    "OpenModal",
    "OpsArgs",
    "OpsSub",
    "PromoteArgs",
    "ReleaseArgs",
    "RotateArgs",
    "UsageError",
    "format_text",
    "looks_like_asset_id",
    "looks_like_version",
    "normalise_request_id",
    "ops_usage_lines",
    "parse_command",
    "parse_onboard",
    "parse_ops",
    "parse_promote",
    "parse_release",
    "parse_rotate",
    "usage_for",
]

CommandName = Literal["promote", "rotate", "release", "ops", "onboard"]
MatchOp = Literal["=", "!=", "=~", "!~"]
RequestKind = Literal["promotion", "rotation", "release"]

MAX_REASON = 2000
_MAX_NAME = 200
_VERSION = re.compile(r"v?[0-9]+(\.[0-9]+){0,3}([-+][0-9A-Za-z][0-9A-Za-z.+-]*)?")
_ASSET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}")
_ENVIRONMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SOLUTION = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_ONBOARD_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_REQUEST_ID = re.compile(rf"({'|'.join(sorted(ACTION_PREFIX.values()))})-0*([0-9]{{1,9}})", re.IGNORECASE)
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(=~|!~|!=|=)(.+)", re.DOTALL)
_MATCH_OPS: Mapping[str, MatchOp] = {"=": "=", "!=": "!=", "=~": "=~", "!~": "!~"}
_EMERGENCY = "--emergency"
# Curly quotes: left/right double, low double, left/right single (iOS and macOS type these).
_SMART_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2018": "'", "\u2019": "'"})
_QUOTES = "\"'"


class UsageError(Exception):
    """The text does not fit the command; `message` names the problem, `usage` is the usage line."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage


class OpsSub(StrEnum):
    HELP = "help"
    STATUS = "status"
    PENDING = "pending"
    MINE = "mine"
    SHOW = "show"
    CANCEL = "cancel"
    AUDIT = "audit"
    ROLLBACK = "rollback"
    REVIEW = "review"
    ALERTS = "alerts"
    SILENCE = "silence"
    SILENCES = "silences"
    UNSILENCE = "unsilence"
    PUBLISH_DOCS = "publish-docs"
    READINESS = "readiness"
    SPEC_CHECK = "spec-check"
    REQUESTS = "requests"


OPS_USAGE: Mapping[OpsSub, str] = {
    OpsSub.HELP: "help [subcommand]",
    OpsSub.STATUS: "status [env]",
    OpsSub.PENDING: "pending",
    OpsSub.MINE: "mine",
    OpsSub.REQUESTS: "requests",
    OpsSub.SHOW: "show <ID>",
    OpsSub.CANCEL: "cancel <ID> [reason...]",
    OpsSub.AUDIT: "audit <ID> | audit asset <asset-id>",
    OpsSub.ROLLBACK: 'rollback <ID> [reason...] [--emergency "reason"]',
    OpsSub.REVIEW: "review <ID> [notes...]",
    OpsSub.ALERTS: "alerts [filter]",
    OpsSub.SILENCE: "silence <matcher=value>... <duration> [reason...]",
    OpsSub.SILENCES: "silences",
    OpsSub.UNSILENCE: "unsilence <silence-ID>",
    OpsSub.PUBLISH_DOCS: "publish-docs [solution]",
    OpsSub.READINESS: "readiness <page>",
    OpsSub.SPEC_CHECK: "spec-check <page>",
}

_USAGE: Mapping[str, str] = {
    "promote": '<artifact> <version> <from-env> <to-env> [reason...] [--emergency "reason"]',
    "rotate": '<credential> <env> [reason...] [--emergency "reason"]',
    "release": '<asset-id> <destination> [reason...] [--emergency "reason"]',
    "onboard": '<template> <name> <env> [reason...] [--emergency "reason"]',
}


@dataclass(frozen=True)
class OpenModal:
    """No arguments were typed: open the form for this kind of request instead."""

    kind: RequestKind


@dataclass(frozen=True)
class PromoteArgs:
    artifact: str
    version: str
    from_env: str
    to_env: str
    reason: str = ""
    emergency_reason: str | None = None


@dataclass(frozen=True)
class RotateArgs:
    credential: str
    environment: str
    reason: str = ""
    emergency_reason: str | None = None


@dataclass(frozen=True)
class ReleaseArgs:
    asset: str
    destination: str
    reason: str = ""
    emergency_reason: str | None = None


@dataclass(frozen=True)
class OnboardArgs:
    template: str
    name: str
    environment: str
    reason: str = ""
    emergency_reason: str | None = None


@dataclass(frozen=True)
class Matcher:
    """An Alertmanager-style label matcher: `label=value`, `!=`, `=~` (regex) or `!~`."""

    label: str
    op: MatchOp
    value: str

    def __str__(self) -> str:
        return f"{self.label}{self.op}{self.value}"


@dataclass(frozen=True)
class OpsArgs:
    """`/ops <sub>`; only the fields the subcommand takes are set (see OPS_USAGE)."""

    sub: OpsSub
    ref: str | None = None  # show, cancel, audit, rollback: a normalised request ID
    environment: str | None = None  # status
    filter: str | None = None  # alerts
    matchers: tuple[Matcher, ...] = ()  # silence
    duration: timedelta | None = None  # silence
    silence_id: str | None = None  # unsilence
    solution: str | None = None  # publish-docs
    page: str | None = None  # readiness, spec-check: a page id or title
    topic: str | None = None  # help
    reason: str = ""  # cancel, rollback, silence
    emergency_reason: str | None = None  # rollback
    asset: str | None = None  # audit asset: an iconik asset id, or the Canto asset released to it


CommandArgs = PromoteArgs | RotateArgs | ReleaseArgs | OnboardArgs | OpsArgs | OpenModal


# --------------------------------------------------------------------------- usage


def usage_for(name: CommandName, command: str | None = None, *, sub: OpsSub | str | None = None) -> str:
    """The one-line usage of a command as it is named in this workspace (`sub`: one /ops line)."""
    slash = command or f"/{name}"
    if name != "ops":
        return f"{slash} {_USAGE[name]}"
    if sub is not None and sub in OPS_USAGE:
        return f"{slash} {OPS_USAGE[OpsSub(sub)]}"
    return f"{slash} <subcommand> [args] (subcommands: {', '.join(s.value for s in OPS_USAGE)})"


def ops_usage_lines(command: str | None = None) -> list[str]:
    """Every /ops usage line, for a help message."""
    slash = command or "/ops"
    return [f"{slash} {line}" for line in OPS_USAGE.values()]


# --------------------------------------------------------------------------- words


@dataclass(frozen=True)
class _Word:
    text: str
    bare: str  # the part before the first quote: only a bare "--x" is an option
    quoted: bool


def _unescape_slack(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _words(text: str, usage: str) -> list[_Word]:
    """The words of the text as Slack sent it (escaped, perhaps with curly quotes)."""
    return _split(_unescape_slack(text).translate(_SMART_QUOTES), usage)


def _split(text: str, usage: str) -> list[_Word]:
    """Split like a shell without backslashes: see the module docstring for when quotes open."""
    if "'" not in text and '"' not in text:  # the common case, on every acknowledgement: no quotes
        return [_Word(word, word, False) for word in text.split()]
    return _split_quoted(text, usage)


def _split_quoted(text: str, usage: str) -> list[_Word]:
    """The general case, a character at a time; for quote-free text it equals `text.split()`."""
    words: list[_Word] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        chars: list[str] = []
        bare: str | None = None
        just_closed = False
        tail = ""  # the word's last two characters: a quote opens after =, =~ or !~
        while i < n and not text[i].isspace():
            char = text[i]
            if char in _QUOTES and (not chars or just_closed or tail[-1:] == "=" or tail in ("=~", "!~")):
                end = text.find(char, i + 1)
                if end < 0:
                    raise UsageError(
                        f"unbalanced quote: the {char} before '{_show(text[i + 1 :])}' is never closed", usage
                    )
                if bare is None:
                    bare = "".join(chars)
                chars.append(text[i + 1 : end])
                tail = (tail + text[i + 1 : end])[-2:]
                i = end + 1
                just_closed = True
                continue
            chars.append(char)
            tail = (tail + char)[-2:]
            just_closed = False
            i += 1
        joined = "".join(chars)
        words.append(_Word(joined, joined if bare is None else bare, bare is not None))
    return words


def _show(value: str, limit: int = 40) -> str:
    """User text quoted back in an error message: one line, short."""
    flat = " ".join(value.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _is_emergency(word: _Word) -> bool:
    return word.bare == _EMERGENCY or word.bare.startswith(_EMERGENCY + "=")


def _take_emergency(words: list[_Word], usage: str) -> tuple[list[_Word], str | None]:
    """Remove `--emergency <reason>` / `--emergency=<reason>` wherever it is; return its reason."""
    rest: list[_Word] = []
    reason: str | None = None
    i = 0
    while i < len(words):
        word = words[i]
        if not _is_emergency(word):
            rest.append(word)
            i += 1
            continue
        if reason is not None:
            raise UsageError("--emergency is given twice", usage)
        if word.bare == _EMERGENCY and word.text == _EMERGENCY and not word.quoted:
            following = words[i + 1] if i + 1 < len(words) else None
            if following is None or following.bare.startswith("--"):
                raise UsageError('--emergency needs a reason, e.g. --emergency "orders are failing"', usage)
            value = following.text
            i += 2
        else:
            value = word.text[len(_EMERGENCY) + 1 :]
            i += 1
        reason = value.strip()
        if not reason:
            raise UsageError('--emergency needs a reason, e.g. --emergency "orders are failing"', usage)
        _check_reason(reason, usage, what="emergency reason")
    return rest, reason


def _check_reason(reason: str, usage: str, *, what: str = "reason") -> str:
    if len(reason) > MAX_REASON:
        raise UsageError(f"the {what} is {len(reason)} characters; keep it under {MAX_REASON}", usage)
    return reason


def _reason(words: Sequence[_Word], usage: str, *, what: str = "reason") -> str:
    return _check_reason(" ".join(w.text.strip() for w in words if w.text.strip()), usage, what=what)


def _positionals(words: Sequence[_Word], names: Sequence[str], usage: str) -> list[str]:
    if len(words) < len(names):
        raise UsageError(f"missing {names[len(words)]}", usage)
    values = []
    for word, name in zip(words, names, strict=False):
        if word.bare.startswith("--"):
            raise UsageError(f"unknown option '{_show(word.text)}' (only --emergency is known)", usage)
        value = word.text.strip()
        if not value:
            raise UsageError(f"{name} must not be empty", usage)
        if len(value) > _MAX_NAME or not value.isprintable():
            raise UsageError(
                f"{name} '{_show(value)}' must be one line of at most {_MAX_NAME} characters", usage
            )
        values.append(value)
    return values


def _no_more(words: Sequence[_Word], usage: str) -> None:
    if words:
        raise UsageError(f"unexpected '{_show(words[0].text)}'", usage)


# --------------------------------------------------------------------------- values


def looks_like_version(text: str) -> bool:
    """1.4.0, 2.0, v3.1.4, 1.4.0-rc.1, 1.4.0+build.7 (at most 64 characters)."""
    return len(text) <= 64 and _VERSION.fullmatch(text) is not None


def looks_like_asset_id(text: str) -> bool:
    return _ASSET_ID.fullmatch(text) is not None


def normalise_request_id(text: str) -> str | None:
    """ "prm-012" -> "PRM-12"; None when it is not a request ID."""
    match = _REQUEST_ID.fullmatch(text.strip())
    if match is None:
        return None
    return f"{match.group(1).upper()}-{int(match.group(2))}"


def _version(value: str, usage: str) -> str:
    if not looks_like_version(value):
        raise UsageError(f"version '{_show(value)}' must look like 1.4.0", usage)
    return value


def _environment(value: str, name: str, usage: str) -> str:
    if not _ENVIRONMENT.fullmatch(value):
        raise UsageError(
            f"{name} '{_show(value)}' is not an environment name (letters, digits, '.', '_' or '-')", usage
        )
    return value


def _request_id(value: str, usage: str) -> str:
    ref = normalise_request_id(value)
    if ref is None:
        prefixes = ", ".join(sorted(ACTION_PREFIX.values()))
        raise UsageError(f"'{_show(value)}' is not a request ID (like PRM-12; kinds {prefixes})", usage)
    return ref


def _duration(value: str, usage: str) -> timedelta:
    try:
        duration = parse_duration(value)
    except (ValueError, OverflowError):
        raise UsageError(f"duration '{_show(value)}' must look like 30m, 2h or 1d", usage) from None
    if duration <= timedelta(0):
        raise UsageError("the duration must be longer than 0", usage)
    if duration > timedelta(days=90):
        raise UsageError("a silence can last at most 90d; renew it if you need longer", usage)
    return duration


def _matchers(word: _Word) -> list[Matcher] | None:
    """The matchers in one word (`a=b,c!=d` when bare), or None when it is not a matcher."""
    parts = [word.text] if word.quoted else word.text.split(",")
    found = []
    for part in parts:
        match = _MATCHER.fullmatch(part.strip())
        if match is None:
            return None
        found.append(Matcher(match.group(1), _MATCH_OPS[match.group(2)], match.group(3)))
    return found


# --------------------------------------------------------------------------- commands


def parse_promote(text: str, *, command: str = "/promote") -> PromoteArgs | OpenModal:
    usage = usage_for("promote", command)
    if not text.strip():
        return OpenModal("promotion")
    words, emergency = _take_emergency(_words(text, usage), usage)
    names = ["<artifact>", "<version>", "<from-env>", "<to-env>"]
    artifact, version, from_env, to_env = _positionals(words, names, usage)
    _version(version, usage)
    _environment(from_env, "<from-env>", usage)
    _environment(to_env, "<to-env>", usage)
    if from_env == to_env:
        raise UsageError(f"<from-env> and <to-env> are both '{_show(to_env)}'; promote between two", usage)
    return PromoteArgs(artifact, version, from_env, to_env, _reason(words[4:], usage), emergency)


def parse_rotate(text: str, *, command: str = "/rotate") -> RotateArgs | OpenModal:
    usage = usage_for("rotate", command)
    if not text.strip():
        return OpenModal("rotation")
    words, emergency = _take_emergency(_words(text, usage), usage)
    credential, environment = _positionals(words, ["<credential>", "<env>"], usage)
    _environment(environment, "<env>", usage)
    return RotateArgs(credential, environment, _reason(words[2:], usage), emergency)


def parse_release(text: str, *, command: str = "/release") -> ReleaseArgs | OpenModal:
    usage = usage_for("release", command)
    if not text.strip():
        return OpenModal("release")
    words, emergency = _take_emergency(_words(text, usage), usage)
    asset, destination = _positionals(words, ["<asset-id>", "<destination>"], usage)
    if not looks_like_asset_id(asset):
        raise UsageError(f"<asset-id> '{_show(asset)}' must be one word of letters, digits, . _ : / -", usage)
    return ReleaseArgs(asset, destination, _reason(words[2:], usage), emergency)


def parse_onboard(text: str, *, command: str = "/onboard") -> OnboardArgs:
    """There is no onboarding form: empty text is a usage error naming the first missing word."""
    usage = usage_for("onboard", command)
    words, emergency = _take_emergency(_words(text, usage), usage)
    template, name, environment = _positionals(words, ["<template>", "<name>", "<env>"], usage)
    if not _SOLUTION.fullmatch(template):
        raise UsageError(
            f"<template> '{_show(template)}' must be lower-case letters, digits, '-' or '_'", usage
        )
    if not _ONBOARD_NAME.fullmatch(name):
        hint = f"; did you mean '{name.lower()}'?" if _ONBOARD_NAME.fullmatch(name.lower()) else ""
        raise UsageError(
            f"<name> '{_show(name)}' must be lower-case letters, digits and '-' (at most 40): it becomes "
            f"part of artifact and credential names{hint}",
            usage,
        )
    _environment(environment, "<env>", usage)
    return OnboardArgs(template, name, environment, _reason(words[3:], usage), emergency)


def parse_ops(text: str, *, command: str = "/ops") -> OpsArgs:
    """`/ops` with no text means help."""
    all_usage = usage_for("ops", command)
    words, emergency = _take_emergency(_words(text, all_usage), all_usage)
    if not words:
        if emergency is not None:
            raise UsageError("missing subcommand", all_usage)
        return OpsArgs(OpsSub.HELP)
    name = words[0].text.strip().lower()
    if name not in {s.value for s in OpsSub}:
        close = difflib.get_close_matches(name, [s.value for s in OpsSub], n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise UsageError(f"unknown subcommand '{_show(name)}'{hint}", all_usage)
    sub = OpsSub(name)
    usage = usage_for("ops", command, sub=sub)
    args = words[1:]
    if emergency is not None and sub is not OpsSub.ROLLBACK:
        raise UsageError(f"--emergency only applies to rollback, not {sub.value}", usage)
    match sub:
        case OpsSub.HELP:
            _no_more(args[1:], usage)
            topic = args[0].text.strip().lower() if args else ""
            return OpsArgs(sub, topic=topic or None)
        case OpsSub.STATUS:
            _no_more(args[1:], usage)
            env = _environment(_positionals(args, ["[env]"], usage)[0], "[env]", usage) if args else None
            return OpsArgs(sub, environment=env)
        case OpsSub.PENDING | OpsSub.MINE | OpsSub.SILENCES | OpsSub.REQUESTS:
            _no_more(args, usage)
            return OpsArgs(sub)
        case OpsSub.AUDIT if args and not args[0].quoted and args[0].text.strip().lower() == "asset":
            (asset,) = _positionals(args[1:], ["<asset-id>"], usage)
            _no_more(args[2:], usage)
            if not looks_like_asset_id(asset):
                raise UsageError(
                    f"<asset-id> '{_show(asset)}' must be one word of letters, digits, . _ : / -", usage
                )
            return OpsArgs(sub, asset=asset)
        case OpsSub.SHOW | OpsSub.AUDIT:
            (ref,) = _positionals(args, ["<ID>"], usage)
            _no_more(args[1:], usage)
            return OpsArgs(sub, ref=_request_id(ref, usage))
        case OpsSub.CANCEL | OpsSub.ROLLBACK | OpsSub.REVIEW:
            (ref,) = _positionals(args, ["<ID>"], usage)
            return OpsArgs(
                sub, ref=_request_id(ref, usage), reason=_reason(args[1:], usage), emergency_reason=emergency
            )
        case OpsSub.UNSILENCE:
            (silence_id,) = _positionals(args, ["<silence-ID>"], usage)
            _no_more(args[1:], usage)
            return OpsArgs(sub, silence_id=silence_id)
        case OpsSub.ALERTS:
            return OpsArgs(sub, filter=_reason(args, usage, what="filter") or None)
        case OpsSub.PUBLISH_DOCS:
            _no_more(args[1:], usage)
            if not args:
                return OpsArgs(sub)
            solution = args[0].text.strip().lower()
            if not _SOLUTION.fullmatch(solution):
                raise UsageError(
                    f"solution '{_show(solution)}' must be lower-case letters, digits, '-' or '_'", usage
                )
            return OpsArgs(sub, solution=solution)
        case OpsSub.READINESS | OpsSub.SPEC_CHECK:
            page = _reason(args, usage, what="page")
            if not page:
                raise UsageError("missing <page>", usage)
            return OpsArgs(sub, page=page)
        case OpsSub.SILENCE:
            return _parse_silence(args, usage)


def _parse_silence(args: Sequence[_Word], usage: str) -> OpsArgs:
    matchers: list[Matcher] = []
    index = 0
    while index < len(args) and (found := _matchers(args[index])) is not None:
        matchers.extend(found)
        index += 1
    if not matchers:
        if args:
            raise UsageError(f"'{_show(args[0].text)}' is not a matcher like alertname=OpenTextDown", usage)
        raise UsageError("missing <matcher=value> (like alertname=OpenTextDown)", usage)
    if index >= len(args):
        raise UsageError("missing <duration> (like 2h)", usage)
    duration = _duration(args[index].text.strip(), usage)
    return OpsArgs(
        OpsSub.SILENCE, matchers=tuple(matchers), duration=duration, reason=_reason(args[index + 1 :], usage)
    )


def parse_command(name: str, text: str, *, command: str | None = None) -> CommandArgs:
    """Parse the text of the command known as `name` (promote, rotate, release, onboard, ops)."""
    match name:
        case "promote":
            return parse_promote(text, command=command or "/promote")
        case "rotate":
            return parse_rotate(text, command=command or "/rotate")
        case "release":
            return parse_release(text, command=command or "/release")
        case "onboard":
            return parse_onboard(text, command=command or "/onboard")
        case "ops":
            return parse_ops(text, command=command or "/ops")
    raise ValueError(f"unknown command name {name!r}")


# --------------------------------------------------------------------------- formatting


def _quote(word: str) -> str:
    """`word` written so that `_words` reads it back as exactly one word with this text."""
    # Commas are quoted too: a bare word with commas may be read as several matchers.
    if not word.startswith("-") and "," not in word and _reads_back(word):
        return word
    if not word:
        return '""'
    out: list[str] = []
    rest = word
    # Alternate quote characters: after a closing quote the next quote opens again.
    while rest:
        single, double = rest.find("'"), rest.find('"')
        single = len(rest) if single < 0 else single
        double = len(rest) if double < 0 else double
        if single >= double:
            out.append(f"'{rest[:single]}'")
            rest = rest[single:]
        else:
            out.append(f'"{rest[:double]}"')
            rest = rest[double:]
    return "".join(out)


def _reads_back(word: str) -> bool:
    try:
        words = _split(word, "")
    except UsageError:
        return False
    return len(words) == 1 and words[0].text == word and not words[0].quoted


def _escape_slack(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def format_text(args: PromoteArgs | RotateArgs | ReleaseArgs | OnboardArgs | OpsArgs) -> str:
    """The command text (after the slash name) that parses back to `args`, escaped as Slack sends it.

    Values must not contain curly quotes: the parser reads those as straight quotes.
    """
    words: list[str]
    emergency = getattr(args, "emergency_reason", None)
    reason = getattr(args, "reason", "")
    match args:
        case PromoteArgs():
            words = [args.artifact, args.version, args.from_env, args.to_env]
        case RotateArgs():
            words = [args.credential, args.environment]
        case ReleaseArgs():
            words = [args.asset, args.destination]
        case OnboardArgs():
            words = [args.template, args.name, args.environment]
        case OpsArgs():
            words = [args.sub.value, *_ops_words(args)]
    parts = [_quote(w) for w in words]
    parts += [_quote(w) for w in reason.split(" ") if w]
    if emergency is not None:
        parts += [_EMERGENCY, _quote(emergency)]
    return _escape_slack(" ".join(parts))


def _ops_words(args: OpsArgs) -> list[str]:
    values: list[str | None] = [args.topic, args.environment, args.ref, args.silence_id, args.solution]
    words = [v for v in values if v]
    if args.asset:
        words += ["asset", args.asset]
    words += [str(m) for m in args.matchers]
    if args.duration is not None:
        words.append(format_duration(args.duration))
    for free_text in (args.filter, args.page):
        if free_text:
            words.append(free_text)
    return words
