"""`opsgate demo`: the whole system in one process, with a Slack-like web console to drive it.

``run_demo`` starts the four vendor emulators (seeded), the Slack emulator with the console
mounted at http://host:port/, and the bot in HTTP mode pointed at all of them (SQLite in
``data_dir``, generated signing secret, runtime loops and scheduler); it prints the URL and a
short guide, and stops cleanly on Ctrl-C / SIGTERM. ``start_demo`` does the same but hands the
running pieces back to the caller (tests) instead of waiting for a signal.

The console is served by the Slack emulator itself (one port: the page, the console API, Slack's
Web API under /api/ and the emulator's /_control routes); the bot's /slack/events listens on an
ephemeral port that only the console's SlackDriver calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import secrets
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from aiohttp import web

from bot.config.opsgate import OpsgateConfig, Settings
from bot.console import add_console_routes
from bot.domain.policy import Action
from bot.emulators.slack import create_app as create_slack_app
from bot.emulators.slack_driver import SlackDriver
from bot.emulators.slack_seed import (
    DEFAULT_BOT_TOKEN,
    DEFAULT_CHANNELS,
    DEFAULT_USERGROUPS,
    DEFAULT_USERS,
    SlackChannel,
    SlackSeed,
)
from bot.wiring.service import OpsgateService, build_service
from commands.workflow import Workflow
from connectors.emulators import EmulatorSet, serve_all
from connectors.emulators.faults import start_app

__all__ = [
    "DEMO_CHANNELS",
    "DEMO_SEED",
    "DEMO_TIPS",
    "DEMO_USER_LABELS",
    "BotWiring",
    "DemoStack",
    "WiredBot",
    "WorkflowsFactory",
    "demo_config",
    "demo_guide",
    "run_demo",
    "start_demo",
]

log = logging.getLogger("opsgate.demo")

WorkflowsFactory = Callable[[Settings, OpsgateConfig], tuple[Mapping[Action, Workflow], Any]]

# Shutdown must finish within 10 s of Ctrl-C; each part gets a share of this.
SHUTDOWN_BUDGET_SECONDS: Final = 9.0
_BOT_STOP_TIMEOUT: Final = 3.0

# Credentials the vendor emulators accept out of the box (see each emulator's create_app/seed).
_OPENTEXT_TENANT: Final = "acme-integration"
_OPENTEXT_CLIENT: Final = ("opsgate-svc", "opsgate-svc-secret")
_CANTO_APP: Final = ("opsgate-canto-app", "canto-emulator-secret")
_ICONIK_APP: Final = ("opsgate-iconik-app", "iconik-emulator-token")
_CONFLUENCE_LOGIN: Final = ("opsgate-bot@example.com", "emulated-cloud-api-token")

DEMO_USER_LABELS: Final[Mapping[str, str]] = {
    "U_REQ": "requester",
    "U_APP1": "approver",
    "U_APP2": "approver",
    "U_OUT": "outsider",
}
# approvals, alerts and one channel per OpenText solution the emulator seeds.
DEMO_CHANNELS: Final[tuple[SlackChannel, ...]] = (
    *DEFAULT_CHANNELS,
    SlackChannel(id="C_INVOICES", name="invoices", topic="Invoice flows"),
    SlackChannel(id="C_SHIPPING", name="shipping-notices", topic="Advance shipping notices"),
)
DEMO_SEED: Final = SlackSeed(users=DEFAULT_USERS, usergroups=DEFAULT_USERGROUPS, channels=DEMO_CHANNELS)
DEMO_TIPS: Final[tuple[str, ...]] = (
    "/promote orders-edi.orders-d96a-to-xml 2.4.0 test prod Map FTX+DEL free text to delivery notes",
    "/promote invoices.invoice-xml-to-ubl 1.2.0 dev test Peppol BIS 3.0.15 rules",
    "/promote",
    "/rotate orders-edi-prod prod",
    "/ops help",
)


def demo_config(urls: Mapping[str, str]) -> OpsgateConfig:
    """The demo's opsgate configuration, pointing every environment at the emulators in ``urls``.

    ``urls`` maps vendor names (opentext, canto, iconik, confluence) to emulator base URLs; a
    vendor missing from it is left unconfigured.
    """
    vendors: dict[str, Any] = {}
    if "opentext" in urls:
        vendors["opentext"] = {
            "base_url": urls["opentext"],
            "tenant_id": _OPENTEXT_TENANT,
            "client_id": _OPENTEXT_CLIENT[0],
            "client_secret": _OPENTEXT_CLIENT[1],
            "job_poll_interval": 1.0,
        }
    if "canto" in urls:
        vendors["canto"] = {
            "base_url": urls["canto"],
            "oauth_url": urls["canto"],
            "app_id": _CANTO_APP[0],
            "app_secret": _CANTO_APP[1],
        }
    if "iconik" in urls:
        vendors["iconik"] = {
            "base_url": urls["iconik"],
            "app_id": _ICONIK_APP[0],
            "auth_token": _ICONIK_APP[1],
        }
    if "confluence" in urls:
        vendors["confluence"] = {
            "flavour": "cloud",
            "base_url": urls["confluence"],
            "email": _CONFLUENCE_LOGIN[0],
            "api_token": _CONFLUENCE_LOGIN[1],
        }
    data: dict[str, Any] = {
        "environments": {
            "dev": {"description": "Development", **vendors},
            "test": {"description": "Integration test", **vendors},
            "prod": {"description": "Production", "production": True, **vendors},
        },
        "solutions": [
            {
                "name": "orders-edi",
                "description": "EDI order intake from trading partners",
                "team": "integration",
                "channel": "#orders-edi",
                "confluence_space": "INT",
                "artifacts": [
                    "orders-edi.orders-inbound-api",
                    "orders-edi.orders-d96a-to-xml",
                    "orders-edi.orders-as2-partners",
                ],
                "downstream_systems": ["SAP ERP", "Warehouse WMS"],
            },
            {
                "name": "invoices",
                "description": "Invoices to customers and the archive",
                "team": "integration",
                "channel": "#invoices",
                "confluence_space": "INT",
                "artifacts": [
                    "invoices.invoice-outbound-api",
                    "invoices.invoice-xml-to-ubl",
                    "invoices.invoice-sftp-delivery",
                ],
                "downstream_systems": ["Invoice archive (SFTP)", "Peppol access point"],
            },
            {
                "name": "shipping-notices",
                "description": "Advance shipping notices between X12 and EDIFACT partners",
                "team": "integration",
                "channel": "#shipping-notices",
                "confluence_space": "INT",
                "artifacts": ["shipping-notices.asn-856-to-desadv"],
                "downstream_systems": ["Carrier portal"],
            },
        ],
        "groups": {
            "leads": ["U_APP1", "U_APP2"],
            "engineers": ["U_REQ", "U_APP1", "U_APP2"],
            "oncall": ["U_APP1"],
        },
        "slack": {
            "approvals_channel": "C_APPROVALS",
            "alerts_channel": "C_ALERTS",
            "channels": {channel.name: channel.id for channel in DEMO_CHANNELS},
        },
        "policies": [
            {
                "name": "prod-promotions",
                "action": "promotion",
                "environment": "prod",
                "approvers": {"groups": ["leads"]},
                "min_approvals": 2,
                "requesters": {"groups": ["engineers"]},
                "expires_after": "24h",
                "break_glass": {"groups": ["oncall"], "review_within": "48h"},
            },
            {
                "name": "prod-changes",
                "action": "*",
                "environment": "prod",
                "approvers": {"groups": ["leads"]},
                "min_approvals": 1,
                "requesters": {"groups": ["engineers"]},
            },
            {
                "name": "test-changes",
                "action": "*",
                "environment": "test",
                "approvers": {"groups": ["leads"]},
                "min_approvals": 1,
                "requesters": {"groups": ["engineers"]},
                "expires_after": "8h",
            },
            {
                "name": "dev-changes",
                "action": "*",
                "environment": "dev",
                "approvers": {"groups": ["engineers"]},
                "min_approvals": 1,
            },
        ],
        "credentials": [
            {
                "name": "orders-edi-prod",
                "environment": "prod",
                "credential_id": "orders-edi-prod-client",
                "owner": "U_REQ",
                "owner_channel": "C_ORDERS",
                "schedule": "90d",
                "grace_period": "24h",
                "store": "local",
            },
            {
                "name": "invoices-test",
                "environment": "test",
                "credential_id": "invoices-test-client",
                "owner": "U_REQ",
                "owner_channel": "C_INVOICES",
                "schedule": "90d",
                "grace_period": "1h",
                "store": "local",
            },
        ],
        "destinations": [
            {
                "name": "retailer-a",
                "environment": "prod",
                "iconik_storage": "Export - Retailer A",
                "partner": "Retailer A",
                "required_metadata": ["Campaign", "Product Line", "Region", "Rights"],
                "metadata_view": "Release",
                "field_mapping": {
                    "Campaign": "campaign",
                    "Region": "region",
                    "Rights": "rights",
                    "expirationDate": "expires_on",
                    "id": "canto_asset_id",
                },
                "release_values": {"release_status": ["released"], "partner_destination": ["Retailer A"]},
                "release_log_page": {"space": "MEDIA", "title": "Retailer A releases"},
            },
        ],
        # Alerts show at once in the demo instead of after the production grouping wait.
        "alerts": {"default_channel": "C_ALERTS", "group_wait": "0s", "group_interval": "30s"},
    }
    return OpsgateConfig.model_validate(data)


class WiredBot(Protocol):
    """What wiring the bot returns: the workflows it registered, and a way to close connectors."""

    @property
    def workflows(self) -> Mapping[Action, Workflow]: ...

    async def aclose(self) -> None: ...


BotWiring = Callable[[OpsgateService, Settings, OpsgateConfig], Awaitable[WiredBot]]


async def _production_wiring(service: OpsgateService, settings: Settings, config: OpsgateConfig) -> WiredBot:
    from bot.wiring.root import wire

    return await wire(service, settings, config)


@dataclass
class DemoStack:
    """Everything ``start_demo`` started; ``close()`` stops it all (bounded, never raises)."""

    console_url: str
    bot_url: str
    emulators: EmulatorSet
    slack_app: web.Application
    service: OpsgateService
    settings: Settings
    config: OpsgateConfig
    workflows: Mapping[Action, Workflow]
    _closers: list[tuple[str, Callable[[], Any]]] = field(default_factory=list, repr=False)

    @property
    def slack_url(self) -> str:
        """The Slack emulator (same server as the console): Web API under /api/."""
        return self.console_url

    async def close(self) -> None:
        await _close_all(self._closers)


async def _close_all(closers: list[tuple[str, Callable[[], Any]]]) -> None:
    """Run closers newest first, each bounded by what is left of the shutdown budget."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SHUTDOWN_BUDGET_SECONDS
    while closers:
        name, closer = closers.pop()
        try:
            await asyncio.wait_for(closer(), timeout=max(0.1, deadline - loop.time()))
        except Exception:  # a part that fails to stop must not keep the others running
            log.warning("demo: stopping %s failed", name, exc_info=True)


async def start_demo(
    *,
    port: int = 3000,
    host: str = "127.0.0.1",
    data_dir: Path,
    workflows_factory: WorkflowsFactory | None = None,
    wiring: BotWiring | None = None,
) -> DemoStack:
    """Start emulators, Slack emulator + console on host:port (0: any free port) and the bot.

    The bot is wired as in production (``bot.wiring.root.wire``: connectors, workflows, alerts,
    schedules) unless ``wiring`` replaces that step, or ``workflows_factory`` gives the bot just
    the workflows it returns (tests use it to run without vendor calls).
    """
    closers: list[tuple[str, Callable[[], Any]]] = []
    try:
        return await _start(port, host, data_dir, workflows_factory, wiring or _production_wiring, closers)
    except BaseException:
        await _close_all(closers)
        raise


async def _start(
    port: int,
    host: str,
    data_dir: Path,
    workflows_factory: WorkflowsFactory | None,
    wiring: BotWiring,
    closers: list[tuple[str, Callable[[], Any]]],
) -> DemoStack:
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    emulators = await serve_all(host, 0)
    closers.append(("vendor emulators", emulators.close))
    config = demo_config(emulators.urls)

    signing_secret = secrets.token_hex(16)
    endpoints: dict[str, str] = {}
    slack_app = create_slack_app(seed=DEMO_SEED)
    add_console_routes(
        slack_app,
        driver_factory=lambda: SlackDriver(
            endpoints["bot"] + "/slack/events", signing_secret, endpoints["slack"], DEMO_SEED.team_id
        ),
        fault_targets=emulators.urls,
        user_labels=DEMO_USER_LABELS,
        tips=DEMO_TIPS,
    )
    try:
        slack_runner, slack_url = await start_app(slack_app, host, port)
    except OSError as exc:
        raise OSError(
            exc.errno or errno.EADDRINUSE,
            f"cannot listen on http://{host}:{port}/ ({exc.strerror or exc}); choose another port",
        ) from exc
    closers.append(("Slack emulator and console", slack_runner.cleanup))
    endpoints["slack"] = slack_url

    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{(data_dir / 'opsgate-demo.db').resolve()}",
        slack_bot_token=DEFAULT_BOT_TOKEN,
        slack_signing_secret=signing_secret,
        slack_api_url=slack_url + "/api/",
        opsgate_secret_key_file=data_dir / "opsgate-demo.key",
    )
    if workflows_factory is not None:
        workflows, registry = workflows_factory(settings, config)
        closers.append(("connectors", registry.aclose))
        service = await build_service(settings, config, workflows=workflows)
        closers.append(("bot runtime", lambda: service.stop(timeout=_BOT_STOP_TIMEOUT)))
    else:
        service = await build_service(settings, config)
        wired: WiredBot | None = None

        async def stop_bot() -> None:
            # The runtime first: its jobs and scheduled duties still use the connectors.
            await service.stop(timeout=_BOT_STOP_TIMEOUT)
            if wired is not None:
                await wired.aclose()

        closers.append(("bot runtime and connectors", stop_bot))
        # Wired before its web app starts: wiring adds routes (alerts, webhooks) to it.
        wired = await wiring(service, settings, config)
        workflows = wired.workflows
    bot_runner, bot_url = await start_app(service.web, host, 0)
    closers.append(("bot HTTP server", bot_runner.cleanup))
    endpoints["bot"] = bot_url
    service.runtime.start_loops(with_scheduler=True)
    return DemoStack(
        console_url=slack_url,
        bot_url=bot_url,
        emulators=emulators,
        slack_app=slack_app,
        service=service,
        settings=settings,
        config=config,
        workflows=dict(workflows),
        _closers=closers,
    )


def demo_guide(stack: DemoStack) -> str:
    """What run_demo prints: where to look and what to try."""
    emulator_lines = "\n".join(f"    {name:<11} {url}" for name, url in stack.emulators.urls.items())
    kinds = (
        ", ".join(sorted(action.value for action in stack.workflows))
        or "none (requests open, execution fails)"
    )
    return f"""
opsgate demo is running.

  Console:  {stack.console_url}/
  Bot:      {stack.bot_url}/slack/events (signed requests only; the console sends them)
  Emulators:
{emulator_lines}
  Database: {stack.settings.database_url}
  Workflows wired: {kinds}

Try this in the console:
  1. As Rhea (requester), in #approvals type:
       /promote orders-edi.orders-d96a-to-xml 2.4.0 test prod Map FTX+DEL free text
  2. Switch to Oscar (outsider) and click Approve: he is told he may not.
  3. Switch to Alex, then Bea (approvers) and click Approve: the message updates and the
     thread shows the execution.
  4. Click "OpenText promote fails", promote again, approve, and watch #alerts.
  5. Type /promote with no arguments for the form; open "opsgate · Home" for the App Home.

Ctrl-C stops everything.
"""


async def run_demo(
    *,
    port: int = 3000,
    host: str = "127.0.0.1",
    data_dir: Path,
    workflows_factory: WorkflowsFactory | None = None,
    wiring: BotWiring | None = None,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
    out: Callable[[str], None] = print,
) -> None:
    """Run the demo until Ctrl-C / SIGTERM (or ``stop`` is set); sets ``ready`` once serving."""
    stack = await start_demo(
        port=port, host=host, data_dir=data_dir, workflows_factory=workflows_factory, wiring=wiring
    )
    stop_event = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    if stop is None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop_event.set)
                handled.append(sig)
    try:
        out(demo_guide(stack))
        if ready is not None:
            ready.set()
        await stop_event.wait()
        out("opsgate demo: stopping…")
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await stack.close()
