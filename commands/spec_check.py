"""Compare interface specification pages in Confluence with OpenText, and alert while they drift.

    /ops spec-check <page>      every difference between the page and each environment's OpenText
    scheduled drift check       every page labelled `interface-spec`: an alert per page while it
                                differs, resolved when it no longer does

A page is read by `commands.interface_spec` (message type | endpoint | version per environment).
Each row's endpoint (or artifact) is matched to an OpenText artifact by id or name, and its
expected version compared with the deployment in that environment. In the other direction,
artifacts OpenText runs in an environment the page covers, from a solution the page covers, that
the page does not list for that environment are differences too.

Slack-free: the command returns the text to show; the monitor feeds `AlertEvent`s to anything
with `ingest` (the AlertService).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from bot.alerts.service import IngestResult
from bot.blocks.text import escape
from bot.config.opsgate import OpsgateConfig
from bot.domain.alerts import AlertEvent, Severity
from commands.confluence_lookup import find_named_page, solution_spaces
from commands.interface_spec import InterfaceSpec, SpecError, SpecRow, parse_interface_spec
from commands.release_checklist import normalise_version
from commands.workflow import PrecheckFailed
from connectors.base import DocumentStore
from connectors.confluence import Page, cql_literal
from connectors.errors import ConnectorError, NotFound
from connectors.opentext import ArtifactKind, ArtifactSummary, Deployment

__all__ = [
    "SPEC_ALERT_SOURCE",
    "SPEC_LABEL",
    "AlertSink",
    "DriftResult",
    "SpecChecker",
    "SpecDriftMonitor",
    "SpecFinding",
    "SpecInventory",
    "SpecReport",
    "spec_drift_alert",
    "spec_drift_key",
    "spec_drift_resolved",
    "spec_report_text",
]

SPEC_LABEL: Final = "interface-spec"
SPEC_ALERT_SOURCE: Final = "spec"
MAX_REPLY_LINES: Final = 40
MAX_ALERT_LINES: Final = 15

SpecState = Literal[
    "ok",
    "different_version",
    "not_deployed",
    "unexpected_deployment",
    "missing",
    "ambiguous",
    "undocumented",
    "unknown_environment",
    "unavailable",
]


class SpecInventory(Protocol):
    """The read side of OpenText a spec check needs (OpenTextConnector satisfies it)."""

    async def list_artifacts(
        self, *, solution: str | None = None, kind: ArtifactKind | str | None = None, name: str | None = None
    ) -> list[ArtifactSummary]: ...

    async def list_deployments(
        self, environment: str, *, solution: str | None = None
    ) -> list[Deployment]: ...


class AlertSink(Protocol):
    """Where drift alerts go (AlertService satisfies it)."""

    async def ingest(self, event: AlertEvent) -> IngestResult: ...


@dataclass(frozen=True)
class SpecFinding:
    """One difference (or agreement) between the page and OpenText in one environment."""

    state: SpecState
    environment: str
    endpoint: str
    detail: str
    message_type: str = ""
    expected_version: str | None = None
    deployed_version: str | None = None
    artifact_id: str | None = None
    where: str = ""

    @property
    def is_difference(self) -> bool:
        return self.state not in ("ok", "unavailable")

    def describe(self) -> str:
        """One line for people: what the spec says and what OpenText has."""
        subject = f"{self.message_type} via {self.endpoint}" if self.message_type else self.endpoint
        return f"{self.environment}: {subject}: {self.detail}"


@dataclass(frozen=True)
class SpecReport:
    page: Page
    findings: tuple[SpecFinding, ...]
    problems: tuple[str, ...] = ()

    @property
    def differences(self) -> tuple[SpecFinding, ...]:
        return tuple(f for f in self.findings if f.is_difference)

    @property
    def unchecked(self) -> tuple[SpecFinding, ...]:
        """Rows that could not be compared because OpenText could not be read."""
        return tuple(f for f in self.findings if f.state == "unavailable")

    @property
    def in_sync(self) -> bool:
        """No difference and nothing left unchecked."""
        return not self.differences and not self.unchecked


_Facts = tuple[dict[str, Deployment], dict[str, ArtifactSummary]]


class _Inventory:
    """OpenText facts per environment, read once per check."""

    def __init__(self, config: OpsgateConfig, opentext_for: Callable[[str], SpecInventory]) -> None:
        self.config = config
        self.opentext_for = opentext_for
        self.environments = {name.casefold(): name for name in config.environments}
        self._read: dict[str, _Facts | str] = {}

    async def facts(self, environment: str) -> _Facts | str:
        if environment not in self._read:
            if self.config.environments[environment].opentext is None:
                self._read[environment] = "OpenText is not configured for this environment"
            else:
                connector = self.opentext_for(environment)
                try:
                    deployments, artifacts = await asyncio.gather(
                        connector.list_deployments(environment), connector.list_artifacts()
                    )
                except ConnectorError as exc:
                    self._read[environment] = f"OpenText could not be read: {exc.detail}"
                else:
                    self._read[environment] = (
                        {d.artifact_id: d for d in deployments},
                        {a.id: a for a in artifacts},
                    )
        return self._read[environment]


def _matches(reference: str, artifacts: dict[str, ArtifactSummary]) -> list[str]:
    """Artifact ids the cell names: its whole text, else any one word of it, as an id or a name."""
    wanted = reference.strip().casefold()

    def named(word: str) -> set[str]:
        return {a.id for a in artifacts.values() if word in (a.id.casefold(), a.name.casefold())}

    found = named(wanted)
    if not found:
        for word in re.split(r"[\s,;()\[\]<>|]+", wanted):
            found |= named(word) if word else set()
    return sorted(found)


async def _compare_row(row: SpecRow, inventory: _Inventory) -> SpecFinding:
    """The row's verdict; `artifact_id` is set when the row's artifact was found in OpenText."""

    def finding(
        state: SpecState,
        environment: str,
        detail: str,
        artifact_id: str | None = None,
        running: str | None = None,
    ) -> SpecFinding:
        return SpecFinding(
            state,
            environment,
            row.endpoint,
            detail,
            message_type=row.message_type,
            expected_version=row.expected_version,
            deployed_version=running,
            artifact_id=artifact_id,
            where=row.where,
        )

    environment = inventory.environments.get(row.environment.casefold())
    if environment is None:
        known = ", ".join(inventory.config.environments)
        return finding(
            "unknown_environment",
            row.environment,
            f"the spec names environment {row.environment!r}, which opsgate does not know ({known})",
        )
    facts = await inventory.facts(environment)
    if isinstance(facts, str):
        return finding("unavailable", environment, facts)
    deployments, artifacts = facts
    matches = _matches(row.endpoint, artifacts)
    if not matches:
        if row.expected_version is None:
            return finding("ok", environment, "does not exist, so not deployed, as specified")
        return finding("missing", environment, "OpenText has no artifact by that id or name")
    if len(matches) > 1:
        return finding("ambiguous", environment, f"matches {', '.join(matches)}: write the artifact id")
    artifact_id = matches[0]
    deployment = deployments.get(artifact_id)
    running = deployment.version if deployment else None
    expected = row.expected_version
    if expected is None and running is None:
        return finding("ok", environment, "not deployed, as specified", artifact_id)
    if expected is None:
        detail = f"the spec says not deployed, OpenText runs {artifact_id} {running}"
        return finding("unexpected_deployment", environment, detail, artifact_id, running)
    if running is None:
        return finding(
            "not_deployed",
            environment,
            f"the spec says {expected}, {artifact_id} is not deployed",
            artifact_id,
        )
    if normalise_version(running) != normalise_version(expected):
        detail = f"the spec says {expected}, OpenText runs {artifact_id} {running}"
        return finding("different_version", environment, detail, artifact_id, running)
    return finding("ok", environment, f"runs {running}", artifact_id, running)


async def _undocumented(rows_by_env: dict[str, set[str]], inventory: _Inventory) -> list[SpecFinding]:
    """Deployments the page should list but does not: same environment, a solution it covers."""
    found: list[SpecFinding] = []
    covered_ids = {artifact_id for ids in rows_by_env.values() for artifact_id in ids}
    for environment, listed in sorted(rows_by_env.items()):
        facts = await inventory.facts(environment)
        if isinstance(facts, str):
            continue
        deployments, artifacts = facts
        solutions = {artifacts[i].solution for i in covered_ids if i in artifacts}
        for artifact_id, deployment in sorted(deployments.items()):
            artifact = artifacts.get(artifact_id)
            if artifact is None or artifact.solution not in solutions or artifact_id in listed:
                continue
            found.append(
                SpecFinding(
                    "undocumented",
                    environment,
                    endpoint=artifact_id,
                    detail=f"OpenText runs {artifact_id} {deployment.version}; the spec does not list it here",
                    deployed_version=deployment.version,
                    artifact_id=artifact_id,
                )
            )
    return found


@dataclass
class SpecChecker:
    """Spec pages in one Confluence (where docs live) against each environment's OpenText.

    `docs_environment` names the environment whose Confluence holds the pages; by default the
    first environment in the config that configures Confluence.
    """

    config: OpsgateConfig
    confluence_for: Callable[[str], DocumentStore]
    opentext_for: Callable[[str], SpecInventory]
    docs_environment: str | None = None
    label: str = SPEC_LABEL

    def _store(self) -> DocumentStore:
        environment = self.docs_environment or next(
            (name for name, env in self.config.environments.items() if env.confluence is not None), None
        )
        if environment is None:
            raise PrecheckFailed(
                "No environment configures Confluence: add environments.<env>.confluence to the config."
            )
        return self.confluence_for(environment)

    def _spaces(self) -> list[str]:
        return solution_spaces(self.config)

    async def find_page(self, page: str) -> Page:
        """The page with this id, or this exact title in one of the solutions' spaces."""
        return await find_named_page(self._store(), page, spaces=self._spaces())

    async def check(self, page: str) -> SpecReport:
        """Read the spec page (id or title) and compare every row with OpenText."""
        found = await self.find_page(page)
        return await self.check_page(found)

    async def check_page(self, page: Page) -> SpecReport:
        try:
            spec: InterfaceSpec = parse_interface_spec(page.body, list(self.config.environments))
        except SpecError as exc:
            raise PrecheckFailed(f"'{page.title}': {exc}.") from None
        inventory = _Inventory(self.config, self.opentext_for)
        findings: list[SpecFinding] = []
        listed: dict[str, set[str]] = {}
        for row in spec.rows:
            finding = await _compare_row(row, inventory)
            findings.append(finding)
            if finding.state not in ("unknown_environment", "unavailable"):
                ids = listed.setdefault(finding.environment, set())
                if finding.artifact_id is not None:
                    ids.add(finding.artifact_id)
        findings.extend(await _undocumented(listed, inventory))
        return SpecReport(page, tuple(findings), spec.problems)

    async def spec_check(self, page: str) -> str:
        """`/ops spec-check <page>`: every difference between the page and OpenText."""
        return spec_report_text(await self.check(page))

    async def labelled_pages(self) -> list[Page]:
        """Every page labelled `interface-spec` in the solutions' spaces (the scheduled check's pages)."""
        store = self._store()
        spaces = self._spaces()
        cql = f"label = {cql_literal(self.label)} and type = page"
        pages: list[Page] = []
        async for hit in store.search(cql):
            if hit.id is None or hit.type not in (None, "page"):
                continue
            page = await store.get_page(hit.id)
            if spaces and page.space_id is not None and not await self._in_spaces(store, page, spaces):
                continue
            pages.append(page)
        return pages

    async def _in_spaces(self, store: DocumentStore, page: Page, spaces: Sequence[str]) -> bool:
        # Search hits name the space by name, pages by id: a page whose title lookup in one of the
        # spaces finds it again belongs there.
        for key in spaces:
            try:
                same = await store.find_page(key, page.title)
            except NotFound:
                continue
            if same is not None and same.id == page.id:
                return True
        return False


def _page_name(page: Page) -> str:
    return f"<{escape(page.web_url)}|{escape(page.title)}>" if page.web_url else f"'{escape(page.title)}'"


def spec_report_text(report: SpecReport) -> str:
    """The Slack reply: every difference by environment, then rows that could not be read or checked."""
    name = _page_name(report.page)
    compared = [f for f in report.findings if f.state != "undocumented"]
    if not report.findings and not report.problems:
        return f"*Spec check of {name}*: the specification tables have no rows."
    lines: list[str] = []
    differences = report.differences
    if differences:
        lines.append(f"*Spec check of {name}*: {len(differences)} difference(s) from OpenText.")
        for finding in differences[:MAX_REPLY_LINES]:
            lines.append(f"• {escape(finding.describe())}")
        if len(differences) > MAX_REPLY_LINES:
            lines.append(f"…and {len(differences) - MAX_REPLY_LINES} more.")
    else:
        lines.append(f"*Spec check of {name}*: all {len(compared)} rows match OpenText.")
    if report.unchecked:
        environments = sorted({f.environment for f in report.unchecked})
        lines.append(
            f"{len(report.unchecked)} row(s) could not be checked ({', '.join(environments)}): "
            f"{escape(report.unchecked[0].detail)}"
        )
    if report.problems:
        lines.append(f"{len(report.problems)} row(s) could not be read:")
        lines.extend(f"• {escape(problem)}" for problem in report.problems[:MAX_REPLY_LINES])
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ alerts


def spec_drift_key(page_id: str) -> str:
    """One alert per spec page, whatever title or id it was asked by."""
    return f"spec-drift:{page_id}"


def spec_drift_alert(report: SpecReport) -> AlertEvent:
    """The alert for a page that differs from OpenText (one key per page, so repeats add to it)."""
    differences = report.differences
    environments = sorted({f.environment for f in differences})
    lines = [f"- {f.describe()}" for f in differences[:MAX_ALERT_LINES]]
    if len(differences) > MAX_ALERT_LINES:
        lines.append(
            f"...and {len(differences) - MAX_ALERT_LINES} more; run /ops spec-check {report.page.id}"
        )
    return AlertEvent(
        dedup_key=spec_drift_key(report.page.id),
        source=SPEC_ALERT_SOURCE,
        severity=Severity.WARNING,
        environment=(environments[0] if len(environments) == 1 else "-")[:64],
        system="opentext",
        title=f"Interface spec '{report.page.title}' differs from OpenText ({len(differences)})"[:200],
        summary="\n".join(lines)[:2800],
        labels={"page_id": report.page.id[:255], "page_title": report.page.title[:255]},
    )


def spec_drift_resolved(page_id: str) -> AlertEvent:
    return AlertEvent(
        dedup_key=spec_drift_key(page_id), action="resolve", source=SPEC_ALERT_SOURCE, system="opentext"
    )


@dataclass(frozen=True)
class DriftResult:
    """What one drift check found and did to the page's alert."""

    page_ref: str
    state: Literal["drift", "in_sync", "unknown"]
    alert: Literal["raised", "resolved", "none"]
    report: SpecReport | None = None
    error: str | None = None
    alert_id: int | None = None


@dataclass
class SpecDriftMonitor:
    """Raises an alert per spec page while it differs from OpenText and resolves it when it stops.

    When the page cannot be read, or some rows could not be checked and none differ, nothing
    changes: an alert is neither raised on a guess nor resolved on missing facts.
    """

    checker: SpecChecker
    alerts: AlertSink
    checked: list[DriftResult] = field(default_factory=list)

    async def check(self, page_ref: str) -> DriftResult:
        try:
            report = await self.checker.check(page_ref)
        except (PrecheckFailed, ConnectorError) as exc:
            detail = exc.detail if isinstance(exc, ConnectorError) else str(exc)
            return DriftResult(page_ref, "unknown", "none", error=detail)
        return await self._settle(page_ref, report)

    async def check_labelled(self) -> list[DriftResult]:
        """The scheduled run: every labelled page, one result each (a failing page does not stop the rest)."""
        try:
            pages = await self.checker.labelled_pages()
        except (PrecheckFailed, ConnectorError) as exc:
            detail = exc.detail if isinstance(exc, ConnectorError) else str(exc)
            return [DriftResult(f"label:{self.checker.label}", "unknown", "none", error=detail)]
        results = []
        for page in pages:
            try:
                report = await self.checker.check_page(page)
            except (PrecheckFailed, ConnectorError) as exc:
                detail = exc.detail if isinstance(exc, ConnectorError) else str(exc)
                results.append(DriftResult(page.id, "unknown", "none", error=detail))
                continue
            results.append(await self._settle(page.id, report))
        return results

    async def _settle(self, page_ref: str, report: SpecReport) -> DriftResult:
        if report.differences:
            ingested = await self.alerts.ingest(spec_drift_alert(report))
            return DriftResult(page_ref, "drift", "raised", report, alert_id=ingested.alert_id)
        if report.unchecked:
            return DriftResult(page_ref, "unknown", "none", report, error=report.unchecked[0].detail)
        ingested = await self.alerts.ingest(spec_drift_resolved(report.page.id))
        if ingested.alert_id is None:  # there was no open alert to resolve
            return DriftResult(page_ref, "in_sync", "none", report)
        return DriftResult(page_ref, "in_sync", "resolved", report, alert_id=ingested.alert_id)
