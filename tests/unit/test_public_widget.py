"""The public widget projection, without a database: given events → the exact document bytes
(docs/architecture.md#widget)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast
from uuid import UUID

import msgspec
from eventsourcing.domain import Aggregate

from domain.base import Actor
from domain.component import Component, ComponentInfo
from domain.incident import Incident, PastUpdate
from domain.maintenance import Maintenance
from domain.status_page import StatusPage
from domain.structure import ComponentItem, GroupItem, StructureItem, SubPageItem
from infra.ids import ulid_to_uuid, uuid_to_ulid
from projections.widget_document import WidgetState, etag_of, evolve, render_documents

T0 = datetime(2026, 1, 28, 10, 0, tzinfo=UTC)
BY = Actor(type="api_key", id="key-1", name="ops")
BASE = "https://status.acme.test"
A = TypeVar("A", bound=Aggregate)


def ulid(n: int) -> str:
    return uuid_to_ulid(UUID(int=(1 << 100) + n))


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ts(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


def fold(events: list[Aggregate.Event]) -> WidgetState:
    state = WidgetState()
    for event in events:
        evolve(state, event)
    return state


def documents(state: WidgetState) -> dict[str, bytes]:
    notices = [n for n in state.notices.values() if n is not None]
    return render_documents(state.pages[PAGE], notices, state.component_names)


def component(cid: str, status: str, group: str | None = None) -> dict[str, str]:
    item = {"id": cid, "name": NAMES[cid]}
    if group is not None:
        item["group_name"] = group
    item["current_status"] = status
    return item


def expected_bytes(value: dict[str, Any]) -> bytes:
    # dicts keep insertion order, so this pins the exact key order as well as the values
    return msgspec.json.encode(value)


def test_realistic_page_renders_the_exact_document() -> None:
    docs = documents(fold(realistic_history().events))

    storage_in_progress = {
        "id": ulid(202),
        "name": "EU storage move",
        "status": "maintenance_in_progress",
        "url": f"{BASE}/maintenances/{ulid(202)}",
        "last_update_at": ts(20),
        "last_update_message": docs_message(docs, ulid(202)),
        "affected_components": [component(EU_S3, "under_maintenance", "EU Storage")],
        "started_at": ts(20),
        "scheduled_end_at": ts(80),
    }
    assert docs[""] == expected_bytes(
        {
            "page_title": "Acme",
            "page_url": BASE,
            "ongoing_incidents": [
                {
                    "id": ulid(104),
                    "name": "Billing delays",
                    "status": "investigating",
                    "url": f"{BASE}/incidents/{ulid(104)}",
                    "last_update_at": ts(9),
                    "last_update_message": "Billing delays: first",
                    "current_worst_impact": "degraded_performance",
                    "affected_components": [],
                },
                {
                    "id": ulid(101),
                    "name": "EU API slow",
                    "status": "monitoring",
                    "url": f"{BASE}/incidents/{ulid(101)}",
                    "last_update_at": ts(6),
                    "last_update_message": "Watching",
                    "current_worst_impact": "degraded_performance",
                    "affected_components": [component(EU_API, "operational")],
                },
                {
                    "id": ulid(100),
                    "name": "Login failing",
                    "status": "identified",
                    "url": f"{BASE}/incidents/{ulid(100)}",
                    "last_update_at": ts(5),
                    "last_update_message": "Found the cause",
                    "current_worst_impact": "partial_outage",
                    "affected_components": [component(LOGIN, "partial_outage", "Auth")],
                },
                {
                    "id": ulid(103),
                    "name": "API errors",
                    "status": "identified",
                    "url": f"{BASE}/incidents/{ulid(103)}",
                    "last_update_at": ts(4),
                    "last_update_message": "Old name: first",
                    "current_worst_impact": "full_outage",
                    "affected_components": [component(API, "full_outage")],
                },
            ],
            "in_progress_maintenances": [storage_in_progress],
            "scheduled_maintenances": [
                {
                    "id": ulid(201),
                    "name": "Network work",
                    "status": "maintenance_scheduled",
                    "url": f"{BASE}/maintenances/{ulid(201)}",
                    "last_update_at": ts(12),
                    "last_update_message": "Network work: planned",
                    "affected_components": [component(LOGIN, "operational", "Auth")],
                    "starts_at": ts(60),
                    "ends_at": ts(90),
                },
                {
                    "id": ulid(200),
                    "name": "DB upgrade",
                    "status": "maintenance_scheduled",
                    "url": f"{BASE}/maintenances/{ulid(200)}",
                    "last_update_at": ts(11),
                    "last_update_message": "DB upgrade: planned",
                    "affected_components": [component(API, "operational")],
                    "starts_at": ts(120),
                    "ends_at": ts(180),
                },
            ],
        }
    )
    assert docs["eu"] == expected_bytes(
        {
            "page_title": "Europe",
            "page_url": f"{BASE}/eu",
            "ongoing_incidents": [
                {
                    "id": ulid(101),
                    "name": "EU API slow",
                    "status": "monitoring",
                    "url": f"{BASE}/incidents/{ulid(101)}",
                    "last_update_at": ts(6),
                    "last_update_message": "Watching",
                    "current_worst_impact": "degraded_performance",
                    "affected_components": [component(EU_API, "operational")],
                }
            ],
            "in_progress_maintenances": [storage_in_progress],
            "scheduled_maintenances": [],
        }
    )
    assert set(docs) == {"", "eu"}


def docs_message(docs: dict[str, bytes], notice_id: str) -> str:
    """The automatic update's message is the maintenance module's wording; the widget just repeats it."""
    document = msgspec.json.decode(docs[""])
    [window] = [w for w in document["in_progress_maintenances"] if w["id"] == notice_id]
    message = window["last_update_message"]
    assert isinstance(message, str) and message
    return message


def test_hidden_components_never_appear_anywhere() -> None:
    docs = documents(fold(realistic_history().events))
    for body in docs.values():
        assert SSO.encode() not in body
        assert BILLING.encode() not in body


def test_quiet_page_has_all_five_keys_and_no_links_without_public_url() -> None:
    h = History()
    h.record(StatusPage.create(id=ulid_to_uuid(PAGE), name="Quiet", slug="quiet", at=at(0), by=BY))
    assert documents(fold(h.events)) == {
        "": b'{"page_title":"Quiet","page_url":null,"ongoing_incidents":[],'
        b'"in_progress_maintenances":[],"scheduled_maintenances":[]}'
    }


def test_disabled_widget_has_no_document() -> None:
    h = realistic_history()
    page = StatusPage.create(id=ulid_to_uuid(PAGE), name="Acme", slug="acme", public_url=BASE, at=at(0), by=BY)
    page.collect_events()
    page.update(name="Acme", description=None, public_url=BASE, widget_api_enabled=False, at=at(40), by=BY)
    [disabled] = cast(list[Aggregate.Event], page.collect_events())
    state = fold(h.events)
    assert evolve(state, disabled) == {PAGE}
    assert documents(state) == {}


def test_component_rename_and_structure_change_touch_the_page() -> None:
    h = realistic_history()
    state = fold(h.events)
    before = documents(state)
    api = Component.create(id=ulid_to_uuid(API), name="API", description=None, at=at(0), by=BY)
    api.collect_events()
    api.update(name="Public API", description=None, at=at(41), by=BY)
    [renamed] = cast(list[Aggregate.Event], api.collect_events())
    assert evolve(state, renamed) == {PAGE}
    after = documents(state)
    assert b'"name":"Public API"' in after[""] and after["eu"] == before["eu"]
    assert etag_of(after[""]) != etag_of(before[""])


def test_resolved_incident_and_completed_window_leave() -> None:
    docs = documents(fold(realistic_history().events))
    for gone in (ulid(102), ulid(105), ulid(203), ulid(204)):
        assert gone.encode() not in docs[""]


def test_etag_is_a_quoted_strong_hash_of_the_bytes() -> None:
    docs = documents(fold(realistic_history().events))
    tag = etag_of(docs[""])
    assert tag.startswith('"') and tag.endswith('"') and not tag.startswith("W/")
    assert tag == etag_of(bytes(docs[""])) != etag_of(docs["eu"])
