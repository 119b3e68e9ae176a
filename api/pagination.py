"""Cursor pagination for every list endpoint (docs/architecture.md#pagination), shared so all lists behave alike.

`page_size` (default 25, at most 250) and `after` (the last id of the previous page) come in;
`pagination_meta: {page_size, after?}` goes out, with `after` absent on the last page. A query fetches
one row more than asked for: that is how the last page is known without a count.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import msgspec

from api.errors import ApiError
from infra.ids import is_ulid

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 250

T = TypeVar("T")


class PaginationMeta(msgspec.Struct, omit_defaults=True):
    page_size: int
    after: str | None = None


@dataclass(frozen=True)
class PageParams:
    """A validated page request."""

    page_size: int
    after: str | None


def page_params(page_size: int | None, after: str | None) -> PageParams:
    """Validate the query parameters: a size out of range or a cursor that is not an id is a 422."""
    size = DEFAULT_PAGE_SIZE if page_size is None else page_size
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise ApiError(422, f"page_size must be between 1 and {MAX_PAGE_SIZE}", parameter="page_size")
    cursor = after or None
    if cursor is not None and not is_ulid(cursor):
        raise invalid_cursor(cursor)
    return PageParams(page_size=size, after=cursor)


def invalid_cursor(after: str) -> ApiError:
    return ApiError(422, f"after {after!r} is not the id of a record in this list", parameter="after")


async def paginate(
    params: PageParams,
    fetch: Callable[[int, str | None], Awaitable[Sequence[T] | None]],
    id_of: Callable[[T], str],
) -> tuple[list[T], PaginationMeta]:
    """One page and its meta. `fetch(limit, after)` returns up to `limit` records after the cursor,
    or None when the cursor names no record (answered as a 422)."""
    rows = await fetch(params.page_size + 1, params.after)
    if rows is None:
        assert params.after is not None  # without a cursor there is nothing to miss
        raise invalid_cursor(params.after)
    page = list(rows[: params.page_size])
    more = len(rows) > params.page_size
    return page, PaginationMeta(page_size=params.page_size, after=id_of(page[-1]) if more else None)
