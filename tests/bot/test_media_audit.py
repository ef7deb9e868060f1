"""Media audit: iconik history of released assets imported into the audit trail, once.

The iconik emulator runs over loopback; released assets come from succeeded REL- requests as
the release workflow stores them (`result["iconik_asset_id"]`). Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr
from sqlalchemy import select

from bot.db.asset_request_models import MediaHistoryImport
from bot.db.audit_log import export_events, verify_chain
from bot.db.models import AuditEvent, ChangeRequestRow
from bot.domain.audit import Fingerprinter
from bot.domain.requests import FrozenClock
from bot.media_audit import MediaAudit, media_import_duty
from commands.parsing import OpsArgs, OpsSub, UsageError, format_text, parse_ops
from connectors.emulators.faults import start_app
from connectors.emulators.iconik import DEFAULT_APP_ID, DEFAULT_AUTH_TOKEN, create_app, iconik_domain_of
from connectors.http import HttpOptions
from connectors.iconik import IconikConnector, IconikSettings

SHARE_ID = "5b0e7a52-share-link-3c1d"
APP_TOKEN = "iconik-app-token-value-9f1e"


@dataclass
class MediaWorld:
    database: Any
    clock: FrozenClock
    app: web.Application
    url: str
    audit: MediaAudit
    fingerprinter: Fingerprinter

    def asset(self, index: int) -> dict[str, Any]:
        """A seeded iconik asset (with its Canto external id)."""
        return list(iconik_domain_of(self.app).assets.values())[index]

    async def record(self, asset_id: str, operation: str, **fields: Any) -> dict[str, Any]:
        """Someone does something to the asset in iconik."""
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{self.url}/_control/iconik/history",
                json={"asset_id": asset_id, "operation_type": operation, **fields},
            )
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def fault(self, **spec: Any) -> None:
        async with httpx.AsyncClient() as client:
            (await client.post(f"{self.url}/_control/faults", json=spec)).raise_for_status()

    async def release(
        self, ref: str, asset: dict[str, Any], *, status: str = "succeeded", kind: str = "release"
    ) -> None:
        """A release request as commands/release.py leaves it."""
        now = self.clock()
        canto = asset["external_id"].removeprefix("canto:")
        async with self.database.sessions() as session, session.begin():
            session.add(
                ChangeRequestRow(
                    human_id=ref, kind=kind, target=canto, environment="prod",
                    parameters={"asset": canto, "destination": "retailer-a"}, params_hash="0" * 64,
                    requester="U_REQ", reason="", status=status, policy_name="releases", policy_snapshot={},
                    emergency=False, created_at=now, updated_at=now, expires_at=now + timedelta(days=1),
                    result={"asset": canto, "iconik_asset_id": asset["id"], "destination": "retailer-a"}
                    if status == "succeeded" else None,
                )
            )  # fmt: skip

    async def events(self, subject: str | None = None) -> list[AuditEvent]:
        async with self.database.sessions() as session:
            query = select(AuditEvent).order_by(AuditEvent.seq)
            if subject is not None:
                query = query.where(AuditEvent.subject == subject)
            return list((await session.scalars(query)).all())


@pytest.fixture
async def world(database: Any, fingerprinter: Fingerprinter) -> AsyncIterator[MediaWorld]:
    clock = FrozenClock()
    app = create_app(now=clock)
    runner, url = await start_app(app)
    iconik = IconikConnector(
        IconikSettings(base_url=url, app_id=DEFAULT_APP_ID, auth_token=SecretStr(DEFAULT_AUTH_TOKEN),
                       http=HttpOptions(max_retries=0))
    )  # fmt: skip
    audit = MediaAudit(database.sessions, lambda environment: iconik, fingerprinter, clock)
    yield MediaWorld(database, clock, app, url, audit, fingerprinter)
    await iconik.aclose()
    await runner.cleanup()


async def released_with_history(world: MediaWorld) -> dict[str, Any]:
    """REL-1 released asset 0; in iconik a partner then downloaded it through a share and it was exported."""
    asset = world.asset(0)
    await world.release("REL-1", asset)
    world.clock.advance(timedelta(hours=1))
    await world.record(asset["id"], "DOWNLOAD", user_id="u-marta", share_id=SHARE_ID, share_user_id="partner-ext-7",
                       operation_description="Original downloaded via share link")  # fmt: skip
    world.clock.advance(timedelta(hours=1))
    await world.record(asset["id"], "EXPORT", user_id="u-svc-export", app_token=APP_TOKEN,
                       operation_description="Exported to Retailer A")  # fmt: skip
    return asset


# -- import --------------------------------------------------------------------------------------------


async def test_the_history_of_a_released_asset_becomes_audit_events(world: MediaWorld) -> None:
    asset = await released_with_history(world)

    report = await world.audit.import_history()

    assert (report.assets, report.added, report.failed) == (1, 4, [])  # 2 seeded + download + export
    events = await world.events(f"asset:{asset['id']}")
    assert [e.action for e in events] == [
        "media.transcode",
        "media.metadata",
        "media.download",
        "media.export",
    ]
    download, export = events[2], events[3]
    assert download.actor == "iconik:partner-ext-7"
    assert download.occurred_at == world.clock.now - timedelta(hours=1)
    assert download.reason == "Original downloaded via share link"
    assert download.evidence["environment"] == "prod"
    assert download.evidence["iconik_user"] == "u-marta"
    assert download.evidence["release_ref"] == "REL-1"
    assert download.evidence["canto_asset"] == asset["external_id"].removeprefix("canto:")
    assert download.evidence["credential"] == {
        "kind": "share",
        "fingerprint": world.fingerprinter.fingerprint(SHARE_ID),
    }
    assert export.actor == "iconik:u-svc-export"
    assert export.evidence["credential"] == {
        "kind": "app_token",
        "fingerprint": world.fingerprinter.fingerprint(APP_TOKEN),
    }
    stored = json.dumps([e.evidence for e in events])
    assert SHARE_ID not in stored and APP_TOKEN not in stored
    assert download.evidence["iconik_history_id"] != export.evidence["iconik_history_id"]


async def test_a_re_import_adds_nothing_and_a_new_entry_is_added_once(world: MediaWorld) -> None:
    asset = await released_with_history(world)
    await world.audit.import_history()

    again = await world.audit.import_history()

    assert again.added == 0
    assert len(await world.events()) == 4
    await world.record(asset["id"], "TRANSFER", user_id="u-ops", operation_description="Copied to archive")
    assert (await world.audit.import_history()).added == 1
    assert (await world.audit.import_history()).added == 0
    events = await world.events()
    assert [e.action for e in events][-1] == "media.transfer"
    checked, problem = await verify_chain(world.database.engine)
    assert problem is None and checked == 5
    async with world.database.sessions() as session:
        markers = (await session.scalars(select(MediaHistoryImport).order_by(MediaHistoryImport.id))).all()
    assert [m.audit_seq for m in markers] == [1, 2, 3, 4, 5]


async def test_only_assets_of_succeeded_releases_are_imported(world: MediaWorld) -> None:
    released = await released_with_history(world)
    await world.release("REL-2", world.asset(1), status="failed")
    await world.release("PRM-3", world.asset(2), kind="promotion")
    await world.release("REL-4", released)  # released twice: imported once, newest release named

    report = await world.audit.import_history()

    assert report.assets == 1
    events = await world.events()
    assert {e.subject for e in events} == {f"asset:{released['id']}"}
    assert {e.evidence["release_ref"] for e in events} == {"REL-4"}


async def test_an_unreachable_iconik_skips_that_asset_and_the_next_run_catches_up(world: MediaWorld) -> None:
    asset = await released_with_history(world)
    await world.fault(path="/history/", status=503, times=1)

    failed = await world.audit.import_history()
    caught_up = await world.audit.import_history()

    assert (failed.added, failed.failed) == (0, [asset["id"]])
    assert (caught_up.added, caught_up.failed) == (4, [])


async def test_the_scheduled_duty_imports_and_never_raises(world: MediaWorld) -> None:
    await released_with_history(world)
    await world.fault(path=".*", status=500)

    await media_import_duty(world.audit)()  # iconik down: logged, not raised

    assert await world.events() == []


# -- /ops audit asset -------------------------------------------------------------------------------------


async def test_ops_audit_asset_says_who_when_what_which_credential_and_where(world: MediaWorld) -> None:
    asset = await released_with_history(world)

    reply = await world.audit.audit_asset(asset["id"])

    lines = reply.text.splitlines()
    assert lines[0].startswith(f"*Media audit of asset `{asset['id']}`*") and "4 events" in lines[0]
    download = next(line for line in lines if "*download*" in line)
    short = Fingerprinter.short(world.fingerprinter.fingerprint(SHARE_ID))
    assert "by `iconik:partner-ext-7`" in download and "in *prod*" in download
    assert f"via share `{short}`" in download and "Original downloaded via share link" in download
    assert (world.clock.now - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S UTC") in download
    export = next(line for line in lines if "*export*" in line)
    assert "via app_token" in export and APP_TOKEN not in reply.text and SHARE_ID not in reply.text


async def test_ops_audit_asset_shows_the_newest_events_and_points_to_the_export(world: MediaWorld) -> None:
    asset = world.asset(0)
    await world.release("REL-1", asset)
    for minute in range(45):
        world.clock.advance(timedelta(minutes=1))
        await world.record(asset["id"], "DOWNLOAD", user_id=f"u-{minute:02d}")

    reply = await world.audit.audit_asset(asset["id"])

    lines = reply.text.splitlines()
    assert "47 events" in lines[0]
    assert lines[1] == f"Newest 40 shown; all of them: `opsgate audit export --asset {asset['id']}`"
    bullets = [line for line in lines if line.startswith("• ")]
    assert len(bullets) == 40 and "`iconik:u-44`" in bullets[-1] and "`iconik:u-05`" in bullets[0]


async def test_ops_audit_asset_accepts_the_canto_asset_id_and_imports_first(world: MediaWorld) -> None:
    asset = await released_with_history(world)
    canto = asset["external_id"].removeprefix("canto:")

    by_scheme_and_id = await world.audit.audit_asset(canto)
    by_bare_id = await world.audit.audit_asset(canto.split(":", 1)[1])

    assert f"(iconik `{asset['id']}`; 4 events" in by_scheme_and_id.text
    assert f"(iconik `{asset['id']}`; 4 events" in by_bare_id.text
    assert len(await world.events()) == 4  # asked twice, imported once


async def test_ops_audit_asset_of_an_unknown_asset_says_nothing_is_recorded(world: MediaWorld) -> None:
    reply = await world.audit.audit_asset("no-such-asset")

    assert reply.text.startswith("No media history recorded for asset `no-such-asset`")


async def test_ops_audit_asset_warns_when_iconik_does_not_answer(world: MediaWorld) -> None:
    asset = await released_with_history(world)
    await world.audit.import_history()
    await world.record(asset["id"], "DELETE_FILE", user_id="u-ops")
    await world.fault(path="/history/", status=503)

    reply = await world.audit.audit_asset(asset["id"])

    assert ":warning: iconik (prod) did not answer" in reply.text
    assert "4 events" in reply.text and "*delete_file*" not in reply.text


# -- compliance export -------------------------------------------------------------------------------------


async def test_export_by_asset_holds_only_that_assets_media_events(world: MediaWorld, tmp_path: Path) -> None:
    asset = await released_with_history(world)
    other = world.asset(1)
    await world.release("REL-2", other)
    await world.audit.import_history()

    lines = [
        line
        async for line in export_events(world.database.engine, fmt="jsonl", subject=f"asset:{asset['id']}")
    ]

    rows = [json.loads(line) for line in lines]
    assert [r["action"] for r in rows] == [
        "media.transcode",
        "media.metadata",
        "media.download",
        "media.export",
    ]
    assert all(r["subject"] == f"asset:{asset['id']}" and len(r["hash"]) == 64 for r in rows)
    assert len(await world.events()) == 6  # the other asset's two entries are not in this export
    if world.database.backend != "sqlite":
        return  # the CLI reads DATABASE_URL; the PostgreSQL half runs in a private schema
    env = {"DATABASE_URL": world.database.url, "PATH": "/usr/bin:/bin"}
    exported = subprocess.run([sys.executable, "-m", "bot.cli", "audit", "export", "--asset", asset["id"]],
                              capture_output=True, text=True, env=env, cwd=tmp_path, check=False)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert [json.loads(line)["seq"] for line in exported.stdout.splitlines()] == [r["seq"] for r in rows]
    both = subprocess.run([sys.executable, "-m", "bot.cli", "audit", "export", "--asset", "x", "--subject", "y"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, check=False)  # fmt: skip
    assert both.returncode == 2 and "--asset or --subject" in both.stderr


# -- parsing `/ops audit asset <id>` ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("audit asset 3f2a-77", OpsArgs(OpsSub.AUDIT, asset="3f2a-77")),
        ("audit ASSET image:abc123", OpsArgs(OpsSub.AUDIT, asset="image:abc123")),
        ("audit rel-7", OpsArgs(OpsSub.AUDIT, ref="REL-7")),
    ],
)
def test_ops_audit_takes_a_request_id_or_asset_and_an_asset_id(text: str, expected: OpsArgs) -> None:
    parsed = parse_ops(text)

    assert parsed == expected
    assert parse_ops(format_text(parsed)) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("audit asset", "missing <asset-id>"),
        ("audit asset abc def", "unexpected 'def'"),
        ("audit asset 'two words'", "<asset-id> 'two words' must be one word"),
        ('audit "asset"', "'asset' is not a request ID"),
    ],
)
def test_ops_audit_asset_usage_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_ops(text)

    assert message in caught.value.message
    assert caught.value.usage == "/ops audit <ID> | audit asset <asset-id>"
