"""Custom domains as a source of the public documents' cache (docs/architecture.md#canonical-urls-and-custom-domains):
the `public_hosts` projection's rows, handed to every process's cache as host aliases. It has no documents
and no routes of its own; a request on a custom domain is rewritten to its page's paths, which the other
sources and Litestar's handlers serve."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from api.public_documents import HostAlias, PublicDocument, PublicRoute
from projections import public_hosts


class HostSource:
    """The host aliases of the `public_hosts` projection."""

    name = public_hosts.KEY
    writes_wait = True  # a request on a domain right after the PUT that set it finds the page
    routes: Sequence[PublicRoute] = ()

    async def position(self, conn: asyncpg.Connection) -> int:
        return await public_hosts.hosts_position(conn)

    async def read(self, conn: asyncpg.Connection, *, after: int | None) -> Sequence[PublicDocument | HostAlias]:
        # Always every row (a handful): the projection reports any change as a removal, so `after` is not used.
        return [
            HostAlias(host=row.host, slug=row.slug, status_page_id=row.status_page_id, position=row.position)
            for row in await public_hosts.read_hosts(conn)
        ]
