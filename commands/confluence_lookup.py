"""Finding the Confluence page someone named: a page id, or an exact title in the solutions' spaces."""

from __future__ import annotations

from collections.abc import Sequence

from bot.config.opsgate import OpsgateConfig
from commands.workflow import PrecheckFailed
from connectors.base import DocumentStore
from connectors.confluence import Page
from connectors.errors import NotFound

__all__ = ["find_named_page", "solution_spaces"]


def solution_spaces(config: OpsgateConfig) -> list[str]:
    """The solutions' Confluence spaces, in config order, without repeats."""
    return list(dict.fromkeys(s.confluence_space for s in config.solutions if s.confluence_space))


async def find_named_page(store: DocumentStore, page: str, *, spaces: Sequence[str]) -> Page:
    """The page with id `page`, or titled `page` in the first of `spaces` that has it."""
    page = page.strip()
    if page.isascii() and page.isdigit():
        try:
            return await store.get_page(page)
        except NotFound:
            raise PrecheckFailed(
                f"Confluence has no page with id {page} (or opsgate may not see it)."
            ) from None
    if not spaces:
        raise PrecheckFailed("No solution has a confluence_space to look for the page in: give a page id.")
    for key in spaces:
        try:
            found = await store.find_page(key, page)
        except NotFound:
            continue  # a space we may not see does not hide the page in the next one
        if found is not None:
            return found
    raise PrecheckFailed(
        f"No page titled '{page}' in {', '.join(spaces)}. Check the title or give the page id."
    )
