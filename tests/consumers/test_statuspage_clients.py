"""Clients written for Statuspage, unchanged but for the URL, against a running Beacon with an ongoing
incident, a window in progress, a scheduled one and a resolved incident (tests/support/public_site_scene.py):
`statuspage-prometheus-exporter` (PyPI) turns summary.json into the metrics an alert would fire on, and the
`statuspage.io` npm client (3.3.8, from tests/consumers/npm, installed by `make test`) reads all eight
documents."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.live_server import Beacon
from tests.support.public_site_scene import (
    IN_PROGRESS_NAME,
    INCIDENT_NAME,
    PAST,
    RESOLVED_NAME,
    SCHEDULED_NAME,
    SLUG,
    Scene,
)

NPM_CLIENT = Path(__file__).parent / "npm"

EXPORTER = """
from prometheus_client import generate_latest
from statuspage_prometheus_exporter.service_monitor import monitor_services

monitor_services(is_initial_run=True)
print(generate_latest().decode())
"""


def _exporter_metrics(summary_url: str, workdir: Path) -> dict[str, list[tuple[dict[str, str], float]]]:
    """One polling pass of the exporter, in a process of its own: it reads services.json when imported and
    keeps its cache in the working directory."""
    services = workdir / "services.json"
    services.write_text(json.dumps({"beacon": {"url": summary_url, "name": "Beacon"}}))
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLACK")}
    out = subprocess.run(
        [sys.executable, "-c", EXPORTER],
        cwd=workdir,
        env={**env, "SERVICES_JSON_PATH": str(services)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    metrics: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(out):
        for sample in family.samples:
            metrics.setdefault(sample.name, []).append((sample.labels, sample.value))
    return metrics


async def test_the_prometheus_exporter_reports_components_incidents_and_windows(
    scene: tuple[Beacon, Scene], tmp_path: Path
) -> None:
    beacon, built = scene
    metrics = await asyncio.to_thread(_exporter_metrics, f"{beacon.url}/{SLUG}/api/v2/summary.json", tmp_path)

    assert metrics["statuspage_probe_check"] == [({"service_name": "Beacon"}, 1.0)]
    assert metrics["statuspage_service_status"] == [({"service_name": "Beacon"}, 0.0)]
    components = {labels["component_name"]: value for labels, value in metrics["statuspage_component_status"]}
    assert components == {
        "Core platform": 0.0,
        "API": 0.0,
        "Dashboard": 0.0,
        "Web app": 1.0,
        "Database": 0.0,  # under maintenance: not operational, as the exporter reads it
        "Webhooks": 1.0,
    }
    incidents = [(labels, value) for labels, value in metrics["statuspage_incident_info"] if value == 1.0]
    assert [(i["incident_id"], i["incident_name"], i["impact"]) for i, _ in incidents] == [
        (built.incident_id, INCIDENT_NAME, "major")
    ]
    assert incidents[0][0]["shortlink"].endswith(f"/incidents/{built.incident_id}") or incidents[0][0][
        "shortlink"
    ] in ("", "N/A")
    windows = {labels["maintenance_id"]: labels["maintenance_name"] for labels, value in
               metrics["statuspage_maintenance_info"] if value == 1.0}
    assert windows == {built.in_progress_id: IN_PROGRESS_NAME, built.scheduled_id: SCHEDULED_NAME}


def _npm_read(page_url: str) -> dict[str, Any]:
    out = subprocess.run(
        ["node", str(NPM_CLIENT / "read_all.js"), page_url], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    read: dict[str, Any] = json.loads(out.stdout)
    return read


async def test_the_npm_client_reads_all_eight_documents(scene: tuple[Beacon, Scene]) -> None:
    if shutil.which("node") is None or not (NPM_CLIENT / "node_modules" / "statuspage.io").is_dir():
        pytest.skip("the statuspage.io npm client is not installed: `make test` installs it with npm ci")
    beacon, built = scene
    read = await asyncio.to_thread(_npm_read, f"{beacon.url}/{SLUG}")

    assert sorted(read) == sorted(
        [
            "summary.json",
            "status.json",
            "components.json",
            "incidents.json",
            "incidents/unresolved.json",
            "scheduled-maintenances.json",
            "scheduled-maintenances/upcoming.json",
            "scheduled-maintenances/active.json",
        ]
    )
    for document in read.values():
        assert document["page"]["id"] == built.page_id and document["page"]["name"] == "Acme Cloud"
    assert read["status.json"]["status"]["indicator"] == "major"
    assert read["summary.json"]["status"] == read["status.json"]["status"]

    rows = read["components.json"]["components"]
    assert [row["name"] for row in rows] == ["Core platform", "API", "Dashboard", "Web app", "Database", "Webhooks"]
    group = rows[0]
    assert group["group"] is True and group["components"] == [built.components["API"], built.components["Dashboard"]]
    assert {row["name"]: row["status"] for row in rows[1:]} == {
        "API": "partial_outage",
        "Dashboard": "degraded_performance",
        "Web app": "operational",
        "Database": "under_maintenance",
        "Webhooks": "operational",
    }
    assert read["summary.json"]["components"] == rows

    def names(document: str, key: str) -> list[str]:
        return [notice["name"] for notice in read[document][key]]

    assert names("incidents.json", "incidents") == [INCIDENT_NAME, RESOLVED_NAME, *(name for _, name, _ in PAST[::-1])]
    assert names("incidents/unresolved.json", "incidents") == [INCIDENT_NAME]
    assert names("summary.json", "incidents") == [INCIDENT_NAME]
    assert sorted(names("scheduled-maintenances.json", "scheduled_maintenances")) == sorted(
        [IN_PROGRESS_NAME, SCHEDULED_NAME]
    )
    assert names("scheduled-maintenances/upcoming.json", "scheduled_maintenances") == [SCHEDULED_NAME]
    assert names("scheduled-maintenances/active.json", "scheduled_maintenances") == [IN_PROGRESS_NAME]
    unresolved = read["incidents/unresolved.json"]["incidents"][0]
    assert [update["status"] for update in unresolved["incident_updates"]] == ["identified", "investigating"]
    assert unresolved["impact"] == "major"
