"""The Statuspage mapping: the status indicator rule, incident impact and the objects' keys and order, as a
Statuspage client reads them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from projections import statuspage
from projections.statuspage import (
    ComponentChange,
    ComponentFacts,
    NoticeFacts,
    PageFacts,
    UpdateFacts,
    component_rollup,
    incident_impact,
    status_indicator,
)

T0 = datetime(2026, 3, 3, 14, 5, 14, 473921, tzinfo=UTC)


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], ("none", "All Systems Operational")),
        (["operational", "operational"], ("none", "All Systems Operational")),
        (["full_outage", "full_outage"], ("critical", "Major System Outage")),
        (["full_outage", "operational"], ("major", "Partial System Outage")),
        (["partial_outage", "partial_outage"], ("major", "Partial System Outage")),
        (["partial_outage", "operational"], ("minor", "Minor Service Outage")),
        (["partial_outage", "degraded_performance"], ("minor", "Minor Service Outage")),
        (["degraded_performance", "degraded_performance"], ("minor", "Degraded System Service")),
        (["degraded_performance", "operational"], ("minor", "Partially Degraded Service")),
        (["degraded_performance", "under_maintenance"], ("minor", "Partially Degraded Service")),
        (["under_maintenance", "operational"], ("none", "Service Under Maintenance")),
        (["under_maintenance", "under_maintenance"], ("none", "Service Under Maintenance")),
        (["full_outage", "under_maintenance"], ("major", "Partial System Outage")),
    ],
)
def test_component_rollup(statuses: list[str], expected: tuple[str, str]) -> None:
    assert component_rollup(statuses) == expected


@pytest.mark.parametrize(
    ("statuses", "impacts", "expected"),
    [
        (["operational"], [], ("none", "All Systems Operational")),
        (["operational"], ["minor"], ("minor", "Minor Service Outage")),
        (["operational"], ["critical", "minor"], ("critical", "Major System Outage")),
        (["under_maintenance"], ["maintenance"], ("none", "Service Under Maintenance")),
        (["partial_outage", "partial_outage"], ["minor"], ("major", "Partial System Outage")),
        (["degraded_performance"], ["major"], ("major", "Partial System Outage")),
        (["degraded_performance"], ["minor"], ("minor", "Degraded System Service")),
    ],
)
def test_status_indicator_is_the_worse_of_components_and_unresolved_incidents(
    statuses: list[str], impacts: list[str], expected: tuple[str, str]
) -> None:
    assert status_indicator(statuses, impacts) == expected
    assert expected[0] in ("none", "minor", "major", "critical")


@pytest.mark.parametrize(
    ("worst", "impact"),
    [
        (None, "minor"),
        ("operational", "minor"),
        ("degraded_performance", "minor"),
        ("partial_outage", "major"),
        ("full_outage", "critical"),
    ],
)
def test_incident_impact_follows_the_worst_status_reached(worst: str | None, impact: str) -> None:
    assert incident_impact(worst) == impact


def test_timestamps_are_utc_with_milliseconds() -> None:
    assert statuspage.timestamp(T0) == "2026-03-03T14:05:14.473Z"
    assert statuspage.timestamp(T0.astimezone(timezone(timedelta(hours=1)))) == "2026-03-03T14:05:14.473Z"


def test_page_object_omits_url_without_one() -> None:
    page = PageFacts(id="P", name="Acme", url=None, time_zone="Europe/Paris", updated_at=T0)
    assert list(statuspage.page_object(page)) == ["id", "name", "time_zone", "updated_at"]
    with_url = PageFacts(id="P", name="Acme", url="https://status.acme.test", time_zone="UTC", updated_at=T0)
    assert statuspage.page_object(with_url) == {
        "id": "P",
        "name": "Acme",
        "url": "https://status.acme.test",
        "time_zone": "UTC",
        "updated_at": "2026-03-03T14:05:14.473Z",
    }


def test_group_row_lists_its_children_and_full_outage_is_major_outage() -> None:
    group = ComponentFacts(
        id="G",
        name="Auth",
        status="full_outage",
        created_at=T0,
        updated_at=T0,
        position=2,
        description=None,
        showcase=True,
        start_date=None,
        group_id=None,
        group=True,
        components=("C1", "C2"),
    )
    child = ComponentFacts(
        id="C1",
        name="Login",
        status="full_outage",
        created_at=T0,
        updated_at=T0,
        position=1,
        description="d",
        showcase=False,
        start_date=date(2026, 1, 2),
        group_id="G",
    )
    rows = statuspage.component_objects([group, child], "P")
    assert rows[0] == {
        "id": "G",
        "name": "Auth",
        "status": "major_outage",
        "created_at": "2026-03-03T14:05:14.473Z",
        "updated_at": "2026-03-03T14:05:14.473Z",
        "position": 2,
        "description": None,
        "showcase": True,
        "start_date": None,
        "group_id": None,
        "page_id": "P",
        "group": True,
        "only_show_if_degraded": False,
        "components": ["C1", "C2"],
    }
    assert "components" not in rows[1]
    assert rows[1]["group_id"] == "G" and rows[1]["start_date"] == "2026-01-02"


def test_incident_object_lists_updates_newest_first_with_statuspage_fields() -> None:
    later = T0 + timedelta(minutes=30)
    notice = NoticeFacts(
        id="I",
        kind="incident",
        name="Login failing",
        status="resolved",
        created_at=T0,
        updated_at=later,
        updates=(
            UpdateFacts(
                "U1",
                "investigating",
                "Looking",
                T0,
                True,
                (ComponentChange("C1", "Login", "operational", "full_outage"),),
            ),
            UpdateFacts(
                "U2", "resolved", "Fixed", later, False, (ComponentChange("C1", "Login", "full_outage", "operational"),)
            ),
        ),
        worst_reached="full_outage",
        resolved_at=later,
    )
    data = statuspage.incident(notice, page_id="P", base_url="https://s.test/")
    assert list(data) == [
        "id",
        "name",
        "status",
        "created_at",
        "updated_at",
        "monitoring_at",
        "resolved_at",
        "impact",
        "shortlink",
        "started_at",
        "page_id",
        "incident_updates",
        "components",
    ]
    assert data["impact"] == "critical"  # stays after resolution
    assert data["shortlink"] == "https://s.test/incidents/I"
    assert [u["id"] for u in data["incident_updates"]] == ["U2", "U1"]
    assert data["incident_updates"][1] == {
        "id": "U1",
        "status": "investigating",
        "body": "Looking",
        "incident_id": "I",
        "created_at": "2026-03-03T14:05:14.473Z",
        "updated_at": "2026-03-03T14:05:14.473Z",
        "display_at": "2026-03-03T14:05:14.473Z",
        "affected_components": [
            {"code": "C1", "name": "Login", "old_status": "operational", "new_status": "major_outage"}
        ],
        "deliver_notifications": True,
        "custom_tweet": None,
        "tweet_id": None,
    }


def test_window_object_has_maintenance_impact_statuses_and_schedule() -> None:
    notice = NoticeFacts(
        id="M",
        kind="maintenance",
        name="DB upgrade",
        status="maintenance_in_progress",
        created_at=T0,
        updated_at=T0,
        updates=(UpdateFacts("U1", "maintenance_in_progress", "Started", T0, True, None),),
        worst_reached=None,
        scheduled_for=T0,
        scheduled_until=T0 + timedelta(hours=1),
    )
    data = statuspage.incident(notice, page_id="P", base_url=None)
    assert (data["impact"], data["status"], data["shortlink"]) == ("maintenance", "in_progress", None)
    assert data["incident_updates"][0]["affected_components"] is None
    assert list(data)[-2:] == ["scheduled_for", "scheduled_until"]
    assert data["scheduled_until"] == "2026-03-03T15:05:14.473Z"


def test_window_started_at_is_when_it_last_went_in_progress() -> None:
    """Statuspage's `started_at` is when the event began: for a window, its move to in progress, not its
    announcement; the object falls back to `created_at` only while it never went in progress."""
    t = [T0 + timedelta(minutes=m) for m in range(4)]
    assert statuspage.window_started_at([("maintenance_scheduled", t[0])]) is None
    progress = [("maintenance_scheduled", t[0]), ("maintenance_in_progress", t[1]), ("maintenance_in_progress", t[2])]
    assert statuspage.window_started_at(progress) == t[1]  # a further in-progress update does not move it
    back = [*progress, ("maintenance_scheduled", t[2]), ("maintenance_in_progress", t[3])]
    assert statuspage.window_started_at(back) == t[3]  # the domain's rule: the last entry
    assert statuspage.window_started_at([*progress, ("maintenance_complete", t[3])]) == t[1]

    notice = NoticeFacts(
        id="M",
        kind="maintenance",
        name="DB upgrade",
        status="maintenance_in_progress",
        created_at=t[0],
        updated_at=t[1],
        updates=(),
        worst_reached=None,
        started_at=t[1],
    )
    assert statuspage.incident(notice, page_id="P", base_url=None)["started_at"] == "2026-03-03T14:06:14.473Z"
    scheduled = NoticeFacts(
        id="M",
        kind="maintenance",
        name="DB",
        status="maintenance_scheduled",
        created_at=t[0],
        updated_at=t[0],
        updates=(),
        worst_reached=None,
    )
    assert statuspage.incident(scheduled, page_id="P", base_url=None)["started_at"] == "2026-03-03T14:05:14.473Z"
