"""List endpoints as EasyPost pages them: newest first, `page_size` (1..100, default 20), `before_id` for the
next page (what the SDK's `get_next_page` sends), `has_more` when more are left."""

from __future__ import annotations

from collections.abc import Callable

from shipctl.sandbox import model
from shipctl.sandbox.model import JSON


def page_size(query: dict[str, str]) -> int:
    try:
        size = int(query.get("page_size", "20"))
    except ValueError:
        raise model.invalid("page_size", "must be an integer") from None
    if not 1 <= size <= 100:
        raise model.invalid("page_size", "must be between 1 and 100")
    return size


def newest_first(ids: list[str], fetch: Callable[[str], JSON | None], query: dict[str, str],
                 key: str) -> JSON:
    """`{key: [...], "has_more": bool}` for ids given oldest first; `fetch` answers None for one to leave out."""
    size = page_size(query)
    ids = ids[::-1]
    before = query.get("before_id")
    if before in ids:
        ids = ids[ids.index(before) + 1:]
    page: list[JSON] = []
    for oid in ids:
        obj = fetch(oid)
        if obj is None:
            continue
        if len(page) == size:
            return {key: page, "has_more": True}
        page.append(obj)
    return {key: page, "has_more": False}
