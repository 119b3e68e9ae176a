"""A small projection for the runner's tests: it counts events per stream and records every position it
applied, in the order it applied them, so a test can see an event applied twice, skipped or reordered.
Hooks let a test stop it mid-batch or make one event poison."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from uuid import UUID

import asyncpg

from infra.event_store import RecordedEvent
from projections.versions import quote_ident

AfterEvent = Callable[[asyncpg.Connection, RecordedEvent, int], Awaitable[None]]
"""Called after each event is applied (with its index in the batch), inside the runner's transaction."""


class PoisonError(Exception):
    """Raised when the test projection meets the event it was told to choke on."""


class EventCounter:
    """Counts events per stream (`<name>_counts`) and appends each applied position to `<name>_seen`
    with the tag of the projection instance that applied it (to tell two runners apart)."""

    writes_wait = True

    def __init__(
        self,
        name: str = "event_counter",
        *,
        tag: str = "a",
        only_topics: frozenset[str] | None = None,
        poison_position: int | None = None,
        after_event: AfterEvent | None = None,
        writes_wait: bool = True,
    ) -> None:
        self.name = name
        self.writes_wait = writes_wait
        self.tag = tag
        self.only_topics = only_topics
        self.poison_position = poison_position
        self.after_event = after_event
        self.batches: list[list[int]] = []
        self.tables: tuple[str, ...] = (f"{name}_counts", f"{name}_seen")
        self.schema_sql = f"""
            CREATE TABLE IF NOT EXISTS {name}_counts (stream_id uuid PRIMARY KEY, events int NOT NULL);
            CREATE TABLE IF NOT EXISTS {name}_seen (
                seq bigserial PRIMARY KEY, position bigint NOT NULL, applied_by text NOT NULL
            )"""

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        self.batches.append([event.position for event in events])
        for index, event in enumerate(events):
            if event.position == self.poison_position:
                raise PoisonError(f"cannot fold the event at position {event.position}")
            if self.only_topics is None or event.topic in self.only_topics:
                await conn.execute(
                    f"INSERT INTO {self.name}_counts (stream_id, events) VALUES ($1, 1)"
                    f" ON CONFLICT (stream_id) DO UPDATE SET events = {self.name}_counts.events + 1",
                    event.stream_id,
                )
                await conn.execute(
                    f"INSERT INTO {self.name}_seen (position, applied_by) VALUES ($1, $2)", event.position, self.tag
                )
            if self.after_event is not None:
                await self.after_event(conn, event, index)


async def seen(conn: asyncpg.Connection, projection: EventCounter, schema: str = "public") -> list[int]:
    """The positions the projection applied, in the order it applied them."""
    rows = await conn.fetch(f"SELECT position FROM {quote_ident(schema)}.{projection.name}_seen ORDER BY seq")
    return [row["position"] for row in rows]


async def applied_by(conn: asyncpg.Connection, projection: EventCounter) -> list[tuple[int, str]]:
    rows = await conn.fetch(f"SELECT position, applied_by FROM {projection.name}_seen ORDER BY seq")
    return [(row["position"], row["applied_by"]) for row in rows]


async def counts(conn: asyncpg.Connection, projection: EventCounter, schema: str = "public") -> dict[UUID, int]:
    rows = await conn.fetch(f"SELECT stream_id, events FROM {quote_ident(schema)}.{projection.name}_counts")
    return {row["stream_id"]: row["events"] for row in rows}


class Gate:
    """Holds the projection inside its transaction after its first event, once, until the test opens it."""

    def __init__(self, *, sleep_in_query: bool = False) -> None:
        self.sleep_in_query = sleep_in_query
        self.inside = asyncio.Event()
        self.open = asyncio.Event()
        self.backend_pid: int | None = None
        self.armed = True

    async def __call__(self, conn: asyncpg.Connection, event: RecordedEvent, index: int) -> None:
        if self.armed and index == 0:
            self.armed = False
            self.backend_pid = conn.get_server_pid()
            self.inside.set()
            if self.sleep_in_query:
                await conn.execute("SELECT pg_sleep(4)")  # under the 5 s statement timeout
            await self.open.wait()
