"""Crash safety: kill -9 the worker in the middle of a promotion and of a rotation, start another.

The Slack edge (signed requests in, jobs persisted) runs in the test process, as `serve` would
without its loops, so that the only process doing the work is one `opsgate worker`. It is killed
with SIGKILL at a recorded step, and a new worker must resume there: no request lost, nothing
run twice, and the approval thread and #alerts say that the execution was resumed.
Both workers run with OPSGATE_JOB_LEASE_SECONDS=2, so the dead worker's claim expires quickly.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.config.opsgate import Settings, parse_config
from bot.db.engine import create_engine
from bot.emulators.slack_driver import SlackDriver
from bot.emulators.slack_records import ChannelMessage
from bot.emulators.slack_seed import DEFAULT_BOT_TOKEN
from bot.ids import ActionId
from bot.wiring.service import OpsgateService, build_service
from connectors.emulators.faults import FaultSpec, fault_injector_of, start_app
from connectors.secrets import LocalSecretStore

from .conftest import (
    OT_SECRET,
    SIGNING_SECRET,
    Emulators,
    opentext_settings,
    process_env,
    start_emulators,
)
from .processes import OpsgateProcess, OpsgateProcesses, wait_until

ARTIFACT = "orders-edi.orders-d96a-to-xml"  # the emulator runs 2.4.0 in test and 2.3.0 in prod
CREDENTIAL = "orders-edi-prod"
LEASE_SECONDS = "2"
FOREVER = 10**9  # OpenText job polls: the job does not finish while the first worker lives


def crash_config(opentext_url: str) -> dict[str, Any]:
    opentext = opentext_settings(opentext_url)
    return {
        "environments": {"test": {"opentext": opentext}, "prod": {"opentext": opentext}},
        "credentials": [
            {
                "name": CREDENTIAL,
                "environment": "prod",
                "credential_id": "orders-edi-prod-client",
                "owner": "U_APP1",
                "owner_channel": "C_ORDERS",
                "schedule": "90d",
                "grace_period": "1h",
            },
        ],
        "groups": {"leads": ["U_APP1", "U_APP2"], "engineers": ["U_REQ"]},
        "slack": {"approvals_channel": "C_APPROVALS", "alerts_channel": "C_ALERTS"},
        "alerts": {"default_channel": "C_ALERTS", "group_wait": "0s"},
        "policies": [
            {
                "name": "prod-changes",
                "action": "*",
                "environment": "prod",
                "approvers": {"groups": ["leads"]},
                "requesters": {"groups": ["engineers"]},
            },
        ],
    }


@dataclass
class CrashRig:
    """The emulators, the in-process Slack edge, the database and the worker processes."""

    emulators: Emulators
    edge: OpsgateService
    driver: SlackDriver
    processes: OpsgateProcesses
    database_url: str

    async def scalar(self, sql: str, **params: Any) -> Any:
        engine = create_engine(self.database_url)
        try:
            async with engine.connect() as conn:
                return (await conn.execute(text(sql), params)).scalar()
        finally:
            await engine.dispose()

    async def execution_job(self) -> dict[str, Any] | None:
        engine = create_engine(self.database_url)
        try:
            async with engine.connect() as conn:
                row = (
                    await conn.execute(
                        text(
                            "SELECT step, status, attempts, locked_by FROM jobs WHERE kind = 'request.execute'"
                        )
                    )
                ).first()
        finally:
            await engine.dispose()
        return None if row is None else dict(row._mapping)

    def approval_message(self) -> ChannelMessage | None:
        found = [m for m in self.emulators.workspace.messages("C_APPROVALS") if m.thread_ts is None]
        return found[0] if found else None

    def thread(self) -> list[str]:
        """The thread replies under the approval message, as people read them (the blocks)."""
        message = self.approval_message()
        assert message is not None
        return [
            " ".join(str(b.get("text", {}).get("text", "")) for b in m.blocks) or m.text
            for m in self.emulators.workspace.messages("C_APPROVALS")
            if m.thread_ts == message.ts and m.ts != message.ts
        ]

    def alerts(self) -> str:
        return json.dumps([m.model_dump(mode="json") for m in self.emulators.workspace.messages("C_ALERTS")])

    async def request_and_approve(self, command: str, arguments: str) -> None:
        """A requester asks, the worker posts the approval message, an approver clicks Approve."""
        result = await self.driver.slash_command("U_REQ", command, arguments, channel_id="C_ORDERS")
        assert result.status == 200
        message = await wait_until(self.approval_message, timeout=30, what="the approval message")
        value = next(
            e["value"]
            for b in message.blocks
            for e in b.get("elements", [])
            if e.get("action_id") == ActionId.APPROVE
        )
        clicked = await self.driver.block_action(
            "U_APP1",
            message_ts=message.ts,
            channel_id=message.channel,
            action_id=ActionId.APPROVE,
            value=value,
        )
        assert clicked.status == 200

    async def wait_for_step(self, step: str) -> dict[str, Any]:
        async def at_step() -> dict[str, Any] | None:
            job = await self.execution_job()
            return job if job is not None and job["step"] == step else None

        return await wait_until(at_step, timeout=30, what=f"the execution to record step {step!r}")

    async def wait_until_succeeded(self, ref: str) -> None:
        """The request succeeded, its job is done and everything the bot had to say was delivered."""

        async def finished() -> bool:
            status = await self.scalar("SELECT status FROM change_requests WHERE human_id = :ref", ref=ref)
            assert status not in ("failed", "expired", "rejected"), f"{ref} ended {status}"
            return status == "succeeded"

        await wait_until(finished, timeout=30, what=f"{ref} to succeed")

        async def job_done() -> bool:
            job = await self.execution_job()
            return job is not None and job["status"] == "done"

        await wait_until(job_done, timeout=10, what=f"the execution job of {ref} to be done")
        await self.wait_until_delivered()

    async def wait_until_delivered(self) -> None:
        """Nothing left in the outbox: no message is half-sent when a worker is killed."""

        async def delivered() -> bool:
            left = await self.scalar("SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')")
            return int(left) == 0

        await wait_until(delivered, timeout=30, what="every message to reach Slack")


@pytest.fixture
async def rig(tmp_path: Path, process_group: list[OpsgateProcesses]) -> AsyncIterator[CrashRig]:
    emulators, runners = await start_emulators(job_polls_to_finish=FOREVER)
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'opsgate.db'}"
    env = process_env(database_url, emulators.slack_url, OPSGATE_JOB_LEASE_SECONDS=LEASE_SECONDS)
    workdir = tmp_path / "opsgate"
    workdir.mkdir()
    config = crash_config(emulators.opentext_url)
    processes = OpsgateProcesses(workdir, config, env)
    process_group.append(processes)
    processes.run("db", "upgrade")
    settings = Settings(
        database_url=database_url,
        slack_bot_token=DEFAULT_BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=emulators.slack_url + "/api/",
        opsgate_secret_key=env["OPSGATE_SECRET_KEY"],
    )
    edge = await build_service(settings, parse_config(config, source="crash", env={"OT_SECRET": OT_SECRET}))
    edge_runner, edge_url = await start_app(edge.web)
    driver = SlackDriver(edge_url + "/slack/events", SIGNING_SECRET, emulators.slack_url)
    try:
        yield CrashRig(emulators, edge, driver, processes, database_url)
    finally:
        processes.close()
        await driver.aclose()
        await edge_runner.cleanup()
        await edge.stop(timeout=1)
        for runner in runners:
            await runner.cleanup()


def _runs_with(worker: OpsgateProcess) -> str:
    return f":{worker.pid}"


async def test_promotion_killed_while_polling_resumes_on_a_new_worker_without_a_second_job(
    rig: CrashRig,
) -> None:
    first = await rig.processes.worker("worker-1")
    await rig.request_and_approve("/promote", f"{ARTIFACT} 2.4.0 test prod")
    job = await rig.wait_for_step("poll")
    assert job["locked_by"].endswith(_runs_with(first))
    promotions = [j for j in rig.emulators.opentext.jobs.values() if j.kind == "promotion"]
    await wait_until(lambda: promotions[0].polls >= 1, timeout=10, what="the worker to poll the job")
    # The kill hits the workflow, not a Slack message in flight (the outbox's own lease covers that).
    await rig.wait_until_delivered()

    first.kill()
    rig.emulators.opentext.job_polls_to_finish = 1  # OpenText finishes the job meanwhile
    second = await rig.processes.worker("worker-2")
    await rig.wait_until_succeeded("PRM-1")

    promotions = [j for j in rig.emulators.opentext.jobs.values() if j.kind == "promotion"]
    assert len(promotions) == 1, "the new worker followed the same OpenText job instead of starting one"
    assert rig.emulators.opentext.deployments[("prod", ARTIFACT)].version == "2.4.0"
    job = await rig.execution_job()
    assert job is not None and job["status"] == "done" and job["attempts"] == 2
    assert job["locked_by"].endswith(_runs_with(second))
    thread = "\n".join(rig.thread())
    assert "Resumed after a worker stopped during poll" in thread
    assert f"resuming OpenText job {promotions[0].job_id} (not started again)" in thread
    assert thread.count("OpenText job") == thread.count(f"OpenText job {promotions[0].job_id}")
    await wait_until(
        lambda: "PRM-1 resumed after a worker stopped during poll" in rig.alerts(),
        timeout=20,
        what="an alert in #alerts saying the promotion was resumed",
    )


async def test_rotation_killed_between_set_and_test_resumes_at_test_with_one_secret(rig: CrashRig) -> None:
    opentext = rig.emulators.opentext
    credential = opentext.credentials[("prod", "orders-edi-prod-client")]
    faults = fault_injector_of(rig.emulators.opentext_app)
    # OpenText holds the first test call: the worker is stuck inside `test`, after `set` was stored.
    faults.add(FaultSpec(path=r"/rotations/[^/]+/test$", method="POST", timeout=True, times=1))
    first = await rig.processes.worker("worker-1")
    await rig.request_and_approve("/rotate", f"{CREDENTIAL} prod quarterly rotation")
    job = await rig.wait_for_step("test")
    await wait_until(
        lambda: faults.count(path=r"/test$", method="POST") == 1,
        timeout=10,
        what="the worker to call OpenText's test endpoint",
    )
    assert job["locked_by"].endswith(_runs_with(first))
    [pending] = credential.rotations
    assert pending.state == "pending"
    await rig.wait_until_delivered()

    first.kill()
    await rig.processes.worker("worker-2")
    await rig.wait_until_succeeded("ROT-1")

    assert len(credential.rotations) == 1, "the secret created before the crash was not created again"
    assert credential.rotations[0].state == "active"
    client = opentext.clients[credential.client_id]
    assert client.secret != "orders-edi-prod-secret-v1", "OpenText uses the new secret"
    deps = rig.edge.runtime.deps
    store = LocalSecretStore(
        deps.sessions, keys=deps.secret_key, fingerprints=deps.fingerprinter, clock=deps.clock
    )
    assert (await store.get(CREDENTIAL, "current")).get_secret_value() == client.secret
    assert [v.label for v in await store.versions(CREDENTIAL) if v.label == "current"] == ["current"]
    thread = "\n".join(rig.thread())
    assert "Resumed after a worker stopped during test" in thread
    assert thread.count("created pending secret") == 1, thread
    assert client.secret not in thread
    await wait_until(
        lambda: "ROT-1 resumed after a worker stopped during test" in rig.alerts(),
        timeout=20,
        what="an alert in #alerts saying the rotation was resumed",
    )
