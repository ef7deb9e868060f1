"""Real `opsgate` processes for the scale, crash and shutdown tests, and the waiting they need.

`OpsgateProcesses` starts `python -m bot.cli serve|worker` children with a shared environment,
keeps each one's output in a log file, and kills whatever is still running when the test ends.
Every wait polls a real process or the database with a deadline; nothing sleeps to let time pass.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

__all__ = ["OpsgateProcess", "OpsgateProcesses", "free_port", "wait_until"]

ROOT = Path(__file__).resolve().parents[2]
# Variables of the developer's own shell that would change what the children do.
_INHERITED_PREFIXES = ("OPSGATE_", "SLACK_", "DATABASE_", "VAULT_", "PORT")

T = TypeVar("T")


def free_port() -> int:
    """A port that was free a moment ago (the child binds it; `serve` cannot report port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_until(
    check: Callable[[], Awaitable[T] | T], *, timeout: float, what: str, interval: float = 0.05
) -> T:
    """Poll `check` (sync or async) until it returns something truthy; AssertionError naming `what`
    at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = check()
        result = await outcome if inspect.isawaitable(outcome) else outcome
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


@dataclass
class OpsgateProcess:
    """One running `opsgate` child."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        assert self.port is not None, f"{self.name} serves no HTTP"
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_for_log(self, text: str, *, timeout: float) -> None:
        async def logged() -> bool:
            if not self.alive and text not in self.log():
                raise AssertionError(f"{self.name} exited ({self.popen.returncode}):\n{self.log()[-3000:]}")
            return text in self.log()

        await wait_until(logged, timeout=timeout, what=f"{self.name} to log {text!r}")

    async def wait_healthy(self, *, timeout: float = 30.0) -> None:
        async with httpx.AsyncClient(timeout=2.0) as client:

            async def healthy() -> bool:
                if not self.alive:
                    raise AssertionError(
                        f"{self.name} exited ({self.popen.returncode}):\n{self.log()[-3000:]}"
                    )
                try:
                    return (await client.get(self.url + "/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(healthy, timeout=timeout, what=f"{self.name} to answer /healthz", interval=0.1)

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind runs, as when a host dies."""
        if self.alive:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def terminate(self) -> None:
        self.popen.send_signal(signal.SIGTERM)

    async def wait_exit(self, *, timeout: float) -> int:
        async def exited() -> bool:
            return not self.alive

        await wait_until(exited, timeout=timeout, what=f"{self.name} to exit")
        return int(self.popen.returncode)


class OpsgateProcesses:
    """Starts `opsgate` children sharing one configuration and environment; `close` kills them all."""

    def __init__(self, workdir: Path, config: Mapping[str, Any], env: Mapping[str, str]) -> None:
        self.workdir = workdir
        self.config_path = workdir / "opsgate.yaml"
        self.config_path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED_PREFIXES)}
        self.env = {
            **inherited,
            "OPSGATE_CONFIG": str(self.config_path),
            "OPSGATE_HOST": "127.0.0.1",
            "OPSGATE_LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.started: list[OpsgateProcess] = []

    def _spawn(self, name: str, args: list[str], *, port: int | None = None) -> OpsgateProcess:
        log_path = self.workdir / f"{name}.log"
        env = dict(self.env)
        if port is not None:
            env["PORT"] = str(port)
        handle = log_path.open("wb")
        try:
            popen = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", *args],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        finally:
            handle.close()
        process = OpsgateProcess(name, popen, log_path, port)
        self.started.append(process)
        return process

    def run(self, *args: str, timeout: float = 60.0) -> str:
        """Run a one-shot command (e.g. `db upgrade`) to completion; its output, or AssertionError."""
        done = subprocess.run(
            [sys.executable, "-m", "bot.cli", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"opsgate {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout + done.stderr

    async def serve(self, name: str, *extra: str, port: int | None = None) -> OpsgateProcess:
        """`opsgate serve` on a fresh port, returned once /healthz answers."""
        process = self._spawn(name, ["serve", *extra], port=port or free_port())
        await process.wait_healthy()
        return process

    async def worker(self, name: str, *, env: Mapping[str, str] | None = None) -> OpsgateProcess:
        """`opsgate worker`, returned once its loops run."""
        saved = self.env
        self.env = {**saved, **(env or {})}
        try:
            process = self._spawn(name, ["worker"])
        finally:
            self.env = saved
        await process.wait_for_log("opsgate worker running", timeout=30.0)
        return process

    def close(self) -> None:
        for process in self.started:
            if process.alive:
                process.kill()
