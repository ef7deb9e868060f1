"""In-process vendor emulators: one aiohttp app per vendor, all started by `serve_all`.

Each emulator module exposes `create_app(**kw) -> web.Application` (`seed` is passed if accepted)
and uses `connectors.emulators.faults` for fault injection. `REGISTRY` lists them in a fixed
order; modules that do not exist yet are skipped, so vendors can be added one at a time.

Partner drops that are not HTTP apps of ours (moto's S3 server, an asyncssh SFTP server) are in
`SERVERS`: each module exposes `async serve(host, port, *, seed) -> RunningServer`. They start
with `serve_all(partner_drops=True)` and land in `EmulatorSet.servers` (their `url`, credentials
and host key), not in `urls`, since they have no /_control routes.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from connectors.emulators.faults import start_app

__all__ = ["REGISTRY", "SERVERS", "EmulatorSet", "RunningServer", "serve_all"]

logger = logging.getLogger("opsgate.emulators")

# Name -> module path. The order fixes the ports when serve_all is given a base port.
REGISTRY: dict[str, str] = {
    "opentext": "connectors.emulators.opentext",
    "canto": "connectors.emulators.canto",
    "iconik": "connectors.emulators.iconik",
    "confluence": "connectors.emulators.confluence",
    "portal": "connectors.emulators.portal",
}
# Name -> module path of partner-drop servers; with a base port they follow REGISTRY's ports.
SERVERS: dict[str, str] = {
    "s3": "connectors.emulators.s3",
    "sftp": "connectors.emulators.sftp",
}


class RunningServer(Protocol):
    """A started server that is not one of our aiohttp apps."""

    @property
    def url(self) -> str:
        """Where it listens (http://... or sftp://...)."""
        ...

    async def close(self) -> None:
        """Stop it."""
        ...


@dataclass
class EmulatorSet:
    """Running emulators: base URL and app per vendor; `close()` stops them all."""

    urls: dict[str, str] = field(default_factory=dict)
    apps: dict[str, web.Application] = field(default_factory=dict)
    servers: dict[str, RunningServer] = field(default_factory=dict)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list, repr=False)

    async def close(self) -> None:
        """Stop every emulator (in reverse start order)."""
        while self._closers:
            await self._closers.pop()()


def _create_app(name: str, factory: Callable[..., web.Application], *, seed: bool) -> web.Application:
    """Call an emulator factory, passing `seed` only to factories that take it."""
    parameters = inspect.signature(factory).parameters.values()
    if any(p.name == "seed" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return factory(seed=seed)
    if not seed:
        logger.warning("emulator %s has no unseeded mode; starting it seeded", name)
    return factory()


async def serve_all(
    host: str = "127.0.0.1", port: int = 0, *, seed: bool = True, partner_drops: bool = False
) -> EmulatorSet:
    """Start every available emulator; port 0 = ephemeral ports, P = vendor i on P + i (REGISTRY order).

    A vendor keeps its offset even when an earlier one is skipped, so URLs stay stable as
    emulators are added. `partner_drops` also starts the SERVERS (S3, SFTP), after REGISTRY's ports.
    """
    emulators = EmulatorSet()
    try:
        for offset, (name, module_path) in enumerate(REGISTRY.items()):
            try:
                module = importlib.import_module(module_path)
            except ImportError as exc:
                if exc.name != module_path:
                    logger.warning("emulator %s skipped: %s", name, exc)
                continue
            app = _create_app(name, module.create_app, seed=seed)
            runner, url = await start_app(app, host, port + offset if port else 0)
            emulators._closers.append(runner.cleanup)
            emulators.urls[name] = url
            emulators.apps[name] = app
        for offset, (name, module_path) in enumerate(SERVERS.items(), start=len(REGISTRY)):
            if not partner_drops:
                break
            module = importlib.import_module(module_path)
            server: RunningServer = await module.serve(host, port + offset if port else 0, seed=seed)
            emulators._closers.append(server.close)
            emulators.servers[name] = server
    except BaseException:
        await emulators.close()
        raise
    return emulators
