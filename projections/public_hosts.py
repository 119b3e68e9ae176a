"""Which host names are custom domains of which page (docs/architecture.md#canonical-urls-and-custom-domains):
the table the public fast path of every process reads its host aliases from.

One row per page: its slug and its custom domain (NULL without one; `Updated` events carry no slug).
A batch that adds, moves or removes a domain `NOTIFY`s `beacon_public_documents` as a source of public
documents does (projections/public_documents.py), counting the change as a removal so every process
re-reads the few rows whole; a batch that changes none still notifies its position, which read-your-writes
waits for (a `PUT` of `custom_domain` answers once this process routes the new domain).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from domain.status_page import StatusPage
from infra.event_store import RecordedEvent
from infra.ids import uuid_to_ulid
from projections.public_documents import DocumentsChanged, notify
from projections.versions import version_key

NAME = "public_hosts"

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS public_hosts (
    status_page_id text   PRIMARY KEY,
    slug           text   NOT NULL,
    host           text,
    position       bigint NOT NULL
);
"""


class PublicHosts:
    """Projection `public_hosts` (see the module docstring)."""

    name = NAME
    version = 1  # bump when what it stores changes: the new version is built beside the old (projections/versions.py)
    writes_wait = True  # a request on a page's new domain right after the PUT that set it finds the page
    tables: tuple[str, ...] = ("public_hosts",)
    schema_sql = SCHEMA_SQL

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        changed = 0
        for record in events:
            if record.topic == StatusPage.Created.TOPIC:
                event = record.decode()
                assert isinstance(event, StatusPage.Created)
                await conn.execute(
                    "INSERT INTO public_hosts (status_page_id, slug, host, position) VALUES ($1, $2, $3, $4)",
                    uuid_to_ulid(record.stream_id),
                    event.slug,
                    event.custom_domain,
                    record.position,
                )
                changed += event.custom_domain is not None
            elif record.topic == StatusPage.Updated.TOPIC:
                event = record.decode()
                assert isinstance(event, StatusPage.Updated)
                status = await conn.execute(
                    "UPDATE public_hosts SET host = $2, position = $3"
                    " WHERE status_page_id = $1 AND host IS DISTINCT FROM $2",
                    uuid_to_ulid(record.stream_id),
                    event.custom_domain,
                    record.position,
                )
                changed += status != "UPDATE 0"
        # Any change counts as a removal: every process re-reads the (small) table whole.
        await notify(conn, DocumentsChanged(KEY, events[-1].position, 0, changed))


KEY = version_key(NAME, PublicHosts.version)
"""The checkpoint and public-documents source name of this code's version (projections/versions.py)."""


@dataclass(frozen=True)
class HostRow:
    host: str
    status_page_id: str
    slug: str
    position: int


async def read_hosts(conn: asyncpg.Connection) -> list[HostRow]:
    """Every custom domain; where a domain moved between pages the latest row wins."""
    rows = await conn.fetch(
        "SELECT host, status_page_id, slug, position FROM public_hosts WHERE host IS NOT NULL ORDER BY position"
    )
    return [HostRow(**dict(row)) for row in rows]


async def hosts_position(conn: asyncpg.Connection) -> int:
    position = await conn.fetchval("SELECT position FROM beacon_projection_checkpoints WHERE name = $1", KEY)
    return int(position or 0)
