"""Replay speed (issue 5): a full rebuild of every registered projection from the log, against a pure
in-memory fold (decode + aggregate mutate) of the same events, in the same run on the same machine.
Goal: rebuild >= 0.25x the in-memory fold.

    .venv/bin/python -m bench.replay [events]        # default 100000

The log is a realistic mix written through the domain classes and `PostgresEventStore.append`, one append
per command as the API would make it (generated through the in-memory store, which numbers and
hash-chains events exactly as `beacon_append` does, then copied into `beacon_events` in one COPY, so
the setup takes seconds instead of minutes): status pages with structures, components, incidents whose updates
move component statuses and end resolved (a few stay open), maintenance windows scheduled, started and
completed by automation (some deleted), and occasional renames. Uses DATABASE_URL, or the embedded
server when unset; works in its own scratch database, dropped at the end.
"""

from __future__ import annotations

import asyncio
import gc
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
from eventsourcing.domain import Aggregate

from bench.scratch import scratch_database
from domain.base import SYSTEM, Actor, BeaconAggregate, CommandContext, EventStore, save
from domain.component import Component, ComponentInfo
from domain.incident import Incident
from domain.maintenance import Maintenance
from domain.status_page import StatusPage
from domain.structure import ComponentItem, GroupItem, StructureItem
from infra.db import create_pool, database_url
from infra.event_store import PostgresEventStore, RecordedEvent
from infra.ids import new_ulid, uuid_to_ulid
from infra.memory_store import InMemoryEventStore
from infra.migrate import migrate
from infra.settings import Settings
from projections.rebuild import rebuild
from projections.registry import all_projections

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OPERATORS = [Actor(type="api_key", id=f"01BENCHKEY{index:016d}", name=f"ops bot {index}") for index in range(3)]
INCIDENT_STATUSES = ("investigating", "identified", "monitoring")
COMPONENT_STATUSES = ("degraded_performance", "partial_outage", "full_outage", "operational")
FLUSH_EVERY = 8
PAGE_EVERY = 2000
"""One status page per this many events, so a bigger log means more pages, not only longer histories."""


@dataclass
class _Page:
    aggregate: StatusPage
    ulid: str
    components: list[str]


@dataclass
class _World:
    """Everything the generator has created so far, to pick the next command from."""

    store: EventStore
    rng: random.Random
    seed: int
    now: datetime = T0
    events: int = 0
    pages: list[_Page] = field(default_factory=list)
    components: dict[str, Component] = field(default_factory=dict)
    open_incidents: list[tuple[Incident, _Page, int]] = field(default_factory=list)
    windows: list[tuple[Maintenance, _Page]] = field(default_factory=list)
    dirty: dict[uuid.UUID, tuple[BeaconAggregate, CommandContext, int]] = field(default_factory=dict)

    async def save(self, aggregate: BeaconAggregate, actor: Actor | None = None) -> None:
        """Record the command's events. Appends go out in concurrent rounds of `FLUSH_EVERY` aggregates
        (each aggregate's events in order, one append each) so generating 100k events takes seconds,
        not minutes; the log interleaves streams as concurrent API clients would."""
        actor = actor or self.rng.choice(OPERATORS)
        context = CommandContext(now=self.now, actor=actor, request_id=str(uuid.UUID(int=self.rng.getrandbits(128))))
        counted = self.dirty[aggregate.id][2] if aggregate.id in self.dirty else 0
        self.events += len(aggregate.pending_events) - counted
        self.dirty[aggregate.id] = (aggregate, context, len(aggregate.pending_events))
        if len(self.dirty) >= FLUSH_EVERY:
            await self.flush()

    async def flush(self) -> None:
        dirty, self.dirty = list(self.dirty.values()), {}
        await asyncio.gather(*(save(self.store, aggregate, context) for aggregate, context, _ in dirty))

    def tick(self) -> datetime:
        self.now += timedelta(seconds=self.rng.randint(5, 90))
        return self.now


async def _new_page(world: _World) -> None:
    rng, number = world.rng, len(world.pages)
    names = [f"Service {number}-{index}" for index in range(6)]
    ids: list[str] = []
    for name in names:
        component = Component.create(id=uuid.uuid4(), name=name, description=None, at=world.tick(), by=OPERATORS[0])
        await world.save(component, OPERATORS[0])
        ids.append(uuid_to_ulid(component.id))
        world.components[ids[-1]] = component
    page = StatusPage.create(
        id=uuid.uuid4(), name=f"Acme {number}", slug=f"acme-{world.seed}-{number}",
        public_url=f"https://status{number}.acme.test" if rng.random() < 0.8 else None,
        at=world.tick(), by=OPERATORS[0],
    )
    items: list[StructureItem] = [
        ComponentItem(component_id=ids[0]),
        ComponentItem(component_id=ids[1]),
        GroupItem(id=new_ulid(world.now), name="Platform", components=tuple(ComponentItem(c) for c in ids[2:5])),
        ComponentItem(component_id=ids[5], hidden=True),
    ]
    page.replace_structure(
        items=items, components={c: ComponentInfo(name=n) for c, n in zip(ids, names, strict=True)},
        at=world.now, by=OPERATORS[0],
    )
    await world.save(page, OPERATORS[0])
    world.pages.append(_Page(page, uuid_to_ulid(page.id), ids))


async def _declare(world: _World) -> None:
    rng = world.rng
    page = rng.choice(world.pages)
    touched = rng.sample(page.components, rng.randint(1, 3))
    incident = Incident.declare(
        id=uuid.uuid4(), status_page_id=page.ulid, page_components=frozenset(page.components),
        name=f"Incident {world.events}", message="We are investigating reports of errors.",
        status="investigating", component_statuses={c: rng.choice(COMPONENT_STATUSES[:3]) for c in touched},
        notify_subscribers=rng.random() < 0.5, update_id=new_ulid(world.now), at=world.tick(), by=OPERATORS[1],
    )
    await world.save(incident, OPERATORS[1])
    world.open_incidents.append((incident, page, rng.randint(2, 8)))


async def _progress_incident(world: _World) -> None:
    rng = world.rng
    index = rng.randrange(len(world.open_incidents))
    incident, page, planned = world.open_incidents[index]
    if rng.random() < 0.05:
        incident.rename(name=f"{incident.name} (updated)", at=world.tick(), by=OPERATORS[2])
        await world.save(incident, OPERATORS[2])
        return
    closing = len(incident.updates) >= planned and rng.random() > 0.02  # a few stay open for good
    statuses = None if closing else {c: rng.choice(COMPONENT_STATUSES) for c in rng.sample(page.components, 2)}
    incident.publish_update(
        update_id=new_ulid(world.now), message=f"Update {len(incident.updates)}: still working on it.",
        status="resolved" if closing else rng.choice(INCIDENT_STATUSES), component_statuses=statuses,
        notify_subscribers=True, page_components=frozenset(page.components), at=world.tick(), by=OPERATORS[1],
    )
    await world.save(incident, OPERATORS[1])
    if closing or len(incident.updates) >= 90:
        world.open_incidents.pop(index)


async def _schedule(world: _World) -> None:
    rng = world.rng
    page = rng.choice(world.pages)
    start = world.tick() + timedelta(minutes=rng.randint(5, 60))
    window = Maintenance.schedule(
        id=uuid.uuid4(), status_page_id=page.ulid, page_components=frozenset(page.components),
        name=f"Maintenance {world.events}", message="Planned database upgrade.", status="maintenance_scheduled",
        affected_component_ids=rng.sample(page.components, 2), start_at=start,
        end_at=start + timedelta(minutes=rng.randint(15, 120)), automate_maintenance_status=True,
        notify_subscribers=False,
        update_id=new_ulid(world.now), at=world.now, by=OPERATORS[2],
    )
    await world.save(window, OPERATORS[2])
    world.windows.append((window, page))


async def _automate(world: _World) -> None:
    """What the scheduler would do by now: start and complete due windows as `system`; delete a few."""
    keep: list[tuple[Maintenance, _Page]] = []
    for window, page in world.windows:
        if world.rng.random() < 0.02:
            window.delete(at=world.now, by=OPERATORS[2])
            await world.save(window, OPERATORS[2])
            continue
        moved = window.advance_automatically(update_id=new_ulid(world.now), at=world.now)
        if moved:
            await world.save(window, SYSTEM)
        if window.maintenance_status.value != "maintenance_complete":
            keep.append((window, page))
    world.windows = keep


async def _rename_something(world: _World) -> None:
    rng = world.rng
    if rng.random() < 0.7:
        component = world.components[rng.choice(list(world.components))]
        component.update(name=f"{component.name}*", description="renamed", at=world.tick(), by=OPERATORS[0])
        await world.save(component, OPERATORS[0])
    else:
        page = rng.choice(world.pages).aggregate
        page.update(
            name=f"{page.name}*", description=page.description, public_url=page.public_url,
            widget_api_enabled=page.widget_api_enabled, at=world.tick(), by=OPERATORS[0],
        )
        await world.save(page, OPERATORS[0])


async def write_mixed_log(store: EventStore, events: int, *, seed: int = 5) -> int:
    """Append about `events` events of the realistic mix (one append per command); return how many."""
    world = _World(store, random.Random(seed), seed)
    while world.events < events:
        if len(world.pages) * PAGE_EVERY <= world.events or len(world.pages) < 2:
            await _new_page(world)
            continue
        roll = world.rng.random()
        if roll < 0.12 or not world.open_incidents:
            await _declare(world)
        elif roll < 0.80:
            await _progress_incident(world)
        elif roll < 0.88:
            await _schedule(world)
        elif roll < 0.97:
            world.tick()
            await _automate(world)
        else:
            await _rename_something(world)
    await world.flush()
    return world.events


async def copy_mixed_log(pool: asyncpg.Pool, events: int, *, seed: int = 5) -> int:
    """The log `write_mixed_log` would append, generated in memory and copied into an empty
    `beacon_events` in one COPY (same rows, positions and hash chain); returns how many events."""
    memory = InMemoryEventStore()
    await write_mixed_log(memory, events, seed=seed)
    return await copy_store(pool, memory)


async def copy_store(pool: asyncpg.Pool, memory: InMemoryEventStore) -> int:
    """Copy everything `memory` holds into an empty `beacon_events` in one COPY (same rows, positions and
    hash chain) and move the position sequence past it; returns how many events."""
    records = await memory.read_all(after=0, limit=await memory.max_position())
    async with pool.acquire() as conn, conn.transaction():
        await conn.copy_records_to_table(
            "beacon_events",
            columns=[
                "notification_id", "originator_id", "stream_type", "originator_version", "topic", "state",
                "recorded_at", "actor", "request_id", "hash",
            ],
            records=[
                (
                    r.position, r.stream_id, r.stream_type, r.version, r.topic, r.state,
                    r.recorded_at, msgspec.json.encode(r.actor).decode(), r.request_id, r.hash,
                )
                for r in records
            ],
        )
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence('beacon_events', 'notification_id'), $1)", len(records)
        )
    return len(records)


def fold(records: list[RecordedEvent]) -> dict[uuid.UUID, Aggregate]:
    """The baseline: decode every event and mutate its aggregate, all in memory."""
    aggregates: dict[uuid.UUID, Aggregate] = {}
    for record in records:
        aggregates[record.stream_id] = record.decode().mutate(aggregates.get(record.stream_id))  # type: ignore[assignment]
    return aggregates


async def main(events: int) -> None:
    settings = Settings.from_env()
    server = await asyncio.to_thread(database_url, settings)
    async with scratch_database(server) as url:
        pool = await create_pool(url, settings)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            await _measure(pool, events)
        finally:
            await pool.close()


async def _measure(pool: asyncpg.Pool, target: int) -> None:
    store = PostgresEventStore(pool)
    started = time.perf_counter()
    written = await copy_mixed_log(pool, target)
    print(f"wrote {written:,} events in {time.perf_counter() - started:.1f}s", file=sys.stderr)

    records: list[RecordedEvent] = []
    while batch := await store.read_all(after=records[-1].position if records else 0, limit=5000):
        records += batch
    started = time.perf_counter()
    aggregates = fold(records)
    fold_seconds = time.perf_counter() - started
    fold_rate = len(records) / fold_seconds
    events, streams = len(records), len(aggregates)
    # The baseline's 100k decoded events and aggregates are not the rebuild's: left alive, every full
    # garbage collection during the rebuild would walk them (~30% of its time on this workload).
    del records, aggregates
    gc.collect()

    projections = all_projections()
    stats = await rebuild(pool, projections, "beacon_bench_rebuild")
    rebuild_rate = stats.events_per_second

    names = ", ".join(p.name for p in projections)
    print(f"events: {events:,} in {streams:,} streams; projections: {names}")
    print(f"in-memory fold (decode + mutate): {fold_rate:>10,.0f} events/s  ({fold_seconds:.2f}s)")
    print("time in each projection's apply during the one shared pass (an event's decoding falls on the first")
    print("projection that reads it):")
    for projection in projections:
        seconds = stats.projection_seconds[projection.name]
        print(f"  {projection.name:<28} {stats.events[projection.name] / seconds:>10,.0f} events/s  ({seconds:.2f}s)")
    print(f"rebuild of every projection:      {rebuild_rate:>10,.0f} events/s  ({stats.seconds:.2f}s)")
    print(f"ratio rebuild / fold: {rebuild_rate / fold_rate:.2f}  (goal >= 0.25)")

if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
