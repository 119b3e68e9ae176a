"""What a notification says (docs/architecture.md#notification-outbox): given a page and a notice as of one
update → the exact subject, the parts' key lines and the Statuspage webhook body."""

from __future__ import annotations

from datetime import timedelta

import pytest

from projections.notification_content import (
    NoticeFacts,
    PageFacts,
    UpdateFacts,
    format_times,
    update_content,
    webhook_body,
)
from tests.support.builders import T0, at

PAGE = PageFacts(
    id="01PAGE0000000000000000000A",
    name="Acme",
    slug="acme",
    url="https://status.acme.example",
    time_zone="Europe/Paris",
    status_indicator="minor",
    status_description="Minor Service Outage",
)


def incident(*updates: UpdateFacts) -> NoticeFacts:
    statuses: dict[str, str] = {}
    for update in updates:
        statuses.update(update.component_statuses)
    return NoticeFacts(
        id="01NOTICE000000000000000001",
        kind="incident",
        name="API errors",
        created_at=updates[0].published_at,
        updates=updates,
        component_statuses=statuses,
        component_names={"01C": "API", "01D": "Storage"},
    )


FIRST = UpdateFacts("01U1", T0, "We are *investigating*.", "investigating", {"01C": "partial_outage"})
SECOND = UpdateFacts("01U2", at(30), "Found it.", "identified", {"01D": "degraded_performance"})


@pytest.mark.parametrize(
    ("status", "word"),
    [
        ("investigating", "Investigating"),
        ("identified", "Identified"),
        ("monitoring", "Monitoring"),
        ("resolved", "Resolved"),
        ("maintenance_scheduled", "Scheduled"),
        ("maintenance_in_progress", "In progress"),
        ("maintenance_complete", "Completed"),
    ],
)
def test_the_subject_names_page_notice_and_status_word(status: str, word: str) -> None:
    notice = incident(UpdateFacts("01U1", T0, "msg", status, {}))
    assert update_content(PAGE, notice)["subject"] == f"[Acme] API errors — {word}"


def test_times_in_utc_and_the_page_time_zone() -> None:
    assert format_times(T0, "Europe/Paris") == "2026-01-28 10:00 UTC (11:00 CET)"
    assert format_times(T0 + timedelta(hours=14), "Asia/Tokyo") == "2026-01-29 00:00 UTC (09:00 JST)"
    assert format_times(T0 + timedelta(hours=14, minutes=30), "America/New_York") == (
        "2026-01-29 00:30 UTC (2026-01-28 19:30 EST)"
    )
    assert format_times(T0, "UTC") == "2026-01-28 10:00 UTC"


def test_the_parts_carry_message_components_times_and_link() -> None:
    content = update_content(PAGE, incident(FIRST, SECOND))
    link = "https://status.acme.example/incidents/01NOTICE000000000000000001"
    assert content["text"] == (
        "API errors — Identified\n\nFound it.\n\nPosted 2026-01-28 10:30 UTC (11:30 CET)\n\n"
        f"Affected components:\n- API: Partial outage\n- Storage: Degraded performance\n\nDetails: {link}\n"
    )
    assert f'<a href="{link}">' in content["html"]
    assert "<li>API: Partial outage</li>" in content["html"]
    assert content["notice"] == {
        "id": "01NOTICE000000000000000001",
        "kind": "incident",
        "name": "API errors",
        "url": link,
    }
    assert content["page"]["host"] == "status.acme.example"
    assert content["first_update"] is False
    assert update_content(PAGE, incident(FIRST))["first_update"] is True
    quiet = UpdateFacts("01U0", T0, "Internal note.", "investigating", {}, notify_subscribers=False)
    assert update_content(PAGE, incident(quiet, SECOND))["first_update"] is True  # the first that told anyone


def test_markdown_is_rendered_without_raw_html() -> None:
    notice = incident(
        UpdateFacts(
            "01U1", T0, "**Down** <img src=x onerror=alert(1)> [docs](javascript:alert(1))", "investigating", {}
        )
    )
    html = update_content(PAGE, notice)["html"]
    assert "<strong>Down</strong>" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # shown as text, never as markup
    assert "<img" not in html and 'href="javascript' not in html


def test_the_webhook_body_is_statuspages_as_of_the_update() -> None:
    body = webhook_body(PAGE, incident(FIRST, SECOND))
    assert body["meta"]["generated_at"] == "2026-01-28T10:30:00.000000Z"
    assert body["page"] == {"id": PAGE.id, "status_indicator": "minor", "status_description": "Minor Service Outage"}
    story = body["incident"]
    assert story["status"] == "identified" and story["impact"] == "major"
    assert story["shortlink"] == "https://status.acme.example/incidents/01NOTICE000000000000000001"
    assert [u["id"] for u in story["incident_updates"]] == ["01U2", "01U1"]  # newest first
    assert story["incident_updates"][0]["affected_components"] == [
        {"code": "01D", "name": "Storage", "old_status": "operational", "new_status": "degraded_performance"}
    ]
    assert [(c["id"], c["status"]) for c in story["components"]] == [
        ("01C", "partial_outage"),
        ("01D", "degraded_performance"),
    ]


def test_a_window_is_sent_as_scheduled_maintenance() -> None:
    window = NoticeFacts(
        id="01NOTICE000000000000000002",
        kind="maintenance",
        name="Storage move",
        created_at=T0,
        updates=[UpdateFacts("01U1", T0, "Planned.", "maintenance_scheduled", {"01D": "operational"})],
        component_statuses={"01D": "operational"},
        start_at=at(60),
        end_at=at(120),
        component_names={"01D": "Storage"},
    )
    content = update_content(PAGE, window)
    story = content["webhook"]["incident"]
    assert (story["status"], story["impact"]) == ("scheduled", "maintenance")
    assert (story["scheduled_for"], story["scheduled_until"]) == (
        "2026-01-28T11:00:00.000Z",
        "2026-01-28T12:00:00.000Z",
    )
    assert "Scheduled 2026-01-28 11:00 UTC (12:00 CET) to 2026-01-28 12:00 UTC (13:00 CET)" in content["text"]
    assert content["notice"]["url"] == "https://status.acme.example/maintenances/01NOTICE000000000000000002"
