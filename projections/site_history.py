"""Which notices belong to which status page, for the public site's `as_of` reads
(docs/adr/0004-time-travel-index-and-snapshots.md; projections/public_site_as_of.py).

An `as_of` read of a public-site document folds, with `public_site_state.evolve`, every event that can
change the page's documents: the page's own stream, its notices' streams (incidents, retrospective ones
included, and maintenance windows, deleted ones too) and the streams of the components it ever placed,
plus the public base URL. The page's and the components' streams are known from the page's own events;
the notices are not — a notice names its page only in its first event. `widget_history`'s index does not
cover them (it keeps a notice only while it is on the widget, and never a retrospective one), so this
projection records, for every notice stream, its page and the position of its first event: the read
then reads exactly those streams through the log's `(originator_id, notification_id)` index, and its cost
grows with the page's events, not with the log.

Derived from the log only, rebuildable from zero; `writes_wait = False`: only time travel reads it, and
the read folds the log past this projection's checkpoint itself (normally nothing).
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from domain.incident import Incident
from domain.maintenance import Maintenance
from infra.event_store import RecordedEvent
from projections.versions import version_key

NAME = "site_history"

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS site_history_notices (
    stream_id      uuid   PRIMARY KEY,
    status_page_id text   NOT NULL,
    position       bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS site_history_notices_page ON site_history_notices (status_page_id, position);
"""

NOTICE_STREAMS = (Incident.STREAM_TYPE, Maintenance.STREAM_TYPE)


def page_of_first(record: RecordedEvent) -> str | None:
    """The page a notice's first event files it on; None for any other event."""
    if record.version != 1 or record.stream_type not in NOTICE_STREAMS:
        return None
    page_id = getattr(record.decode(), "status_page_id", None)
    return page_id if isinstance(page_id, str) else None


class SiteHistory:
    """Projection `site_history` (see the module docstring)."""

    name = NAME
    version = 1  # bump when what it stores changes: the new version is built beside the old (projections/versions.py)
    writes_wait = False  # only time travel reads it, and it folds the log past its checkpoint itself
    min_pass_interval = 0.1  # a pass per 100 ms under a stream of commands, not one per commit (runner.Projection)
    tables: tuple[str, ...] = ("site_history_notices",)
    schema_sql = SCHEMA_SQL

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        rows = [(r.stream_id, page, r.position) for r in events if (page := page_of_first(r)) is not None]
        if rows:
            await conn.copy_records_to_table(
                "site_history_notices", records=rows, columns=["stream_id", "status_page_id", "position"]
            )


KEY = version_key(NAME, SiteHistory.version)
"""The checkpoint name of this code's version (projections/versions.py)."""
