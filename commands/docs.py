"""Confluence documentation use cases: environment pages, readiness checks, weekly status, incidents.

    /ops publish-docs [solution]   upsert each solution's environment page (also run on a schedule)
    /ops readiness <page>          compare a release checklist page with what OpenText runs
    weekly status                  upsert the page of the ISO week, return a line for a channel
    incident page                  the alert's "Open incident page" button: create once, return the URL

Slack-free: commands return the text to show (or typed results for jobs) and raise
`PrecheckFailed` with a message the person can act on. Connectors arrive as callables
environment -> connector, so this module does not care who builds them. Pages are built by the
pure functions of `commands.docs_pages`; checklists are read by `commands.release_checklist`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, Protocol

from bot.blocks.text import escape
from bot.config.opsgate import OpsgateConfig, SolutionConfig
from bot.domain.alerts import AlertView
from bot.domain.requests import HOLDS_LOCK, ChangeRequest, Clock, RequestStatus
from commands.alerts import IncidentPageRequest
from commands.confluence_lookup import find_named_page, solution_spaces
from commands.docs_pages import (
    AlertSummary,
    DeploymentSnapshot,
    EnvironmentStatus,
    IncidentDetails,
    TimelineEntry,
    WeeklySummary,
    build_environment_page,
    build_incident_page,
    build_weekly_summary_page,
    environment_endpoints,
    environment_page_title,
    incident_page_title,
    upcoming_windows,
    weekly_page_title,
)
from commands.release_checklist import ChecklistError, ChecklistRow, normalise_version, parse_checklist
from commands.workflow import PrecheckFailed
from connectors.base import DocumentStore
from connectors.confluence import Page, PageWrite
from connectors.errors import ConnectorError
from connectors.opentext import ArtifactKind, ArtifactSummary, Deployment, Health

__all__ = [
    "DocsCommands",
    "OpenTextInventory",
    "PublishedPage",
    "ReadinessCheck",
    "ReadinessReport",
    "RequestHistory",
    "WeeklyPublication",
    "alert_summary",
    "incident_from_alert",
    "incident_from_request",
    "open_incident_page",
    "weekly_slack_text",
]

log = logging.getLogger("opsgate.docs")

# Requests opened this long before the week began may still have finished inside it.
CHANGE_LOOKBACK: Final = timedelta(days=7)
REQUEST_PAGE_SIZE: Final = 200
MAX_REPLY_LINES: Final = 40
_SEVERITY_RANK: Final = {"critical": 0, "error": 1, "warning": 2, "info": 3}


class OpenTextInventory(Protocol):
    """The read side of OpenText these pages need (OpenTextConnector satisfies it)."""

    async def health(self) -> Health: ...

    async def list_artifacts(
        self, *, solution: str | None = None, kind: ArtifactKind | str | None = None, name: str | None = None
    ) -> list[ArtifactSummary]: ...

    async def list_deployments(
        self, environment: str, *, solution: str | None = None
    ) -> list[Deployment]: ...


class RequestHistory(Protocol):
    """Change requests newest first (bot.wiring.deps.RequestHistoryReader satisfies it)."""

    async def list_requests(self, *, limit: int = ..., offset: int = ...) -> list[ChangeRequest]: ...


# ------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class PublishedPage:
    """What publishing one solution's environment page did."""

    solution: str
    outcome: Literal["created", "updated", "unchanged", "skipped", "failed"]
    title: str
    url: str | None = None
    detail: str = ""
    unavailable: tuple[str, ...] = ()  # environments whose OpenText could not be read


Drift = Literal[
    "ok", "different_version", "not_deployed", "missing", "ambiguous", "unknown_environment", "unavailable"
]


@dataclass(frozen=True)
class ReadinessCheck:
    """One checklist row compared with OpenText."""

    row: ChecklistRow
    state: Drift
    detail: str
    artifact_id: str | None = None
    deployed_version: str | None = None


@dataclass(frozen=True)
class ReadinessReport:
    """A checklist page against OpenText: each row's verdict plus the rows that could not be read."""

    page: Page
    checks: tuple[ReadinessCheck, ...]
    problems: tuple[str, ...] = ()

    @property
    def drift(self) -> tuple[ReadinessCheck, ...]:
        return tuple(check for check in self.checks if check.state != "ok")

    @property
    def ready(self) -> bool:
        return not self.drift and not self.problems


@dataclass(frozen=True)
class WeeklyPublication:
    """The weekly status as written to Confluence, and the short text for a Slack channel."""

    summary: WeeklySummary
    page: PageWrite
    text: str


# ---------------------------------------------------------------------------------- use cases


@dataclass
class DocsCommands:
    """The documentation use cases over one Confluence (where docs live) and each environment's OpenText.

    `docs_environment` names the environment whose Confluence holds the pages; by default the
    first environment in the config that configures Confluence.
    """

    config: OpsgateConfig
    confluence_for: Callable[[str], DocumentStore]
    opentext_for: Callable[[str], OpenTextInventory]
    requests: RequestHistory
    clock: Clock
    docs_environment: str | None = None

    # --- shared ----------------------------------------------------------------------------

    def _store(self) -> DocumentStore:
        environment = self.docs_environment or next(
            (name for name, env in self.config.environments.items() if env.confluence is not None), None
        )
        if environment is None:
            raise PrecheckFailed(
                "No environment configures Confluence: add environments.<env>.confluence to the config."
            )
        return self.confluence_for(environment)

    def default_space(self) -> str:
        """Where pages that belong to no solution go: the first solution's Confluence space."""
        space = next((s.confluence_space for s in self.config.solutions if s.confluence_space), None)
        if space is None:
            raise PrecheckFailed("No solution has a confluence_space: add one to the config.")
        return space

    def _opentext_environments(self) -> list[str]:
        return [name for name, env in self.config.environments.items() if env.opentext is not None]

    # --- /ops publish-docs -----------------------------------------------------------------

    async def publish_docs(self, solution: str | None = None) -> str:
        """`/ops publish-docs [solution]`: upsert the environment page(s) and say what happened."""
        published = await self.publish_environment_pages(solution)
        if not published:
            return "No solutions are configured: nothing to publish."
        lines = ["*Environment pages*"]
        for page in published:
            where = f"<{escape(page.url)}|{escape(page.title)}>" if page.url else escape(page.title)
            match page.outcome:
                case "skipped" | "failed":
                    line = f"• {page.solution}: {page.outcome}: {escape(page.detail)}"
                case _:
                    line = f"• {page.solution}: {page.outcome} {where}"
            if page.unavailable:
                line += f" (OpenText could not be read in {', '.join(page.unavailable)})"
            lines.append(line)
        return "\n".join(lines)

    async def publish_environment_pages(self, solution: str | None = None) -> list[PublishedPage]:
        """Upsert the environment page of one solution, or of every solution (the scheduled job)."""
        if solution is not None:
            chosen = [s for s in self.config.solutions if s.name == solution]
            if not chosen:
                known = ", ".join(s.name for s in self.config.solutions) or "none"
                raise PrecheckFailed(f"Unknown solution '{solution}'. Configured: {known}.")
        else:
            chosen = list(self.config.solutions)
        if not any(s.confluence_space for s in chosen):
            return [self._skipped(s) for s in chosen]
        store = self._store()
        return [await self._publish_one(store, s) if s.confluence_space else self._skipped(s) for s in chosen]

    @staticmethod
    def _skipped(solution: SolutionConfig) -> PublishedPage:
        return PublishedPage(
            solution.name,
            "skipped",
            environment_page_title(solution.name),
            detail="no confluence_space configured for this solution",
        )

    async def _publish_one(self, store: DocumentStore, solution: SolutionConfig) -> PublishedPage:
        assert solution.confluence_space is not None
        snapshots = await asyncio.gather(
            *(self._snapshot(env, solution.name) for env in self._opentext_environments())
        )
        title = environment_page_title(solution.name)
        body = build_environment_page(self.config, solution, snapshots)
        unavailable = tuple(s.environment for s in snapshots if s.problem)
        try:
            write = await store.upsert_page(
                solution.confluence_space, title, body, message="opsgate publish-docs"
            )
            if write.outcome == "created":
                await _label(store, write.page.id, ["opsgate", "environment-page"])
        except ConnectorError as exc:
            return PublishedPage(
                solution.name, "failed", title, detail=f"Confluence: {exc.detail}", unavailable=unavailable
            )
        return PublishedPage(solution.name, write.outcome, title, write.page.web_url, unavailable=unavailable)

    async def _snapshot(self, environment: str, solution: str) -> DeploymentSnapshot:
        try:
            deployments = await self.opentext_for(environment).list_deployments(
                environment, solution=solution
            )
        except ConnectorError as exc:
            return DeploymentSnapshot(environment, problem=f"unavailable ({exc.detail})")
        return DeploymentSnapshot(environment, tuple(sorted(deployments, key=lambda d: d.artifact_id)))

    # --- /ops readiness --------------------------------------------------------------------

    async def readiness(self, page: str, *, space: str | None = None) -> str:
        """`/ops readiness <page>`: where OpenText differs from the checklist on the page."""
        report = await self.check_readiness(page, space=space)
        return _readiness_text(report)

    async def check_readiness(self, page: str, *, space: str | None = None) -> ReadinessReport:
        """Read the checklist page (id, or title in `space` / the solutions' spaces) and compare."""
        found = await self._checklist_page(page.strip(), space)
        try:
            checklist = parse_checklist(found.body)
        except ChecklistError as exc:
            raise PrecheckFailed(f"'{found.title}': {exc}.") from None
        inventory = _Inventory(self)
        checks = [await inventory.check(row) for row in checklist.rows]
        return ReadinessReport(found, tuple(checks), checklist.problems)

    async def _checklist_page(self, page: str, space: str | None) -> Page:
        return await find_named_page(
            self._store(), page, spaces=[space] if space else solution_spaces(self.config)
        )

    # --- weekly status ---------------------------------------------------------------------

    async def publish_weekly_summary(
        self, alerts: Sequence[AlertSummary], *, space: str | None = None
    ) -> WeeklyPublication:
        """Upsert this ISO week's status page and return it with a short text for a channel."""
        summary = await self.weekly_summary(alerts)
        title = weekly_page_title(summary.year, summary.week)
        store = self._store()
        write = await store.upsert_page(
            space or self.default_space(),
            title,
            build_weekly_summary_page(summary),
            message=f"opsgate weekly status {summary.label}",
        )
        if write.outcome == "created":
            await _label(store, write.page.id, ["opsgate", "weekly-status"])
        return WeeklyPublication(summary, write, weekly_slack_text(summary, write.page.web_url))

    async def weekly_summary(self, alerts: Sequence[AlertSummary]) -> WeeklySummary:
        """The facts of the ISO week containing now (UTC): requests, environments, alerts, windows."""
        now = self.clock().astimezone(UTC)
        year, week, weekday = now.isocalendar()
        starts = datetime(now.year, now.month, now.day, tzinfo=UTC) - timedelta(days=weekday - 1)
        ends = starts + timedelta(days=7)
        changes = await self._changes_between(starts, ends)
        ordered_alerts = tuple(
            sorted(alerts, key=lambda a: (_SEVERITY_RANK.get(a.severity.lower(), 9), a.since or now, a.ref))
        )
        health = await asyncio.gather(*(self._health(name) for name in self.config.environments))
        environments = tuple(
            EnvironmentStatus(
                environment=name,
                production=env.production,
                opentext=state,
                changes=sum(1 for c in changes if c.environment == name),
                failed=sum(1 for c in changes if c.environment == name and c.status is RequestStatus.FAILED),
                in_flight=sum(1 for c in changes if c.environment == name and c.status in HOLDS_LOCK),
                open_alerts=sum(1 for a in ordered_alerts if a.environment == name),
            )
            for (name, env), state in zip(self.config.environments.items(), health, strict=True)
        )
        return WeeklySummary(
            year=year,
            week=week,
            starts=starts,
            ends=ends,
            environments=environments,
            changes=tuple(changes),
            alerts=ordered_alerts,
            windows=tuple(upcoming_windows(self.config.policies, now)),
        )

    async def _changes_between(self, starts: datetime, ends: datetime) -> list[ChangeRequest]:
        found: dict[int, ChangeRequest] = {}
        offset = 0
        while True:
            batch = await self.requests.list_requests(limit=REQUEST_PAGE_SIZE, offset=offset)
            for request in batch:
                finished = request.finished_at
                if starts <= request.created_at < ends or (
                    finished is not None and starts <= finished < ends
                ):
                    found[request.id] = request
            # Newest first: once a page reaches past the lookback, older pages cannot matter.
            if len(batch) < REQUEST_PAGE_SIZE or batch[-1].created_at < starts - CHANGE_LOOKBACK:
                break
            offset += REQUEST_PAGE_SIZE
        return sorted(found.values(), key=lambda r: (r.created_at, r.id))

    async def _health(self, environment: str) -> str:
        if self.config.environments[environment].opentext is None:
            return "not connected"
        try:
            health = await self.opentext_for(environment).health()
        except ConnectorError as exc:
            return f"unreachable: {exc.detail}"
        return "healthy" if health.status.lower() in ("ok", "up", "healthy", "pass") else health.status

    # --- incidents -------------------------------------------------------------------------

    async def open_incident(self, incident: IncidentDetails, *, space: str | None = None) -> str:
        """The incident page's URL, creating the page on the first call only."""
        return await open_incident_page(
            self._store(), space=space or self.default_space(), incident=incident, opened_at=self.clock()
        )

    async def incident_page_for_alert(self, request: IncidentPageRequest) -> str:
        """The alert button's hook (`commands.alerts.IncidentPageHook`): open the alert's incident page.

        The page goes to the space of the solution named by the alert's `solution` label, else
        to `default_space()`.
        """
        alert = request.alert
        solution = next((s for s in self.config.solutions if s.name == alert.labels.get("solution")), None)
        space = solution.confluence_space if solution and solution.confluence_space else None
        incident = replace(incident_from_alert(alert, self.config), opened_by=request.requested_by)
        return await self.open_incident(incident, space=space)


# ------------------------------------------------------------------------------- readiness


class _Inventory:
    """OpenText facts per environment, read once per readiness check."""

    def __init__(self, commands: DocsCommands) -> None:
        self.commands = commands
        self.environments = {name.casefold(): name for name in commands.config.environments}
        self._read: dict[str, tuple[dict[str, Deployment], list[ArtifactSummary]] | str] = {}

    async def _facts(self, environment: str) -> tuple[dict[str, Deployment], list[ArtifactSummary]] | str:
        if environment not in self._read:
            if self.commands.config.environments[environment].opentext is None:
                self._read[environment] = "OpenText is not configured for this environment"
            else:
                connector = self.commands.opentext_for(environment)
                try:
                    deployments, artifacts = await asyncio.gather(
                        connector.list_deployments(environment), connector.list_artifacts()
                    )
                except ConnectorError as exc:
                    self._read[environment] = f"OpenText could not be read: {exc.detail}"
                else:
                    self._read[environment] = ({d.artifact_id: d for d in deployments}, artifacts)
        return self._read[environment]

    async def check(self, row: ChecklistRow) -> ReadinessCheck:
        environment = self.environments.get(row.environment.casefold())
        if environment is None:
            known = ", ".join(self.commands.config.environments)
            return ReadinessCheck(row, "unknown_environment", f"unknown environment (configured: {known})")
        facts = await self._facts(environment)
        if isinstance(facts, str):
            return ReadinessCheck(row, "unavailable", facts)
        deployments, artifacts = facts
        wanted = row.artifact.casefold()
        matches = sorted(
            {a.id for a in artifacts if wanted in (a.id.casefold(), a.name.casefold())}
            | {d for d in deployments if d.casefold() == wanted}
        )
        if not matches:
            return ReadinessCheck(row, "missing", "OpenText knows no such artifact")
        if len(matches) > 1:
            return ReadinessCheck(row, "ambiguous", f"matches {', '.join(matches)}: write the artifact id")
        artifact_id = matches[0]
        deployment = deployments.get(artifact_id)
        if deployment is None:
            return ReadinessCheck(row, "not_deployed", "not deployed", artifact_id)
        if normalise_version(deployment.version) != normalise_version(row.expected_version):
            return ReadinessCheck(
                row,
                "different_version",
                f"OpenText runs {deployment.version}",
                artifact_id,
                deployment.version,
            )
        return ReadinessCheck(row, "ok", "matches", artifact_id, deployment.version)


def _readiness_text(report: ReadinessReport) -> str:
    page = report.page
    name = f"<{escape(page.web_url)}|{escape(page.title)}>" if page.web_url else f"'{escape(page.title)}'"
    total = len(report.checks)
    if not total and not report.problems:
        return f"*Readiness of {name}*: the checklist table has no rows."
    lines = []
    if report.drift:
        lines.append(f"*Readiness of {name}*: {len(report.drift)} of {total} rows differ from OpenText.")
        for check in report.drift[:MAX_REPLY_LINES]:
            row = check.row
            lines.append(
                f"• `{_code(row.artifact)}` in *{escape(row.environment)}*: expected "
                f"{escape(row.expected_version)}, {escape(check.detail)}"
            )
        if len(report.drift) > MAX_REPLY_LINES:
            lines.append(f"…and {len(report.drift) - MAX_REPLY_LINES} more.")
    else:
        lines.append(f"*Readiness of {name}*: all {total} rows match OpenText.")
    if report.problems:
        lines.append(f"{len(report.problems)} row(s) could not be read:")
        lines.extend(f"• {escape(problem)}" for problem in report.problems[:MAX_REPLY_LINES])
    return "\n".join(lines)


def _code(text: str) -> str:
    # A backtick in user text would end the code span early.
    return escape(text.replace("`", "'"))


# ------------------------------------------------------------------------------------- weekly


def weekly_slack_text(summary: WeeklySummary, url: str | None) -> str:
    """The weekly status in a few lines of mrkdwn for a channel."""
    alerts = f"{len(summary.alerts)} open alert(s)"
    if summary.critical_alerts:
        alerts += f" ({summary.critical_alerts} critical)"
    lines = [
        f"*Ops status {summary.label}*: {len(summary.changes)} change(s): "
        f"{summary.count(RequestStatus.SUCCEEDED)} succeeded, {summary.count(RequestStatus.FAILED)} failed, "
        f"{summary.in_flight} in flight; {alerts}."
    ]
    attention = [
        s.environment for s in summary.environments if s.failed or s.opentext.startswith("unreachable")
    ]
    if attention:
        lines.append(f"Needs attention: {escape(', '.join(attention))}.")
    upcoming = next((w for w in summary.windows if not w.open_now), None)
    if upcoming is not None:
        lines.append(
            f"Next change window: {escape(upcoming.label)} ({escape(upcoming.policy)}, {escape(upcoming.environment)}) "
            f"opens {upcoming.opens_at:%a %d %b %H:%M} UTC."
        )
    if url:
        lines.append(f"<{escape(url)}|Details in Confluence>")
    return "\n".join(lines)


def alert_summary(alert: AlertView) -> AlertSummary:
    """An alert as the weekly summary lists it."""
    return AlertSummary(
        ref=alert.ref,
        title=alert.title,
        severity=alert.severity.value,
        environment=alert.environment,
        status=alert.status.value,
        since=alert.first_seen,
    )


# ----------------------------------------------------------------------------------- incidents


async def open_incident_page(
    confluence: DocumentStore,
    *,
    space: str,
    incident: IncidentDetails,
    opened_at: datetime,
    parent_id: str | None = None,
) -> str:
    """The URL of the incident page for `incident.source_ref`, created on the first call only.

    A second click finds the existing page and leaves it alone: by then people may have written
    the timeline, remediation and root cause into it. When Confluence returns no web link the
    page id is returned instead.
    """
    title = incident_page_title(incident)
    existing = await confluence.find_page(space, title)
    if existing is not None:
        return existing.web_url or existing.id
    write = await confluence.upsert_page(
        space,
        title,
        build_incident_page(incident, opened_at=opened_at),
        parent_id=parent_id,
        message=f"opsgate: incident opened from {incident.source_ref}",
    )
    if write.outcome == "created":
        await _label(confluence, write.page.id, ["opsgate", "incident"])
    return write.page.web_url or write.page.id


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def incident_from_alert(alert: AlertView, config: OpsgateConfig | None = None) -> IncidentDetails:
    """Incident facts from an alert: labels `message_types`/`endpoints`/`solution` add detail.

    Without an `endpoints` label, the configured endpoints of the alert's environment whose
    service names the alert's system (e.g. system "opentext") are listed.
    """
    labels = alert.labels
    message_types = _csv(labels.get("message_types") or labels.get("message_type"))
    endpoints = _csv(labels.get("endpoints") or labels.get("endpoint"))
    systems: list[str] = [] if alert.system in ("", "-") else [alert.system]
    if config is not None:
        environment = config.environments.get(alert.environment)
        if not endpoints and environment is not None and alert.system not in ("", "-"):
            system = alert.system.casefold()
            endpoints = tuple(
                e.url
                for e in environment_endpoints(alert.environment, environment)
                if system in e.service.casefold()
            )
        solution = next((s for s in config.solutions if s.name == labels.get("solution")), None)
        if solution is not None:
            systems.extend(solution.downstream_systems)
    timeline = [
        TimelineEntry(alert.first_seen, f"First seen ({alert.source}): {alert.title or alert.dedup_key}")
    ]
    if alert.acknowledged_at is not None:
        timeline.append(
            TimelineEntry(alert.acknowledged_at, f"Acknowledged by {alert.acknowledged_by or 'someone'}")
        )
    if alert.escalated_at is not None:
        timeline.append(TimelineEntry(alert.escalated_at, f"Escalated to {alert.escalated_to or 'on-call'}"))
    if alert.occurrences > 1 and alert.last_seen != alert.first_seen:
        timeline.append(TimelineEntry(alert.last_seen, f"Last seen ({alert.occurrences} occurrences)"))
    if alert.resolved_at is not None:
        timeline.append(TimelineEntry(alert.resolved_at, f"Resolved by {alert.resolved_by or 'its source'}"))
    return IncidentDetails(
        source_ref=alert.ref,
        title=alert.title or alert.dedup_key,
        environment=alert.environment,
        summary=alert.summary,
        severity=alert.severity.value,
        failed_message_types=message_types,
        affected_endpoints=endpoints,
        affected_systems=tuple(dict.fromkeys(systems)),
        timeline=tuple(timeline),
    )


def incident_from_request(request: ChangeRequest, config: OpsgateConfig | None = None) -> IncidentDetails:
    """Incident facts from a failed change request; its environment's endpoints are listed."""
    endpoints: tuple[str, ...] = ()
    if config is not None and (environment := config.environments.get(request.environment)) is not None:
        endpoints = tuple(e.url for e in environment_endpoints(request.environment, environment))
    message_types = request.parameters.get("message_types")
    timeline = [
        TimelineEntry(
            request.created_at, f"{request.requester} requested it: {request.reason or 'no reason given'}"
        )
    ]
    timeline.extend(TimelineEntry(a.approved_at, f"{a.approver} approved") for a in request.valid_approvals)
    if request.started_at is not None:
        timeline.append(TimelineEntry(request.started_at, "opsgate started the change"))
    if request.finished_at is not None:
        timeline.append(
            TimelineEntry(
                request.finished_at,
                f"{request.status.value}: {request.failure_reason or 'no reason recorded'}",
            )
        )
    return IncidentDetails(
        source_ref=request.human_id,
        title=f"{request.action.value} of {request.target} failed",
        environment=request.environment,
        summary=request.failure_reason or "",
        failed_message_types=tuple(str(m) for m in message_types) if isinstance(message_types, list) else (),
        affected_endpoints=endpoints,
        timeline=tuple(timeline),
        opened_by=None,
    )


async def _label(store: DocumentStore, page_id: str, labels: list[str]) -> None:
    # Labels help people find the pages; a page without them is still the page, so no failure.
    try:
        await store.add_labels(page_id, labels)
    except ConnectorError as exc:
        log.warning("could not label Confluence page %s: %s", page_id, exc.detail)
