"""`opsgate serve` as a real process: health, metrics, clean exit on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.config.opsgate import Settings, parse_config
from bot.web.app import create_web_app
from bot.wiring.deps import Deps

CONFIG = "environments: {prod: {}}\npolicies: []\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'o.db'}",
        opsgate_secret_key_file=tmp_path / "key",
    )


async def test_healthz_is_200_while_the_database_answers(settings):
    deps = await Deps.open(settings, parse_config({"environments": {"prod": {}}}, source="t", env={}))
    async with TestClient(TestServer(create_web_app(deps))) as client:
        ok = await client.get("/healthz")
        assert ok.status == 200 and (await ok.json())["database"] == "up"
        metrics = await client.get("/metrics")
        assert 'opsgate_http_requests_total{path="/healthz",status="200"} 1.0' in await metrics.text()
    await deps.close()


async def test_healthz_is_503_when_the_database_does_not_answer(settings):
    settings.database_url = "postgresql+asyncpg://postgres@127.0.0.1:1/test"  # nothing listens on port 1
    deps = await Deps.open(
        settings, parse_config({"environments": {"prod": {}}}, source="t", env={}), migrate=False
    )
    async with TestClient(TestServer(create_web_app(deps))) as client:
        down = await client.get("/healthz")
        assert down.status == 503 and (await down.json())["database"] == "down"
        metrics = await (await client.get("/metrics")).text()
        assert "opsgate_database_up 0.0" in metrics
    await deps.close()


def test_serve_process_answers_and_stops_on_sigterm(tmp_path):
    (tmp_path / "opsgate.yaml").write_text(CONFIG)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'o.db'}", "PORT": str(port),
           "OPSGATE_HOST": "127.0.0.1", "OPSGATE_LOG_FORMAT": "json"}  # fmt: skip
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve"], cwd=tmp_path, env=env,
                                stdout=subprocess.DEVNULL, stderr=log_file)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "server did not start within 20 s"
                time.sleep(0.1)
        assert response.status_code == 200
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        assert proc.returncode == 0
        assert time.monotonic() - started < 10
        assert '"event": "shutting down"' in log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
