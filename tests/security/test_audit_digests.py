"""Signed audit digests: an insider with write access to the database cannot shorten or rewrite
the audit trail unnoticed.

Each insider edit below passes the hash chain check on its own (the insider rehashes the chain
and moves the head row); the digests, signed with a key the database never holds and written
outside it, catch and name every one, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, text, update

from bot.config.opsgate import Settings, parse_config
from bot.db.audit_log import TrailVerification, append_event, event_body, head_snapshot, verify_trail
from bot.db.digest_files import DigestDirectory
from bot.db.models import AuditEvent, AuditHead
from bot.domain.alerts import AlertEvent
from bot.domain.audit import GENESIS_HASH, AuditRecord, chain_hash
from bot.domain.audit_digest import AuditDigest, DigestSigner, FindingKind, digest_hash
from bot.domain.requests import FrozenClock
from bot.emulators.slack import create_app as create_slack
from bot.emulators.slack_control import workspace_of
from bot.emulators.slack_seed import DEFAULT_BOT_TOKEN, DEFAULT_CHANNELS, SlackChannel
from bot.jobs.audit_digests import (
    DIGEST_FAILED_KEY,
    TRAIL_CHANGED_KEY,
    AuditDigestDuty,
    DigestFailed,
    DigestWritten,
)
from bot.wiring.root import Wiring, wire
from bot.wiring.service import OpsgateService, build_service
from connectors.emulators.faults import start_app

# -- the world: a trail, a digest directory, a signing key ------------------------------------------------


@dataclass
class Trail:
    database: Any
    fingerprinter: Any
    directory: DigestDirectory
    signer: DigestSigner
    clock: FrozenClock = field(default_factory=FrozenClock)
    alerts: list[AlertEvent] = field(default_factory=list)
    appended: int = 0

    async def append(self, count: int) -> None:
        for _ in range(count):
            self.appended += 1
            self.clock.advance(timedelta(seconds=1))
            async with self.database.sessions() as session, session.begin():
                await append_event(
                    session,
                    AuditRecord(occurred_at=self.clock(), actor=f"U{self.appended}", action="request.approved",
                                request_ref=f"PRM-{self.appended}", reason="looks good",
                                evidence={"n": self.appended}),
                    self.fingerprinter,
                )  # fmt: skip

    def duty(self, signer: DigestSigner | None = None) -> AuditDigestDuty:
        async def collect(event: AlertEvent) -> None:
            self.alerts.append(event)

        return AuditDigestDuty(engine=self.database.engine, directory=self.directory,
                               signer=signer or self.signer, clock=self.clock, alert=collect)  # fmt: skip

    async def digest(self) -> DigestWritten:
        self.clock.advance(timedelta(minutes=15))
        outcome = await self.duty().run()
        assert isinstance(outcome, DigestWritten), outcome
        return outcome

    async def verify(self, *, processes: int = 1) -> TrailVerification:
        reading = self.directory.read()
        assert reading.problems == []
        kwargs = {"connect_args": self.database.connect_args} if self.database.connect_args else None
        return await asyncio.to_thread(
            verify_trail, self.database.url, processes=processes, digests=reading.files, keys=reading.keys,
            engine_kwargs=kwargs,
        )  # fmt: skip

    async def sql(self, statement: str, **params: Any) -> None:
        async with self.database.sessions() as session, session.begin():
            await session.execute(text(statement), params)

    async def rehash_from(self, first_seq: int) -> None:
        """The insider's tool: recompute every hash from `first_seq` on and move the head to match."""
        async with self.database.sessions() as session, session.begin():
            events = (await session.scalars(select(AuditEvent).order_by(AuditEvent.seq))).all()
            prev = GENESIS_HASH
            for event in events:
                if event.seq >= first_seq:
                    event.prev_hash = prev
                    event.hash = chain_hash(prev, event_body(event))
                prev = event.hash
            await session.execute(
                update(AuditHead)
                .where(AuditHead.id == 1)
                .values(seq=events[-1].seq if events else 0, hash=prev)
            )


@pytest.fixture
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def signer(signing_key: Ed25519PrivateKey) -> DigestSigner:
    return DigestSigner(signing_key)


@pytest.fixture
async def trail(database, fingerprinter, signer, tmp_path: Path) -> Trail:
    """Events 1..3, digest 1 (at event 3), events 4..6, digest 2 (at event 6)."""
    world = Trail(database, fingerprinter, DigestDirectory(tmp_path / "digests"), signer)
    await world.append(3)
    await world.digest()
    await world.append(3)
    await world.digest()
    return world


def kinds(result: TrailVerification) -> list[FindingKind]:
    return [f.kind for f in result.findings]


def finding(result: TrailVerification, kind: FindingKind) -> str:
    [message] = [f.message for f in result.findings if f.kind is kind]
    return message


# -- an intact trail --------------------------------------------------------------------------------------


async def test_an_intact_trail_and_its_digests_verify(trail: Trail):
    await trail.append(2)  # events after the newest digest are simply not anchored yet

    result = await trail.verify()

    assert result.intact and result.count == 8
    assert [d.digest_seq for d in result.digests] == [1, 2]
    assert [d.last_seq for d in result.digests] == [3, 6]


async def test_digests_chain_and_record_the_head(trail: Trail):
    first, second = (f.digest for f in trail.directory.read().files)
    async with trail.database.sessions() as session:
        head = (await session.scalars(select(AuditHead))).one()
        sixth = await session.get(AuditEvent, 6)
    assert (second.last_seq, second.event_count, second.last_hash) == (6, 6, sixth.hash)
    assert (head.seq, head.hash) == (6, sixth.hash)
    assert second.last_event_at == event_body(sixth)["occurred_at"]
    assert first.previous_digest_hash == GENESIS_HASH and second.previous_digest_hash != GENESIS_HASH
    assert second.key_id == trail.signer.key_id


# -- the four insider edits -------------------------------------------------------------------------------


async def test_deleting_the_newest_events_and_moving_the_head_is_named_truncation(trail: Trail):
    await trail.sql("DELETE FROM audit_events WHERE seq > 4")
    await trail.rehash_from(5)  # the head now points at event 4: the chain alone says "intact"

    result = await trail.verify()

    assert result.chain_break is None
    assert kinds(result) == [FindingKind.TRUNCATION]
    assert finding(result, FindingKind.TRUNCATION).startswith("digest 2 of ")
    assert "recorded event 6 but the trail ends at event 4: events 5..6 were deleted" in finding(
        result, FindingKind.TRUNCATION
    )


async def test_wiping_the_trail_and_resetting_the_head_is_named_wipe(trail: Trail):
    await trail.sql("DELETE FROM audit_events")
    await trail.sql("UPDATE audit_head SET seq = 0, hash = :h", h=GENESIS_HASH)

    result = await trail.verify()

    assert result.chain_break is None and result.count == 0
    assert kinds(result) == [FindingKind.WIPE]
    assert "the trail is empty but 2 digest(s) recorded events" in finding(result, FindingKind.WIPE)
    assert "recorded 6 events up to event 6" in finding(result, FindingKind.WIPE)


async def test_editing_an_event_and_rehashing_the_chain_is_named_recompute(trail: Trail):
    await trail.sql("UPDATE audit_events SET actor = 'U_MALLORY' WHERE seq = 5")
    await trail.rehash_from(5)

    result = await trail.verify()

    assert result.chain_break is None
    assert kinds(result) == [FindingKind.RECOMPUTE]
    message = finding(result, FindingKind.RECOMPUTE)
    assert message.startswith("digest 2 of ") and "recorded event 6 with hash" in message
    assert "event 6 itself is unchanged, so an event after event 3 (digest 1 of " in message
    assert "was edited and the chain rehashed" in message


async def test_renumbering_events_to_hide_a_deletion_is_named_renumber(trail: Trail):
    await trail.sql("DELETE FROM audit_events WHERE seq = 2")
    for seq in range(3, 7):  # close the gap, lowest first so the primary key never collides
        await trail.sql("UPDATE audit_events SET seq = :new WHERE seq = :old", new=seq - 1, old=seq)
    await trail.rehash_from(2)

    result = await trail.verify()

    assert result.chain_break is None and result.count == 5
    assert kinds(result) == [FindingKind.RENUMBER]
    message = finding(result, FindingKind.RENUMBER)
    assert message.startswith("digest 1 of ") and "recorded event 3" in message
    assert "that event is now number 2: sequence numbers were shifted" in message
    assert message.endswith("(1 other digest(s) show the same)")


async def test_renumbering_without_rehashing_is_named_too(trail: Trail):
    for seq in range(6, 0, -1):  # shift every event up by one, highest first
        await trail.sql("UPDATE audit_events SET seq = :new WHERE seq = :old", new=seq + 1, old=seq)
    await trail.sql("UPDATE audit_head SET seq = 7")

    result = await trail.verify()

    assert result.chain_break is not None  # the chain catches this clumsier one on its own
    assert "recorded event 3 (hash" in finding(result, FindingKind.RENUMBER)
    assert "that event is now number 4" in finding(result, FindingKind.RENUMBER)


async def test_a_digest_written_after_the_edit_does_not_hide_it_and_raises_an_alert(trail: Trail):
    await trail.sql("DELETE FROM audit_events WHERE seq > 4")
    await trail.rehash_from(5)

    third = await trail.digest()  # the bot signs the shortened head: it is what the database says

    assert third.digest.last_seq == 4
    assert third.tampering and "events 5..6 were deleted" in third.tampering[0]
    [alert] = [a for a in trail.alerts if a.dedup_key == TRAIL_CHANGED_KEY]
    assert alert.severity == "critical" and "events 5..6 were deleted" in alert.summary
    assert "opsgate audit verify --digests" in alert.summary
    result = await trail.verify()
    assert kinds(result) == [FindingKind.TRUNCATION], "digest 2 still remembers event 6"


async def test_ranges_verified_in_parallel_find_the_same(trail: Trail, monkeypatch):
    from bot.db import audit_log

    monkeypatch.setattr(audit_log, "PARALLEL_MIN_EVENTS", 2)
    await trail.sql("UPDATE audit_events SET reason = 'nothing to see' WHERE seq = 2")
    await trail.rehash_from(2)

    one, three = await trail.verify(processes=1), await trail.verify(processes=3)

    assert kinds(one) == kinds(three) == [FindingKind.RECOMPUTE]
    assert one.findings == three.findings and one.count == three.count == 6


# -- the digests themselves -------------------------------------------------------------------------------


async def test_a_forged_digest_does_not_cover_a_truncation(trail: Trail, tmp_path: Path):
    """The insider cuts the trail and replaces digest 2 with one that agrees, signed by his own key."""
    await trail.sql("DELETE FROM audit_events WHERE seq > 4")
    await trail.rehash_from(5)
    forger = DigestSigner(Ed25519PrivateKey.generate())
    first = trail.directory.read().files[0].digest
    forged = forger.sign(await head_snapshot(trail.database.engine), previous=first, created_at=trail.clock())
    (trail.directory.path / "digest-000000000002.json").write_bytes(json.dumps(forged.document()).encode())

    result = await trail.verify()

    assert result.chain_break is None
    assert kinds(result) == [FindingKind.SIGNATURE]
    assert finding(result, FindingKind.SIGNATURE) == (
        f"digest-000000000002.json: signed by {forger.key_id}, which is not a trusted key"
    )
    assert [d.digest_seq for d in result.digests] == [1], "only the genuine digest is compared with the trail"


async def test_an_edited_digest_file_fails_its_signature_even_inside_the_chain(trail: Trail):
    await trail.digest()
    path = trail.directory.path / "digest-000000000002.json"
    document = json.loads(path.read_text())
    document["last_seq"] = 4  # make the digest agree with a trail cut at 4
    path.write_text(json.dumps(document))

    result = await trail.verify()

    assert [str(f) for f in result.findings] == [
        f"signature: digest-000000000002.json: the signature does not verify with {trail.signer.key_id}: "
        "the digest was forged or edited",
        "gap: digest-000000000003.json: its previous-digest hash does not match digest-000000000002.json: "
        "a digest between them was replaced",
    ]
    assert [d.digest_seq for d in result.digests] == [1, 3]


async def test_the_duty_does_not_chain_onto_a_forged_newest_digest(trail: Trail, signing_key):
    path = trail.directory.path / "digest-000000000002.json"
    document = json.loads(path.read_text())
    document["created_at"] = "2020-01-01T00:00:00.000000+00:00"
    path.write_text(json.dumps(document))

    third = await trail.digest()

    assert third.digest.digest_seq == 3
    assert third.digest.previous_digest_hash == digest_hash(trail.directory.load(1))
    assert third.tampering == [f"{path}: does not verify with {trail.signer.key_id}: it was forged or edited"]
    [alert] = [a for a in trail.alerts if a.dedup_key == TRAIL_CHANGED_KEY]
    assert "forged or edited" in alert.summary
    result = await trail.verify()
    assert kinds(result) == [FindingKind.SIGNATURE, FindingKind.GAP]


async def test_a_removed_digest_is_named_a_gap(trail: Trail):
    await trail.digest()
    (trail.directory.path / "digest-000000000002.json").unlink()

    result = await trail.verify()

    assert kinds(result) == [FindingKind.GAP]
    assert (
        finding(result, FindingKind.GAP) == "digest 2 is missing (digest-000000000003.json follows digest 1)"
    )


async def test_digests_are_never_overwritten(trail: Trail):
    path = trail.directory.path / "digest-000000000002.json"
    before = path.read_bytes()
    newest = trail.directory.newest()
    assert newest is not None and newest.digest_seq == 2

    from bot.db.digest_files import DigestExists

    with pytest.raises(DigestExists):
        trail.directory.write(newest)
    assert path.read_bytes() == before
    assert sorted(p.name for p in trail.directory.path.iterdir() if p.name.startswith(".")) == []


# -- the duty: on schedule, at shutdown, and loud when it cannot write --------------------------------------

SIGNING_SECRET = "digest-signing-secret-0123456789abcdef"


@dataclass
class Bot:
    service: OpsgateService
    wiring: Wiring
    clock: FrozenClock
    slack: Any
    digests: Path

    def duty(self) -> Any:
        return next(f for f, _, name in self.service.runtime._scheduled if name == "audit_digests")

    def messages(self, channel: str) -> list[str]:
        return [m.text for m in workspace_of(self.slack).messages(channel)]

    async def settle(self) -> None:
        rt = self.service.runtime
        for _ in range(50):
            await rt.runner.drain()
            report = await rt.delivery.deliver_due()
            if not report.attempted and await rt.delivery.pending_count() == 0:
                return
            self.clock.advance(timedelta(seconds=2))
        raise AssertionError("bot did not settle")


async def start_bot(database: Any, tmp_path: Path, **digest_settings: Any) -> tuple[Bot, Any]:
    clock = FrozenClock()
    channels = (*DEFAULT_CHANNELS, SlackChannel(id="C_AUDIT", name="audit-digests"))
    slack_app = create_slack(clock=lambda: clock().timestamp(), channels=channels)
    runner, slack_url = await start_app(slack_app)
    config = parse_config(
        {
            "environments": {"prod": {}},
            "slack": {"approvals_channel": "C_APPROVALS", "alerts_channel": "C_ALERTS"},
            "alerts": {"default_channel": "C_ALERTS", "group_wait": "1s"},
            "policies": [],
        },
        source="digests",
        env={},
    )
    settings = Settings(database_url=database.url, slack_bot_token=DEFAULT_BOT_TOKEN,
                        slack_signing_secret=SIGNING_SECRET, slack_api_url=slack_url + "/api/",
                        opsgate_secret_key_file=tmp_path / "key", **digest_settings)  # fmt: skip
    service = await build_service(
        settings, config, clock=clock, migrate=False,
        engine_kwargs={"connect_args": database.connect_args} if database.connect_args else None,
    )  # fmt: skip
    wiring = await wire(service, settings, config, env={})
    return Bot(service, wiring, clock, slack_app, tmp_path / "digests"), runner


def raw_key(key: Ed25519PrivateKey) -> str:
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw).decode()


@pytest.fixture
async def bot(database, tmp_path: Path) -> Any:
    key_file = tmp_path / "audit-signing.pem"
    key_file.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    bot, runner = await start_bot(database, tmp_path, opsgate_audit_digest_dir=tmp_path / "digests",
                                  opsgate_audit_signing_key_file=key_file,
                                  opsgate_audit_digest_channel="C_AUDIT")  # fmt: skip
    yield bot
    await bot.service.stop(timeout=1)
    await bot.wiring.aclose()
    await runner.cleanup()


async def test_the_scheduled_duty_writes_a_digest_and_posts_a_copy_to_slack(bot: Bot):
    [interval] = [s for _, s, name in bot.service.runtime._scheduled if name == "audit_digests"]
    assert interval == 15 * 60  # the default

    signed_at = bot.clock()
    await bot.duty()()
    await bot.settle()

    [written] = DigestDirectory(bot.digests).read().files
    assert written.name == "digest-000000000001.json" and written.digest.created == signed_at
    [copy] = bot.messages("C_AUDIT")
    assert copy.startswith(":lock: Audit digest 1: 0 events")
    assert written.digest.signature in copy


async def test_the_last_digest_is_written_at_shutdown_after_the_last_job(database, tmp_path: Path):
    if database.backend != "sqlite":
        pytest.skip("leadership on PostgreSQL is an advisory lock shared by parallel test sessions")
    key = Ed25519PrivateKey.generate()
    bot, runner = await start_bot(database, tmp_path, opsgate_audit_digest_dir=tmp_path / "digests",
                                  opsgate_audit_signing_key=raw_key(key))  # fmt: skip
    try:
        rt = bot.service.runtime
        rt.start_loops(with_scheduler=True, idle_poll=0.05)
        for _ in range(100):
            if rt.leadership is not None and rt.leadership.is_leader:
                break
            await asyncio.sleep(0.02)
        async with rt.deps.sessions() as session, session.begin():
            await append_event(
                session, AuditRecord(occurred_at=bot.clock(), actor="U1", action="request.created"),
                rt.deps.fingerprinter,
            )  # fmt: skip
        assert DigestDirectory(bot.digests).newest() is None  # the first interval has not passed

        await bot.service.stop(timeout=2)

        newest = DigestDirectory(bot.digests).newest()
        assert newest is not None and (newest.digest_seq, newest.last_seq) == (1, 1)
    finally:
        await bot.wiring.aclose()
        await runner.cleanup()


async def test_a_digest_that_cannot_be_written_raises_an_alert_in_slack(database, tmp_path: Path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the digest directory should be")
    bot, runner = await start_bot(database, tmp_path, opsgate_audit_digest_dir=blocked / "digests",
                                  opsgate_audit_signing_key=raw_key(Ed25519PrivateKey.generate()))  # fmt: skip
    try:
        outcome = await bot.duty().run()

        assert isinstance(outcome, DigestFailed) and "not-a-directory/digests" in outcome.reason
        views, _ = await bot.wiring.alerts.list_alerts()
        [alert] = [v for v in views if v.dedup_key == DIGEST_FAILED_KEY]
        assert alert.title == "Audit digest not written"
        bot.clock.advance(timedelta(seconds=2))  # past group_wait
        await bot.wiring.alerts.tick()
        await bot.settle()
        assert any("Audit digest not written" in m for m in bot.messages("C_ALERTS"))

        blocked.unlink()  # the directory can be made now: the next digest resolves the alert
        assert isinstance(await bot.duty().run(), DigestWritten)
        views, _ = await bot.wiring.alerts.list_alerts()
        assert [v for v in views if v.dedup_key == DIGEST_FAILED_KEY] == []
    finally:
        await bot.service.stop(timeout=1)
        await bot.wiring.aclose()
        await runner.cleanup()


async def test_a_missing_signing_key_raises_an_alert_every_run(database, tmp_path: Path):
    bot, runner = await start_bot(database, tmp_path, opsgate_audit_digest_dir=tmp_path / "digests",
                                  opsgate_audit_signing_key_file=tmp_path / "no-such-key.pem")  # fmt: skip
    try:
        outcome = await bot.duty().run()

        assert isinstance(outcome, DigestFailed)
        assert "OPSGATE_AUDIT_SIGNING_KEY_FILE" in outcome.reason and "no-such-key.pem" in outcome.reason
        views, _ = await bot.wiring.alerts.list_alerts()
        assert [v.title for v in views if v.dedup_key == DIGEST_FAILED_KEY] == ["Audit digest not written"]
        assert not bot.digests.exists()
    finally:
        await bot.service.stop(timeout=1)
        await bot.wiring.aclose()
        await runner.cleanup()


@pytest.fixture
async def headless(trail: Trail) -> Any:
    """The trail with its head row deleted; put back afterwards (PostgreSQL's schema outlives the test)."""
    await trail.sql("DELETE FROM audit_head")
    yield trail
    await trail.sql("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)", h=GENESIS_HASH)


async def test_a_deleted_head_row_is_a_failed_digest_not_a_traceback(headless: Trail):
    trail = headless

    outcome = await trail.duty().run()

    assert outcome == DigestFailed("the audit_head row is missing: it was deleted")
    assert [a.dedup_key for a in trail.alerts if a.action == "trigger"] == [DIGEST_FAILED_KEY]
    result = await trail.verify()
    assert "the audit_head row is missing: it was deleted" == finding(result, FindingKind.HEAD)


# -- the command line ---------------------------------------------------------------------------------------


def opsgate(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", **env}, cwd=cwd, check=False)  # fmt: skip


def no_traceback(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    return result


@pytest.fixture
def sqlite_only(database) -> None:
    if database.backend != "sqlite":
        pytest.skip("the CLI reads DATABASE_URL; the PostgreSQL half runs in a private schema")


async def test_cli_names_each_finding_and_exits_1(trail: Trail, sqlite_only, tmp_path: Path):
    env = {"DATABASE_URL": trail.database.url}
    digests = str(trail.directory.path)
    ok = no_traceback(opsgate("audit", "verify", "--digests", digests, env=env, cwd=tmp_path))
    assert ok.returncode == 0, ok.stderr
    assert "audit chain intact: 6 events verified" in ok.stdout
    assert "audit digests intact: 2 digests match the trail; the newest, digest 2 of " in ok.stdout
    assert "anchors event 6 (0 events since)" in ok.stdout

    await trail.sql("DELETE FROM audit_events WHERE seq > 4")
    await trail.rehash_from(5)
    chain_only = no_traceback(opsgate("audit", "verify", env=env, cwd=tmp_path))
    assert chain_only.returncode == 0, "without digests the rewritten chain looks intact"
    cut = no_traceback(opsgate("audit", "verify", "--digests", digests, env=env, cwd=tmp_path))
    assert cut.returncode == 1
    [line] = cut.stderr.splitlines()
    assert line.startswith("truncation: digest 2 of ") and line.endswith("events 5..6 were deleted")

    await trail.sql("DELETE FROM audit_events")
    await trail.sql("DELETE FROM audit_head")
    wiped = no_traceback(opsgate("audit", "verify", "--digests", digests, env=env, cwd=tmp_path))
    assert wiped.returncode == 1
    assert wiped.stderr.splitlines()[0] == "head: the audit_head row is missing: it was deleted"
    assert wiped.stderr.splitlines()[1].startswith("wipe: the trail is empty but 2 digest(s) recorded events")
    headless = no_traceback(opsgate("audit", "verify", env=env, cwd=tmp_path))
    assert headless.returncode == 1
    assert headless.stderr.strip() == "head: the audit_head row is missing: it was deleted"


async def test_cli_pins_the_public_key_and_names_a_forged_digest(
    trail: Trail, signing_key: Ed25519PrivateKey, sqlite_only, tmp_path: Path
):
    env = {"DATABASE_URL": trail.database.url}
    pinned = tmp_path / "trusted.pem"
    public = no_traceback(
        opsgate(
            "audit",
            "public-key",
            env={**env, "OPSGATE_AUDIT_SIGNING_KEY": raw_key(signing_key)},
            cwd=tmp_path,
        )
    )
    assert public.returncode == 0 and public.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    assert public.stderr.strip() == f"key id: {trail.signer.key_id}"
    pinned.write_text(public.stdout)
    forger = DigestSigner(Ed25519PrivateKey.generate())
    forged = await trail.duty(forger).run()  # the forger also publishes his public key in the directory
    assert isinstance(forged, DigestWritten)

    trusting_the_directory = no_traceback(
        opsgate("audit", "verify", "--digests", str(trail.directory.path), env=env, cwd=tmp_path)
    )
    pinning = no_traceback(
        opsgate("audit", "verify", "--digests", str(trail.directory.path), "--public-key", str(pinned),
                env=env, cwd=tmp_path)
    )  # fmt: skip

    assert (
        trusting_the_directory.returncode == 0
        and "pin them with --public-key" in trusting_the_directory.stdout
    )
    assert pinning.returncode == 1
    assert pinning.stderr.strip() == (
        f"signature: digest-000000000003.json: signed by {forger.key_id}, which is not a trusted key"
    )


def test_cli_verify_failures_are_messages_and_create_nothing(tmp_path: Path):
    missing_db = tmp_path / "gone.db"
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{missing_db}"}

    no_db = no_traceback(opsgate("audit", "verify", env=env, cwd=tmp_path))
    assert no_db.returncode == 2
    assert (
        no_db.stderr.strip() == f"cannot read the audit trail: the database file {missing_db} does not exist"
    )
    no_dir = no_traceback(
        opsgate("audit", "verify", "--digests", str(tmp_path / "nowhere"), env=env, cwd=tmp_path)
    )
    assert no_dir.returncode == 2
    assert no_dir.stderr.strip() == f"the digest directory {tmp_path / 'nowhere'} does not exist"
    (tmp_path / "digests").mkdir()
    (tmp_path / "garbage.pem").write_text("not a key")
    bad_key = no_traceback(
        opsgate("audit", "verify", "--digests", str(tmp_path / "digests"), "--public-key",
                str(tmp_path / "garbage.pem"), env=env, cwd=tmp_path)
    )  # fmt: skip
    assert bad_key.returncode == 2
    assert bad_key.stderr.strip().startswith(
        f"--public-key {tmp_path / 'garbage.pem'}: not an Ed25519 public key"
    )
    no_key = no_traceback(
        opsgate("audit", "verify", "--digests", str(tmp_path / "digests"), "--public-key",
                str(tmp_path / "absent.pem"), env=env, cwd=tmp_path)
    )  # fmt: skip
    assert no_key.returncode == 2 and no_key.stderr.strip() == (
        f"--public-key {tmp_path / 'absent.pem'}: No such file or directory"
    )
    unset = no_traceback(opsgate("audit", "public-key", env=env, cwd=tmp_path))
    assert unset.returncode == 2 and "no audit signing key: set OPSGATE_AUDIT_SIGNING_KEY" in unset.stderr
    bad_env = no_traceback(opsgate("audit", "public-key", env={**env, "OPSGATE_AUDIT_SIGNING_KEY": "c2VjcmV0"},
                                   cwd=tmp_path))  # fmt: skip
    assert bad_env.returncode == 2
    assert bad_env.stderr.strip() == (
        "OPSGATE_AUDIT_SIGNING_KEY: not an Ed25519 private key: expected PEM or base64 of 32 bytes"
    )
    assert "c2VjcmV0" not in bad_env.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digests", "garbage.pem"]


def test_cli_keygen_writes_a_key_once_and_audit_digest_uses_it(tmp_path: Path):
    db = tmp_path / "o.db"
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{db}"}
    assert opsgate("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    made = no_traceback(opsgate("keygen", "--audit-signing", "-o", "signing.pem", env=env, cwd=tmp_path))
    assert made.returncode == 0 and made.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    assert oct((tmp_path / "signing.pem").stat().st_mode & 0o777) == "0o600"
    again = no_traceback(opsgate("keygen", "--audit-signing", "-o", "signing.pem", env=env, cwd=tmp_path))
    assert again.returncode == 2 and "never overwritten" in again.stderr
    printed = no_traceback(opsgate("keygen", "--audit-signing", env=env, cwd=tmp_path))
    assert len(base64.b64decode(printed.stdout.strip())) == 32 and "key id: ed25519:" in printed.stderr

    digest_env = {**env, "OPSGATE_AUDIT_DIGEST_DIR": str(tmp_path / "digests"),
                  "OPSGATE_AUDIT_SIGNING_KEY_FILE": "signing.pem"}  # fmt: skip
    written = no_traceback(opsgate("audit", "digest", env=digest_env, cwd=tmp_path))
    assert written.returncode == 0, written.stderr
    assert (
        written.stdout.strip()
        == f"wrote {tmp_path / 'digests' / 'digest-000000000001.json'}: digest 1, event 0"
    )
    key_id = made.stderr.split("key id: ")[1].strip()
    assert (
        tmp_path / "digests" / f"public-key-{key_id.removeprefix('ed25519:')}.pem"
    ).read_text() == made.stdout
    verified = no_traceback(
        opsgate("audit", "verify", "--digests", "digests", "--public-key", "digests/" +
                f"public-key-{key_id.removeprefix('ed25519:')}.pem", env=env, cwd=tmp_path)
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr


def test_the_digest_format_is_what_the_documentation_says():
    """docs/audit-digests.md describes these fields; a change here is a change of format."""
    assert list(AuditDigest.model_fields) == [
        "format", "digest_seq", "created_at", "last_seq", "last_hash", "event_count", "last_event_at",
        "last_event_fingerprint", "previous_digest_hash", "key_id", "signature",
    ]  # fmt: skip
    docs = (Path(__file__).parents[2] / "docs" / "audit-digests.md").read_text()
    for name in AuditDigest.model_fields:
        assert f"`{name}`" in docs, name
    for kind in FindingKind:
        assert f"`{kind.value}`" in docs, kind
