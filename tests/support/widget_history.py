"""One realistic page history for the widget projection (docs/architecture.md#widget): a page with groups,
a hidden component and a sub-page, incidents in every state and maintenance windows scheduled, moved,
running, done and deleted. `realistic_history()` runs the domain commands and keeps their events in commit
order, so a unit test can fold them in memory and an integration test can append them to the event store."""

from __future__ import annotations

from typing import TypeVar, cast
from uuid import UUID

import asyncpg
from eventsourcing.domain import Aggregate

from domain.base import Actor, CommandContext
from domain.component import Component, ComponentInfo
from domain.incident import Incident, PastUpdate
from domain.maintenance import Maintenance
from domain.status_page import StatusPage
from domain.structure import ComponentItem, GroupItem, StructureItem, SubPageItem
from infra.event_store import PostgresEventStore
from infra.ids import ulid_to_uuid, uuid_to_ulid
from tests.support.builders import T0, at

BY = Actor(type="api_key", id="key-1", name="ops")
BASE = "https://status.acme.test"
"""The page's public URL; the widget's links start with it."""
A = TypeVar("A", bound=Aggregate)


def ulid(n: int) -> str:
    """A fixed id per number, so a test can name the incident or window it expects."""
    return uuid_to_ulid(UUID(int=(1 << 100) + n))


PAGE = ulid(1)
API, LOGIN, SSO, EU_API, EU_S3, BILLING = (ulid(n) for n in range(10, 16))
NAMES = {API: "API", LOGIN: "Login", SSO: "SSO", EU_API: "EU API", EU_S3: "EU S3", BILLING: "Billing"}
ON_PAGE = frozenset(NAMES)
STRUCTURE: list[StructureItem] = [
    ComponentItem(API),
    GroupItem(id=ulid(2), name="Auth", components=(ComponentItem(LOGIN), ComponentItem(SSO, hidden=True))),
    GroupItem(id=ulid(3), name="Internal", hidden=True, components=(ComponentItem(BILLING),)),
    SubPageItem(
        id=ulid(4),
        name="Europe",
        slug="eu",
        items=(ComponentItem(EU_API), GroupItem(id=ulid(5), name="EU Storage", components=(ComponentItem(EU_S3),))),
    ),
]
"""SSO and Billing are hidden (SSO in a visible group, Billing in a hidden one); EU API and EU S3 are on the
"eu" sub-page."""


class History:
    """Runs domain commands and keeps their events in commit order, as the log would."""

    def __init__(self) -> None:
        self.events: list[Aggregate.Event] = []

    def record(self, aggregate: A) -> A:
        self.events.extend(cast(list[Aggregate.Event], aggregate.collect_events()))
        return aggregate


def declare(
    h: History, n: int, name: str, minute: int, statuses: dict[str, str], status: str = "investigating"
) -> Incident:
    return h.record(
        Incident.declare(
            id=ulid_to_uuid(ulid(n)),
            status_page_id=PAGE,
            page_components=ON_PAGE,
            name=name,
            message=f"{name}: first",
            status=status,
            component_statuses=statuses,
            notify_subscribers=True,
            update_id=ulid(n + 500),
            at=at(minute),
            by=BY,
        )
    )


def incident_update(
    h: History,
    incident: Incident,
    minute: int,
    message: str,
    status: str | None,
    statuses: dict[str, str] | None = None,
) -> None:
    incident.publish_update(
        update_id=ulid(900 + minute),
        message=message,
        status=status,
        component_statuses=statuses,
        notify_subscribers=False,
        page_components=ON_PAGE,
        at=at(minute),
        by=BY,
    )
    h.record(incident)


def schedule(h: History, n: int, name: str, minute: int, start: int, end: int, components: list[str]) -> Maintenance:
    return h.record(
        Maintenance.schedule(
            id=ulid_to_uuid(ulid(n)),
            status_page_id=PAGE,
            page_components=ON_PAGE,
            name=name,
            message=f"{name}: planned",
            status="maintenance_scheduled",
            affected_component_ids=components,
            start_at=at(start),
            end_at=at(end),
            automate_maintenance_status=True,
            notify_subscribers=True,
            update_id=ulid(n + 500),
            at=at(minute),
            by=BY,
        )
    )


def realistic_history() -> History:
    """The page at minute 31 after `T0`: four incidents open (one touching only a hidden component), one
    resolved and one retrospective; one window running, two scheduled (one moved earlier), one done and
    one deleted."""
    h = History()
    page = h.record(
        StatusPage.create(id=ulid_to_uuid(PAGE), name="Acme", slug="acme", public_url=BASE, at=at(0), by=BY)
    )
    for cid, name in NAMES.items():
        h.record(Component.create(id=ulid_to_uuid(cid), name=name, description=None, at=at(0), by=BY))
    page.replace_structure(items=STRUCTURE, components={c: ComponentInfo(n) for c, n in NAMES.items()}, at=at(0), by=BY)
    h.record(page)

    login = declare(h, 100, "Login failing", 1, {LOGIN: "partial_outage", SSO: "full_outage"})
    eu = declare(h, 101, "EU API slow", 2, {EU_API: "degraded_performance"})
    resolved = declare(h, 102, "Blip", 3, {API: "full_outage"})
    errors = declare(h, 103, "Old name", 4, {API: "full_outage"}, status="identified")
    incident_update(h, login, 5, "Found the cause", "identified")
    incident_update(h, eu, 6, "Watching", "monitoring", {EU_API: "operational"})
    incident_update(h, resolved, 7, "All good", "resolved")
    errors.rename(name="API errors", at=at(8), by=BY)
    h.record(errors)
    hidden_only = declare(h, 104, "Billing delays", 9, {BILLING: "degraded_performance"})
    assert hidden_only.id
    h.record(
        Incident.record_retrospective(
            id=ulid_to_uuid(ulid(105)),
            status_page_id=PAGE,
            page_components=ON_PAGE,
            name="Last week",
            updates=[
                PastUpdate(ulid(605), at(-100), "down", "investigating", {API: "full_outage"}),
                PastUpdate(ulid(606), at(-90), "fixed", "resolved"),
            ],
            at=at(10),
            by=BY,
        )
    )

    schedule(h, 200, "DB upgrade", 11, 120, 180, [API])
    early = schedule(h, 201, "Network work", 12, 200, 260, [LOGIN])
    early.edit(name="Network work", start_at=at(60), end_at=at(90), at=at(13), by=BY)
    h.record(early)
    storage = schedule(h, 202, "EU storage move", 14, 20, 80, [EU_S3])
    assert storage.start_automatically(update_id=ulid(702), at=at(20))
    h.record(storage)
    done = schedule(h, 203, "Done already", 15, 25, 30, [API])
    assert done.start_automatically(update_id=ulid(703), at=at(25))
    assert done.complete_automatically(update_id=ulid(704), at=at(30))
    h.record(done)
    gone = schedule(h, 204, "Cancelled", 16, 300, 360, [API])
    gone.delete(at=at(31), by=BY)
    h.record(gone)
    return h


async def append_realistic_history(pool: asyncpg.Pool) -> PostgresEventStore:
    """The realistic history appended to the event store, in commit order."""
    return await append_history(pool, realistic_history())


async def append_history(pool: asyncpg.Pool, history: History) -> PostgresEventStore:
    """`history`'s events appended to the event store, in commit order."""
    store = PostgresEventStore(pool)
    context = CommandContext(now=T0, actor=Actor(type="system"))
    stream_types = (StatusPage, Component, Incident, Maintenance)
    for event in history.events:
        [kind] = [cls for cls in stream_types if isinstance(event, cls.Event)]
        await store.append(
            [event], stream_type=kind.STREAM_TYPE, expected_version=event.originator_version - 1, context=context
        )
    return store
