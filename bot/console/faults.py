"""The console's fault presets: one click makes a vendor emulator misbehave so alerts can be seen.

Each preset names the emulator it targets and the control call that arms it. Vendor emulators
are reached over HTTP at their base URLs (their ``/_control`` routes); the Slack emulator the
console is mounted on is armed in-process through its fault injector.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import httpx
from aiohttp import web

from connectors.emulators.faults import FaultSpec, fault_injector_of

__all__ = ["FAULT_PRESETS", "FaultPreset", "FaultPresetName", "FaultReport", "apply_fault_preset"]

FaultPresetName = Literal[
    "opentext_promote_fails", "canto_slow", "iconik_job_fails", "slack_rate_limit", "clear"
]

# Slower than the default alert health-check timeout (10 s), so a probe of Canto times out.
CANTO_LATENCY_MS: Final = 12_000
# How many chat.postMessage calls the Slack preset refuses, and the Retry-After it asks for.
SLACK_RATE_LIMITED_CALLS: Final = 6
SLACK_RETRY_AFTER_SECONDS: Final = 3.0
_CONTROL_TIMEOUT_SECONDS: Final = 5.0


@dataclass(frozen=True)
class FaultPreset:
    """A fault the console offers: what the page shows and which emulator it targets."""

    name: FaultPresetName
    label: str
    description: str
    target: str


FAULT_PRESETS: Final[tuple[FaultPreset, ...]] = (
    FaultPreset(
        "opentext_promote_fails",
        "OpenText promote fails",
        "The next OpenText promotion job ends in 'deployment_failed'.",
        "opentext",
    ),
    FaultPreset(
        "canto_slow",
        "Canto slow",
        f"Every Canto API call takes {CANTO_LATENCY_MS // 1000} s until cleared.",
        "canto",
    ),
    FaultPreset("iconik_job_fails", "iconik job fails", "The next iconik transfer job FAILS.", "iconik"),
    FaultPreset(
        "slack_rate_limit",
        "Slack rate limits",
        f"The next {SLACK_RATE_LIMITED_CALLS} chat.postMessage calls get HTTP 429 "
        f"(Retry-After {SLACK_RETRY_AFTER_SECONDS:g} s).",
        "slack",
    ),
    FaultPreset(
        "clear",
        "Clear faults",
        "Remove injected faults; an armed OpenText or iconik job failure waits for the next job.",
        "all",
    ),
)


# The control call that arms each vendor preset: path on the emulator and JSON body.
_VENDOR_CONTROL_CALLS: Final[Mapping[str, tuple[str, dict[str, Any]]]] = {
    "opentext_promote_fails": (
        "/_control/opentext/fail-next-job",
        {"code": "deployment_failed", "message": "Target runtime rejected the artifact (demo fault)"},
    ),
    "canto_slow": ("/_control/faults", {"path": "^/(api|api_binary|oauth)/", "latency_ms": CANTO_LATENCY_MS}),
    "iconik_job_fails": (
        "/_control/iconik/job_outcomes",
        {"status": "FAILED", "error_message": "Transfer to storage failed (demo fault)", "times": 1},
    ),
}


@dataclass(frozen=True)
class FaultReport:
    """What arming (or clearing) a preset did, per emulator; ``ok`` is False if any call failed."""

    preset: FaultPresetName
    results: Mapping[str, str]
    ok: bool

    def to_json(self) -> dict[str, Any]:
        return {"preset": self.preset, "results": dict(self.results), "ok": self.ok}


async def _vendor_call(
    client: httpx.AsyncClient, base_url: str, method: str, path: str, body: Any = None
) -> str:
    try:
        response = await client.request(method, base_url.rstrip("/") + path, json=body)
    except httpx.HTTPError as exc:
        return f"failed: {type(exc).__name__}"
    if response.status_code >= 400:
        return f"failed: HTTP {response.status_code}"
    return "ok"


async def apply_fault_preset(
    name: FaultPresetName,
    *,
    slack_app: web.Application,
    fault_targets: Mapping[str, str],
    client: httpx.AsyncClient | None = None,
) -> FaultReport:
    """Arm the preset ``name`` (or clear every fault) on the emulators in ``fault_targets``.

    A preset whose emulator is not among ``fault_targets`` reports "not running".
    """
    owns_client = client is None
    http = client or httpx.AsyncClient(timeout=_CONTROL_TIMEOUT_SECONDS)
    results: dict[str, str] = {}
    try:
        if name == "clear":
            fault_injector_of(slack_app).clear_faults()
            results["slack"] = "ok"
            for vendor, vendor_url in fault_targets.items():
                results[vendor] = await _vendor_call(http, vendor_url, "DELETE", "/_control/faults")
        elif name == "slack_rate_limit":
            fault_injector_of(slack_app).add(
                FaultSpec(
                    path=r"^/api/chat\.postMessage$",
                    status=429,
                    retry_after=SLACK_RETRY_AFTER_SECONDS,
                    times=SLACK_RATE_LIMITED_CALLS,
                )
            )
            results["slack"] = "ok"
        else:
            target = next(p.target for p in FAULT_PRESETS if p.name == name)
            base_url = fault_targets.get(target)
            path, body = _VENDOR_CONTROL_CALLS[name]
            if base_url is None:
                results[target] = "not running"
            else:
                results[target] = await _vendor_call(http, base_url, "POST", path, body)
    finally:
        if owns_client:
            await http.aclose()
    return FaultReport(name, results, all(result == "ok" for result in results.values()))
