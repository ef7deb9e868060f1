"""In-process vendor emulators: one aiohttp app per vendor, all started by `serve_all`.

Each emulator module exposes `create_app(**kw) -> web.Application` (`seed` is passed if accepted)
and uses `connectors.emulators.faults` for fault injection. `REGISTRY` lists them in a fixed
order; modules that do not exist yet are skipped, so vendors can be added one at a time.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from connectors.emulators.faults import start_app

__all__ = ["REGISTRY", "EmulatorSet", "serve_all"]

logger = logging.getLogger("opsgate.emulators")

# Name -> module path. The order fixes the ports when serve_all is given a base port.
REGISTRY: dict[str, str] = {
    "opentext": "connectors.emulators.opentext",
    "canto": "connectors.emulators.canto",
    "iconik": "connectors.emulators.iconik",
    "confluence": "connectors.emulators.confluence",
}


@dataclass
class EmulatorSet:
    """Running emulators: base URL and app per vendor; `close()` stops them all."""

    urls: dict[str, str] = field(default_factory=dict)
    apps: dict[str, web.Application] = field(default_factory=dict)
    _runners: list[web.AppRunner] = field(default_factory=list, repr=False)

    async def close(self) -> None:
        """Stop every emulator (in reverse start order)."""
        while self._runners:
            await self._runners.pop().cleanup()


def _create_app(name: str, factory: Callable[..., web.Application], *, seed: bool) -> web.Application:
    """Call an emulator factory, passing `seed` only to factories that take it."""
    parameters = inspect.signature(factory).parameters.values()
    if any(p.name == "seed" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return factory(seed=seed)
    if not seed:
        logger.warning("emulator %s has no unseeded mode; starting it seeded", name)
    return factory()


async def serve_all(host: str = "127.0.0.1", port: int = 0, *, seed: bool = True) -> EmulatorSet:
    """Start every available emulator; port 0 = ephemeral ports, P = vendor i on P + i (REGISTRY order).

    A vendor keeps its offset even when an earlier one is skipped, so URLs stay stable as
    emulators are added.
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
            emulators._runners.append(runner)
            emulators.urls[name] = url
            emulators.apps[name] = app
    except BaseException:
        await emulators.close()
        raise
    return emulators
