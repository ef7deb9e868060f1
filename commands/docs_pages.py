"""Pure builders of the Confluence pages opsgate maintains: environment, incident, weekly status.

Every builder takes plain values and returns a storage-format body made with
`connectors.confluence_storage`, so any text from config, OpenText, alerts or people is escaped.
Bodies carry no "generated at" time: publishing the same facts again leaves the page unchanged
instead of adding a version. Endpoints appear as `public_endpoint` renders them (no user info,
query or fragment): a URL with a token in it must not reach a wiki page.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Literal
from urllib.parse import urlsplit, urlunsplit

from bot.config.opsgate import EnvironmentConfig, OpsgateConfig, SolutionConfig
from bot.domain.policy import PolicyRule
from bot.domain.requests import HOLDS_LOCK, ChangeRequest, RequestStatus
from connectors import confluence_storage as storage
from connectors.opentext import Deployment

__all__ = [
    "MAX_TITLE_LENGTH",
    "AlertSummary",
    "CredentialOwnership",
    "DeploymentSnapshot",
    "Endpoint",
    "EnvironmentStatus",
    "IncidentDetails",
    "TimelineEntry",
    "UpcomingWindow",
    "WeeklySummary",
    "build_environment_page",
    "build_incident_page",
    "build_weekly_summary_page",
    "credential_ownership",
    "environment_endpoints",
    "environment_page_title",
    "incident_page_title",
    "public_endpoint",
    "upcoming_windows",
    "weekly_page_title",
]

# Confluence refuses longer titles.
MAX_TITLE_LENGTH: Final = 255
MAINTAINED_NOTE: Final = (
    "Maintained by opsgate: publishing again rewrites this page, so edit the config instead."
)


# ------------------------------------------------------------------------------------- shared


def public_endpoint(url: str) -> str:
    """`url` without user info, query or fragment: the part of an endpoint that is safe to publish."""
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.hostname:
        # Not a URL we understand: keep only what precedes anything that could carry a secret.
        return url.strip().split("?", 1)[0].split("#", 1)[0].rsplit("@", 1)[-1]
    host = parts.hostname
    if ":" in host:  # IPv6 literals keep their brackets
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def _utc(moment: datetime | None) -> str:
    if moment is None:
        return "unknown"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _title(text: str) -> str:
    # Line breaks and tabs make titles that nobody can type into a search box.
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_TITLE_LENGTH else flat[: MAX_TITLE_LENGTH - 1].rstrip() + "…"


def _guidance(text: str) -> storage.Fragment:
    return storage.panel("tip", text, title="To fill in")


# --------------------------------------------------------------------------- environment page


@dataclass(frozen=True)
class Endpoint:
    """One base URL an environment talks to (credentials never included)."""

    environment: str
    service: str
    url: str


def environment_endpoints(name: str, environment: EnvironmentConfig) -> list[Endpoint]:
    """The vendor base URLs configured for an environment, as `public_endpoint` renders them."""
    found: list[tuple[str, str]] = []
    if environment.opentext is not None:
        opentext = environment.opentext
        found.append(("OpenText admin API", opentext.api_base_url))
        if opentext.auth == "ot2" and opentext.token_base_url:
            found.append(("OpenText token service (OT2)", opentext.token_base_url))
        if opentext.otds is not None:
            found.append(("OpenText Directory Services (OTDS)", opentext.otds.base_url))
    if environment.confluence is not None:
        found.append(("Confluence", environment.confluence.base_url))
    if environment.canto is not None:
        found.append(("Canto", environment.canto.base_url))
    if environment.iconik is not None:
        found.append(("iconik", environment.iconik.base_url))
    return [Endpoint(name, service, public_endpoint(url)) for service, url in found]


@dataclass(frozen=True)
class CredentialOwnership:
    """Who answers for a credential and when it rotates; never the secret itself."""

    name: str
    environment: str
    credential_id: str
    owner: str
    owner_channel: str | None
    schedule: str
    store: str


def credential_ownership(config: OpsgateConfig, solution: SolutionConfig) -> list[CredentialOwnership]:
    """The configured credentials named after the solution (name or OpenText id starts with it).

    Config does not tie credentials to solutions, so the naming convention of the example config
    (`orders-edi-prod`, `orders-edi-prod-client`) is the link. Reads `config.credentials` with
    getattr so that a config without that section still documents everything else.
    """
    owned = []
    for credential in getattr(config, "credentials", None) or []:
        name = str(getattr(credential, "name", ""))
        credential_id = str(getattr(credential, "credential_id", "") or "")
        if not any(_named_after(value, solution.name) for value in (name, credential_id)):
            continue
        schedule = getattr(credential, "schedule", None)
        describe = getattr(schedule, "describe", None)
        owned.append(
            CredentialOwnership(
                name=name,
                environment=str(getattr(credential, "environment", "")),
                credential_id=credential_id,
                owner=str(getattr(credential, "owner", "")),
                owner_channel=getattr(credential, "owner_channel", None),
                schedule=str(describe()) if callable(describe) else str(schedule or "not scheduled"),
                store=str(getattr(credential, "store", "")),
            )
        )
    return sorted(owned, key=lambda c: (c.environment, c.name))


def _named_after(value: str, solution: str) -> bool:
    return value == solution or value.startswith((f"{solution}-", f"{solution}_", f"{solution}."))


@dataclass(frozen=True)
class DeploymentSnapshot:
    """What OpenText said is deployed in one environment, or why it could not say (`problem`)."""

    environment: str
    deployments: tuple[Deployment, ...] = ()
    problem: str | None = None


def environment_page_title(solution: str) -> str:
    """The title of a solution's environment page (one page per solution and space)."""
    return _title(f"{solution}: environments and deployments")


def build_environment_page(
    config: OpsgateConfig,
    solution: SolutionConfig,
    snapshots: Sequence[DeploymentSnapshot],
) -> str:
    """The environment page of a solution: environments, endpoints, credential owners, versions, steps."""
    by_env = {snapshot.environment: snapshot for snapshot in snapshots}
    doc = storage.Document()
    intro: list[str | storage.Fragment] = [storage.strong(solution.name)]
    if solution.description:
        intro.append(f": {solution.description}")
    doc.paragraph(*intro)
    facts = [["Team", solution.team or "not recorded"], ["Slack channel", solution.channel or "not recorded"]]
    doc.table(["Field", "Value"], facts)
    doc.panel(
        "info",
        MAINTAINED_NOTE,
        f"Refresh it with {config.slack.command('ops')} publish-docs {solution.name}.",
    )

    doc.heading(2, "Environments")
    rows: list[list[storage.Content]] = []
    for name, environment in config.environments.items():
        snapshot = by_env.get(name)
        if snapshot is None:
            deployed: storage.Content = "OpenText not connected"
        elif snapshot.problem is not None:
            deployed = storage.status("Unknown", "Yellow")
        else:
            deployed = f"{len(snapshot.deployments)} artifact(s)"
        rows.append(
            [
                storage.strong(name),
                storage.status("Production", "Red") if environment.production else "no",
                environment.description or "",
                deployed,
            ]
        )
    doc.table(["Environment", "Production", "Description", "Deployed for this solution"], rows)

    doc.heading(2, "Endpoints")
    endpoints = [e for name, env in config.environments.items() for e in environment_endpoints(name, env)]
    if endpoints:
        doc.table(
            ["Environment", "Service", "Base URL"],
            [[e.environment, e.service, storage.inline_code(e.url)] for e in endpoints],
        )
    else:
        doc.paragraph("No vendor endpoints are configured.")
    doc.paragraph("Credentials are never written here: see the owners below and the secret store.")

    doc.heading(2, "Credential ownership")
    owned = credential_ownership(config, solution)
    if owned:
        doc.table(
            [
                "Credential",
                "Environment",
                "OpenText credential",
                "Owner",
                "Owner channel",
                "Rotation",
                "Store",
            ],
            [
                [
                    c.name,
                    c.environment,
                    storage.inline_code(c.credential_id),
                    c.owner,
                    c.owner_channel or "",
                    c.schedule,
                    c.store,
                ]
                for c in owned
            ],
        )
    else:
        doc.paragraph(f"No configured credential is named after {solution.name}.")

    doc.heading(2, "Deployed versions")
    _deployed_versions(doc, config, solution, by_env)

    doc.heading(2, "Downstream systems")
    if solution.downstream_systems:
        doc.bullet_list(solution.downstream_systems)
    else:
        doc.paragraph("None recorded.")

    path = [name for name in config.environments if name in by_env]
    doc.heading(2, "Deployment")
    doc.numbered_list(_deployment_steps(config, solution, path))
    doc.heading(2, "Rollback")
    doc.numbered_list(_rollback_steps(config, solution))
    return doc.render()


def _deployed_versions(
    doc: storage.Document,
    config: OpsgateConfig,
    solution: SolutionConfig,
    by_env: Mapping[str, DeploymentSnapshot],
) -> None:
    environments = [name for name in config.environments if name in by_env]
    if not environments:
        doc.paragraph("No environment has OpenText configured.")
        return
    versions: dict[str, dict[str, Deployment]] = {}
    for artifact in solution.artifacts:
        versions.setdefault(artifact, {})
    for name in environments:
        for deployment in by_env[name].deployments:
            versions.setdefault(deployment.artifact_id, {})[name] = deployment
    if not versions:
        doc.paragraph("OpenText reports no deployed artifacts for this solution.")
    else:
        rows: list[list[storage.Content]] = []
        for artifact, where in sorted(versions.items()):
            cells: list[storage.Content] = [storage.inline_code(artifact)]
            for name in environments:
                if by_env[name].problem is not None:
                    cells.append("unknown")
                elif name in where:
                    deployment = where[name]
                    since = (
                        deployment.deployed_at.astimezone(UTC).strftime("%Y-%m-%d")
                        if deployment.deployed_at
                        else ""
                    )
                    cells.append([storage.strong(deployment.version), f" since {since}" if since else ""])
                else:
                    cells.append("not deployed")
            rows.append(cells)
        doc.table(["Artifact", *environments], rows)
    problems = [f"{name}: {by_env[name].problem}" for name in environments if by_env[name].problem]
    if problems:
        doc.panel("warning", storage.bullet_list(problems), title="OpenText could not be read")


def _deployment_steps(
    config: OpsgateConfig, solution: SolutionConfig, path: Sequence[str]
) -> list[storage.Content]:
    promote = config.slack.command("promote")
    artifact = solution.artifacts[0] if solution.artifacts else "<artifact>"
    source, target = (path[0], path[1]) if len(path) >= 2 else ("<from-env>", "<to-env>")
    order = " → ".join(path) if path else "the configured environments"
    return [
        f"Check that the version runs in the source environment (Deployed versions above). Promotion order: {order}.",
        [
            "Ask for the promotion in Slack: ",
            storage.inline_code(f"{promote} {artifact} <version> {source} {target} <reason>"),
            ".",
        ],
        "The approvers named by the policy approve it in Slack; production changes run only inside their change windows.",
        "opsgate promotes through OpenText, checks the deployed version and writes a change summary page.",
        "Repeat for the next environment in the order above.",
    ]


def _rollback_steps(config: OpsgateConfig, solution: SolutionConfig) -> list[storage.Content]:
    ops = config.slack.command("ops")
    return [
        [
            "Ask for the rollback of the promotion: ",
            storage.inline_code(f"{ops} rollback <request ID> <reason>"),
            "; opsgate prepares a promotion of the previous version (the change summary page names it).",
        ],
        [
            "It is approved like any promotion. In an emergency add ",
            storage.inline_code('--emergency "reason"'),
            " (break-glass: reviewed afterwards).",
        ],
        "An artifact that never ran in the environment before cannot be rolled back by promotion: undeploy it in the OpenText console.",
        [
            "Check the downstream systems, then refresh this page: ",
            storage.inline_code(f"{ops} publish-docs {solution.name}"),
            ".",
        ],
    ]


# ------------------------------------------------------------------------------ incident page


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    text: str


@dataclass(frozen=True)
class IncidentDetails:
    """What is known when an incident page is opened from an alert or a failed request."""

    source_ref: str  # ALR-12, PRM-3 ...
    title: str
    environment: str
    summary: str = ""
    severity: str = "error"
    failed_message_types: tuple[str, ...] = ()
    affected_endpoints: tuple[str, ...] = ()
    affected_systems: tuple[str, ...] = ()
    timeline: tuple[TimelineEntry, ...] = ()
    opened_by: str | None = None


def incident_page_title(incident: IncidentDetails) -> str:
    """One page per source: opening the incident again finds the same page."""
    return _title(f"Incident {incident.source_ref}: {incident.title} ({incident.environment})")


_SEVERITY_COLOURS: Final[Mapping[str, storage.StatusColour]] = {
    "critical": "Red",
    "error": "Red",
    "warning": "Yellow",
    "info": "Blue",
}


def _endpoint_text(value: str) -> str:
    return public_endpoint(value) if "://" in value else value


def build_incident_page(incident: IncidentDetails, *, opened_at: datetime) -> str:
    """The incident page: facts, failed message types, endpoints, timeline, and sections to fill in."""
    doc = storage.Document()
    doc.paragraph(
        storage.status("Open", "Red"),
        " ",
        storage.status(incident.severity.upper(), _SEVERITY_COLOURS.get(incident.severity.lower(), "Grey")),
        " ",
        incident.title,
    )
    doc.table(
        ["Field", "Value"],
        [
            ["Source", incident.source_ref],
            ["Environment", incident.environment],
            ["Severity", incident.severity],
            ["Opened", _utc(opened_at)],
            ["Opened by", incident.opened_by or "opsgate"],
        ],
    )
    doc.heading(2, "Summary")
    doc.paragraph(incident.summary or "No summary was recorded with the alert.")
    doc.heading(2, "Failed message types")
    if incident.failed_message_types:
        doc.bullet_list([storage.inline_code(kind) for kind in incident.failed_message_types])
    else:
        doc.add(
            _guidance("None were recorded: list the message types (e.g. ORDERS D96A, INVOIC) that failed.")
        )
    doc.heading(2, "Affected endpoints and systems")
    affected: list[storage.Content] = [
        storage.inline_code(_endpoint_text(e)) for e in incident.affected_endpoints
    ]
    affected.extend(incident.affected_systems)
    if affected:
        doc.bullet_list(affected)
    else:
        doc.add(_guidance("List the endpoints and downstream systems that were affected."))
    doc.heading(2, "Timeline")
    entries = sorted(incident.timeline, key=lambda entry: entry.at)
    doc.table(["Time (UTC)", "Event"], [[_utc(entry.at), entry.text] for entry in entries] or [["", ""]])
    doc.paragraph("Add entries as you learn more: detection, escalation, mitigation, resolution.")
    doc.heading(2, "Impact")
    doc.add(
        _guidance("Who and what was affected, for how long; messages delayed or lost; partners to inform.")
    )
    doc.heading(2, "Remediation")
    doc.add(
        _guidance(
            "What was done to restore service, by whom and when; link the change requests (e.g. rollbacks)."
        )
    )
    doc.heading(2, "Root cause")
    doc.add(
        _guidance(
            "Fill in after the incident: what failed and why (ask why until the answer is a cause you can fix)."
        )
    )
    doc.heading(2, "Follow-up actions")
    doc.add(_guidance("Actions that prevent a recurrence, each with an owner and a due date."))
    return doc.render()


# ------------------------------------------------------------------------------ weekly status


@dataclass(frozen=True)
class AlertSummary:
    """An open alert as the weekly summary lists it."""

    ref: str
    title: str
    severity: str
    environment: str
    status: str = "firing"
    since: datetime | None = None


@dataclass(frozen=True)
class EnvironmentStatus:
    """One environment's week: OpenText health, changes, failures, work in flight, open alerts."""

    environment: str
    production: bool
    opentext: str  # "healthy", "not connected", or "unreachable: <vendor detail>"
    changes: int
    failed: int
    in_flight: int
    open_alerts: int


@dataclass(frozen=True)
class UpcomingWindow:
    """The next (or current) occurrence of a policy's change window."""

    policy: str
    environment: str
    kind: Literal["allow", "deny"]
    label: str
    opens_at: datetime
    closes_at: datetime
    open_now: bool


def upcoming_windows(
    rules: Iterable[PolicyRule], now: datetime, *, horizon: timedelta = timedelta(days=7)
) -> list[UpcomingWindow]:
    """Windows open now or opening within `horizon`, soonest first."""
    found = []
    for rule in rules:
        for window in rule.windows:
            interval = window.open_interval(now)
            if interval is not None:
                start, end, open_now = interval[0], interval[1], True
            else:
                start = window.next_start(now)
                end, open_now = start + window.duration, False
                if start - now > horizon:
                    continue
            found.append(
                UpcomingWindow(
                    policy=rule.name,
                    environment=rule.environment,
                    kind=window.kind,
                    label=window.label(),
                    opens_at=start.astimezone(UTC),
                    closes_at=end.astimezone(UTC),
                    open_now=open_now,
                )
            )
    return sorted(found, key=lambda w: (w.opens_at, w.policy))


@dataclass(frozen=True)
class WeeklySummary:
    """Everything the weekly status page shows for one ISO week."""

    year: int
    week: int
    starts: datetime
    ends: datetime
    environments: tuple[EnvironmentStatus, ...]
    changes: tuple[ChangeRequest, ...]
    alerts: tuple[AlertSummary, ...]
    windows: tuple[UpcomingWindow, ...]
    status_counts: Counter[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "status_counts", Counter(change.status.value for change in self.changes))

    def count(self, *statuses: RequestStatus) -> int:
        return sum(self.status_counts.get(status.value, 0) for status in statuses)

    @property
    def in_flight(self) -> int:
        return self.count(*HOLDS_LOCK)

    @property
    def emergencies(self) -> int:
        return sum(1 for change in self.changes if change.emergency)

    @property
    def critical_alerts(self) -> int:
        return sum(1 for alert in self.alerts if alert.severity.lower() == "critical")

    @property
    def label(self) -> str:
        return f"{self.year}-W{self.week:02d}"


def weekly_page_title(year: int, week: int) -> str:
    """One status page per ISO week."""
    return f"Ops status {year}-W{week:02d}"


def _environment_lozenge(status: EnvironmentStatus) -> storage.Fragment:
    if status.opentext.startswith("unreachable") or status.failed:
        return storage.status("Attention", "Red")
    if status.open_alerts or status.in_flight:
        return storage.status("Watch", "Yellow")
    if status.opentext == "not connected":
        return storage.status("Not connected", "Grey")
    return storage.status("OK", "Green")


def build_weekly_summary_page(summary: WeeklySummary) -> str:
    """The weekly status page: totals, environment status, changes, open alerts, upcoming windows."""
    doc = storage.Document()
    last_day = summary.ends - timedelta(days=1)
    doc.paragraph(
        f"Week {summary.label}: {summary.starts:%a %d %b %Y} to {last_day:%a %d %b %Y} (UTC). "
        "Written by opsgate: publishing again this week rewrites this page.",
    )
    doc.table(
        [
            "Changes",
            "Succeeded",
            "Failed",
            "Rejected, cancelled or expired",
            "In flight",
            "Emergency",
            "Open alerts",
        ],
        [
            [
                str(len(summary.changes)),
                str(summary.count(RequestStatus.SUCCEEDED)),
                str(summary.count(RequestStatus.FAILED)),
                str(summary.count(RequestStatus.REJECTED, RequestStatus.CANCELLED, RequestStatus.EXPIRED)),
                str(summary.in_flight),
                str(summary.emergencies),
                str(len(summary.alerts)),
            ]
        ],
    )

    doc.heading(2, "Environment status")
    doc.table(
        ["Environment", "Status", "OpenText", "Changes", "Failed", "In flight", "Open alerts"],
        [
            [
                [storage.strong(s.environment), " (production)" if s.production else ""],
                _environment_lozenge(s),
                s.opentext,
                str(s.changes),
                str(s.failed),
                str(s.in_flight),
                str(s.open_alerts),
            ]
            for s in summary.environments
        ],
    )

    doc.heading(2, "Changes this week")
    if summary.changes:
        doc.table(
            ["Request", "Action", "Target", "Environment", "Status", "Requested by", "Requested (UTC)"],
            [
                [
                    c.human_id,
                    c.action.value + (" (emergency)" if c.emergency else ""),
                    storage.inline_code(c.target),
                    c.environment,
                    c.status.value,
                    c.requester,
                    _utc(c.created_at),
                ]
                for c in summary.changes
            ],
        )
    else:
        doc.paragraph("No change requests this week.")

    doc.heading(2, "Open alerts")
    if summary.alerts:
        doc.table(
            ["Alert", "Severity", "Environment", "Status", "Title", "Since (UTC)"],
            [
                [a.ref, a.severity, a.environment, a.status, a.title, _utc(a.since) if a.since else ""]
                for a in summary.alerts
            ],
        )
    else:
        doc.paragraph("No open alerts.")

    doc.heading(2, "Upcoming change windows")
    if summary.windows:
        doc.table(
            ["Policy", "Environment", "Window", "Kind", "Opens (UTC)", "Closes (UTC)"],
            [
                [
                    w.policy,
                    w.environment,
                    w.label,
                    w.kind,
                    "open now" if w.open_now else _utc(w.opens_at),
                    _utc(w.closes_at),
                ]
                for w in summary.windows
            ],
        )
    else:
        doc.paragraph("No change window opens in the next 7 days.")
    return doc.render()
