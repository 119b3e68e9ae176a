"""The public widget projection, without a database: given events → the exact document bytes
(docs/architecture.md#widget)."""

from __future__ import annotations

from typing import Any, cast

import msgspec
from eventsourcing.domain import Aggregate

from domain.component import Component
from domain.status_page import StatusPage
from infra.ids import ulid_to_uuid
from projections.widget_document import PageState, WidgetState, etag_of, evolve, render_documents
from tests.support.builders import at
from tests.support.widget_history import (
    API,
    BASE,
    BILLING,
    BY,
    EU_API,
    EU_S3,
    LOGIN,
    NAMES,
    PAGE,
    SSO,
    History,
    realistic_history,
    ulid,
)


def ts(minutes: int) -> str:
    return at(minutes).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


def test_the_pages_placing_a_component_follow_a_replaced_structure() -> None:
    """`WidgetState.pages_placing` memoises each page's component ids; a structure replaced since (a new
    `items` list) must be read again, and a page added since must be seen."""

    def placing(*component_ids: str) -> list[dict[str, Any]]:
        return [{"component": {"component_id": c, "hidden": False, "display_uptime": True}} for c in component_ids]

    state = WidgetState()
    state.pages["p1"] = PageState(id="p1", name="P", slug="p", public_url=None, widget_enabled=True, items=placing("a"))
    assert state.pages_placing("a") == {"p1"}
    state.pages["p1"].items = placing("b")
    assert state.pages_placing("a") == set()
    assert state.pages_placing("b") == {"p1"}
    state.pages["p2"] = PageState(id="p2", name="Q", slug="q", public_url=None, widget_enabled=True, items=placing("b"))
    assert state.pages_placing("b") == {"p1", "p2"}
