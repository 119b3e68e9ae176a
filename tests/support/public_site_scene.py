"""A status page in the middle of a bad day, written through the HTTP API of a running Beacon the way an
operator's tooling would: a group of two components, three more, an ongoing incident (a partial outage of the
API, a degraded dashboard), a maintenance window in progress, one scheduled in two days and an incident
resolved yesterday. The browser tests photograph it; the real consumers read its JSON."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.live_server import Beacon, request

SLUG = "acme"
INCIDENT_NAME = "Elevated error rates on the API"
RESOLVED_NAME = "Login failures for some users"
IN_PROGRESS_NAME = "Database failover drill"
SCHEDULED_NAME = "Network upgrade in Frankfurt"
TIME_ZONE = "Europe/Berlin"
COMPONENTS = ("API", "Dashboard", "Web app", "Database", "Webhooks")


@dataclass(frozen=True)
class Scene:
    page_id: str
    components: dict[str, str]
    """Name → id."""
    incident_id: str
    resolved_id: str
    in_progress_id: str
    scheduled_id: str

    def index_url(self, beacon: Beacon) -> str:
        return f"{beacon.url}/{SLUG}"


def _call(beacon: Beacon, method: str, path: str, token: str, body: object = None) -> dict[str, Any]:
    answer = request(method, beacon.url + path, token, body)
    assert answer.status in (200, 201), (method, path, answer.status, answer.body[:500])
    result: dict[str, Any] = json.loads(answer.body)
    return result


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def _statuses(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"component_id": component, "component_status": status} for component, status in pairs]


def build_scene(beacon: Beacon) -> Scene:
    admin, publish = beacon.keys.admin, beacon.keys.publish
    page = _call(
        beacon, "POST", "/v2/status_pages", admin, {"name": "Acme Cloud", "slug": SLUG, "time_zone": TIME_ZONE}
    )["status_page"]
    ids = {
        name: _call(beacon, "POST", "/v2/status_page_components", admin, {"name": name})["status_page_component"]["id"]
        for name in COMPONENTS
    }
    items = [
        {"group": {"name": "Core platform", "components": [{"component_id": ids[n]} for n in ("API", "Dashboard")]}},
        *({"component": {"component_id": ids[name]}} for name in ("Web app", "Database", "Webhooks")),
    ]
    _call(beacon, "PUT", f"/v2/status_page_structures/{page['id']}", admin, {"items": items})

    now = datetime.now(UTC)
    for days_ago, name, hit in PAST:
        _retrospective(beacon, page["id"], name, now - timedelta(days=days_ago), [(ids[c], st) for c, st in hit])
    resolved = _call(
        beacon,
        "POST",
        "/v2/status_page_retrospective_incidents",
        publish,
        {
            "idempotency_key": "scene-resolved",
            "status_page_id": page["id"],
            "name": RESOLVED_NAME,
            "updates": [
                {
                    "published_at": _stamp(now - timedelta(days=1, hours=2)),
                    "message": "Some users cannot log in.",
                    "incident_status": "investigating",
                    "component_statuses": _statuses((ids["Web app"], "degraded_performance")),
                },
                {
                    "published_at": _stamp(now - timedelta(days=1, hours=1)),
                    "message": "Fixed: a certificate had expired. We now alert **30 days** before expiry.",
                    "incident_status": "resolved",
                },
            ],
        },
    )["status_page_incident"]
    incident = _call(
        beacon,
        "POST",
        "/v2/status_page_incidents",
        publish,
        {
            "idempotency_key": "scene-incident",
            "status_page_id": page["id"],
            "name": INCIDENT_NAME,
            "message": "We are investigating elevated 5xx rates on the public API.",
            "incident_status": "investigating",
            "notify_subscribers": False,
            "component_statuses": _statuses(
                (ids["API"], "partial_outage"), (ids["Dashboard"], "degraded_performance")
            ),
        },
    )["status_page_incident"]
    _call(
        beacon,
        "POST",
        "/v2/status_page_incident_updates",
        publish,
        {
            "status_page_incident_id": incident["id"],
            "message": "We found a **faulty deploy** of the edge proxy and are rolling it back.",
            "incident_status": "identified",
            "notify_subscribers": False,
        },
    )
    in_progress = _call(
        beacon,
        "POST",
        "/v2/status_page_maintenances",
        publish,
        {
            "idempotency_key": "scene-window-now",
            "status_page_id": page["id"],
            "name": IN_PROGRESS_NAME,
            "message": "The drill has started. Writes may pause for up to 30 seconds.",
            "maintenance_status": "maintenance_in_progress",
            "start_at": _stamp(now - timedelta(minutes=5)),
            "end_at": _stamp(now + timedelta(hours=1)),
            "affected_component_ids": [ids["Database"]],
            "notify_subscribers": False,
        },
    )["status_page_maintenance"]
    _call(
        beacon,
        "POST",
        "/v2/status_page_maintenance_updates",
        publish,
        {
            "status_page_maintenance_id": in_progress["id"],
            "message": "Failing over to the standby now.",
            "notify_subscribers": False,
            "component_statuses": _statuses((ids["Database"], "under_maintenance")),
        },
    )
    scheduled = _call(
        beacon,
        "POST",
        "/v2/status_page_maintenances",
        publish,
        {
            "idempotency_key": "scene-window-next",
            "status_page_id": page["id"],
            "name": SCHEDULED_NAME,
            "message": "We will upgrade the core routers. No downtime expected.",
            "maintenance_status": "maintenance_scheduled",
            "start_at": _stamp(now + timedelta(days=2)),
            "end_at": _stamp(now + timedelta(days=2, hours=2)),
            "affected_component_ids": [ids["API"], ids["Web app"]],
            "notify_subscribers": False,
        },
    )["status_page_maintenance"]
    scene = Scene(page["id"], ids, incident["id"], resolved["id"], in_progress["id"], scheduled["id"])
    wait_for(f"{beacon.url}/{SLUG}", SCHEDULED_NAME.encode(), b"Failing over to the standby now.")
    return scene


PAST = (
    (85, "Elevated latency across the platform", [(c, "degraded_performance") for c in COMPONENTS]),
    (61, "API unavailable in one region", [("API", "full_outage"), ("Dashboard", "partial_outage")]),
    (19, "Webhook deliveries delayed", [("Webhooks", "degraded_performance")]),
)
"""Incidents imported from an earlier provider: the bars have three months of history to show."""


def _retrospective(
    beacon: Beacon, page_id: str, name: str, began: datetime, hit: list[tuple[str, str]]
) -> None:
    _call(
        beacon,
        "POST",
        "/v2/status_page_retrospective_incidents",
        beacon.keys.publish,
        {
            "idempotency_key": f"scene-{name}",
            "status_page_id": page_id,
            "name": name,
            "updates": [
                {
                    "published_at": _stamp(began),
                    "message": "We are investigating.",
                    "incident_status": "investigating",
                    "component_statuses": _statuses(*hit),
                },
                {
                    "published_at": _stamp(began + timedelta(minutes=47)),
                    "message": "Resolved.",
                    "incident_status": "resolved",
                },
            ],
        },
    )


def wait_for(url: str, *needles: bytes, timeout: float = 30.0) -> bytes:
    """GET `url` until its body holds every needle (the projections render in the background)."""
    deadline = time.monotonic() + timeout
    body = b""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = bytes(response.read())
            if all(needle in body for needle in needles):
                return body
        except urllib.error.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never showed {needles!r}; last body: {body[:300]!r}")
