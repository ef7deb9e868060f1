"""What goes back to the Slack user who asked: the one reply type every answer is rendered into."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from slack_sdk.models.blocks import Block

__all__ = ["Reply"]


@dataclass(frozen=True)
class Reply:
    """Text (always: notifications and fallbacks show it) and, when there are any, Block Kit blocks."""

    text: str
    blocks: list[Block] = field(default_factory=list)

    def blocks_json(self) -> list[dict[str, Any]]:
        """The blocks as Slack's API takes them."""
        return [block.to_dict() for block in self.blocks]
