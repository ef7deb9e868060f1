"""The demo console: a small Slack-like web page served by the Slack emulator.

It shows the emulator's channels, DMs, threads, modals and App Home, and sends what a person
does there to the bot through ``SlackDriver``, signed exactly as Slack sends it, so the bot cannot
tell the console from Slack. ``add_console_routes`` mounts it; ``bot.demo`` runs it with the bot.
"""

from __future__ import annotations

from bot.console.faults import FAULT_PRESETS, FaultPreset, FaultPresetName, apply_fault_preset
from bot.console.routes import STATIC_DIR, add_console_routes

__all__ = [
    "FAULT_PRESETS",
    "STATIC_DIR",
    "FaultPreset",
    "FaultPresetName",
    "add_console_routes",
    "apply_fault_preset",
]
