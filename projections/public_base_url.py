"""The public base URL as of a log position, read from the log (docs/architecture.md#canonical-urls-and-custom-domains):
for renderers that render a past state (`as_of`) without folding the whole log. The setting's events are one
stream (domain/public_base_url.py), so this is one probe of `beacon_events_stream_position_idx`."""

from __future__ import annotations

from typing import cast

from eventsourcing.persistence import StoredEvent

from domain.public_base_url import PUBLIC_BASE_URL_ID, PublicBaseUrlConfigured
from infra.db import Fetcher
from infra.event_store import MAPPER


async def base_url_at(db: Fetcher, position: int) -> str | None:
    """The URL of the last `PublicBaseUrlConfigured` at or before `position` (None: never configured)."""
    row = await db.fetchrow(
        "SELECT originator_version, topic, state FROM beacon_events WHERE originator_id = $1"
        " AND notification_id <= $2 ORDER BY notification_id DESC LIMIT 1",
        PUBLIC_BASE_URL_ID,
        position,
    )
    if row is None:
        return None
    stored = StoredEvent(
        originator_id=PUBLIC_BASE_URL_ID,
        originator_version=row["originator_version"],
        topic=row["topic"],
        state=bytes(row["state"]),
    )
    event = cast(PublicBaseUrlConfigured, MAPPER.to_domain_event(stored))
    return event.url
