"""serve_all starts every registered emulator and stops them again."""

from __future__ import annotations

import socket

import httpx
import pytest

import connectors.emulators as emulators
from connectors.emulators import serve_all
from connectors.emulators.opentext import opentext_state_of


def free_port_pair() -> int:
    """A port P such that P and P + 1 were free a moment ago."""
    for _ in range(20):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return int(port)
    raise RuntimeError("no adjacent free ports")


async def test_every_available_emulator_serves_on_its_own_ephemeral_port() -> None:
    running = await serve_all()
    try:
        assert "opentext" in running.urls
        assert len(set(running.urls.values())) == len(running.urls)
        async with httpx.AsyncClient() as client:
            for name, url in running.urls.items():
                stats = await client.get(f"{url}/_control/stats")
                assert stats.status_code == 200, name
            health = await client.get(f"{running.urls['opentext']}/im-admin/api/v1/health")
        assert health.json()["status"] == "ok"
    finally:
        await running.close()
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{running.urls['opentext']}/_control/stats")


async def test_fixed_port_gives_each_vendor_its_registry_offset_even_when_one_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        emulators,
        "REGISTRY",
        {
            "not-yet-written": "connectors.emulators.not_yet_written",
            "opentext": "connectors.emulators.opentext",
        },
    )
    port = free_port_pair()
    running = await serve_all(port=port)
    try:
        assert running.urls == {"opentext": f"http://127.0.0.1:{port + 1}"}
    finally:
        await running.close()


async def test_unseeded_emulators_start_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emulators, "REGISTRY", {"opentext": "connectors.emulators.opentext"})
    running = await serve_all(seed=False)
    try:
        state = opentext_state_of(running.apps["opentext"])
        assert state.artifacts == {} and state.credentials == {}
    finally:
        await running.close()
