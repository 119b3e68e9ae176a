"""`GET /metrics` (README "Operations"): Prometheus text through HTTP, as a scraper reads it — families named by
Prometheus conventions with HELP text, labels free of ids, keys and addresses, the bearer token on the HTTP port,
and, through real `beacon serve` processes, every HTTP worker and the background worker in one scrape."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from infra.settings import Settings
from tests.support.http import Keys
from tests.support.live_server import BEACON, create_key, free_port, live_server, request

ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when there is none)."""
    wanted = set(labels.items())
    return sum(v for (n, got), v in samples(text).items() if n == name and wanted <= got)


async def scrape(client: AsyncTestClient[Litestar], token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return response.text


async def test_requests_appends_projections_widget_and_pools_are_exported(
    client: AsyncTestClient[Litestar], keys: Keys
) -> None:
    before = await scrape(client)
    created = await client.post(
        "/v2/status_pages", json={"name": "Acme", "slug": "acme"}, headers=Keys.header(keys.admin)
    )
    assert created.status_code == 201
    page_id = created.json()["status_page"]["id"]
    shown = await client.get(f"/v2/status_pages/{page_id}", headers=Keys.header(keys.read))
    assert shown.status_code == 200
    assert (await client.get("/v2/status_pages/nope", headers=Keys.header(keys.read))).status_code == 404
    assert (await client.get("/no/such/route")).status_code == 404
    widget = await client.get("/acme/api/v1/summary")
    assert widget.status_code == 200
    revalidated = await client.get("/acme/api/v1/summary", headers={"If-None-Match": widget.headers["etag"]})
    assert revalidated.status_code == 304
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/v2/status_pages/{status_page_id}"
    assert delta("beacon_http_requests_total", route="/v2/status_pages", method="POST", status="201") == 1
    assert delta("beacon_http_requests_total", route=route, method="GET", status="200") == 1
    assert delta("beacon_http_requests_total", route=route, method="GET", status="404") == 1
    assert delta("beacon_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert delta("beacon_http_request_duration_seconds_count", route=route, method="GET") == 2
    assert delta("beacon_appends_total", outcome="appended") >= 1
    assert delta("beacon_appended_events_total") >= 1
    assert delta("beacon_append_duration_seconds_count") == delta("beacon_appends_total")
    assert delta("beacon_public_document_responses_total", document="widget", status="200") == 1
    assert delta("beacon_public_document_responses_total", document="widget", status="304") == 1
    # The write answered after its read models caught up, and the scrape re-read their lag.
    assert value(after, "beacon_projection_position", projection="public_widget") >= 1
    assert value(after, "beacon_projection_lag_events", projection="public_widget") == 0
    assert value(after, "beacon_projection_stopped", projection="public_widget") == 0
    assert value(after, "beacon_db_pool_max_connections", pool="api") >= 1
    assert value(after, "beacon_db_pool_connections", pool="api", state="idle") >= 0

    # No label value carries an id, a key or the raw path.
    for (_, labels), _v in samples(after).items():
        for _name, label in labels:
            assert not ULID.search(label) and page_id not in label and keys.read not in label
            assert "nope" not in label and "/no/such" not in label


async def test_every_beacon_family_follows_prometheus_naming_and_has_help(client: AsyncTestClient[Litestar]) -> None:
    families = [f for f in text_string_to_metric_families(await scrape(client)) if f.name.startswith("beacon_")]
    names = {f.name for f in families}
    assert {
        "beacon_http_requests",
        "beacon_http_request_duration_seconds",
        "beacon_appends",
        "beacon_appended_events",
        "beacon_append_duration_seconds",
        "beacon_public_document_responses",
        "beacon_projection_position",
        "beacon_projection_lag_events",
        "beacon_projection_lag_seconds",
        "beacon_projection_stopped",
        "beacon_db_pool_connections",
        "beacon_db_pool_max_connections",
    } <= names
    for family in families:
        assert family.documentation, family.name
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
        assert not family.name.endswith(("_ms", "_milliseconds")), family.name


@pytest.fixture
async def token_client(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    app = create_app(dataclasses.replace(settings, metrics_token="scrape-secret"))
    async with AsyncTestClient(app=app) as client:
        yield client


async def test_a_metrics_token_is_required_on_the_http_port_when_set(token_client: AsyncTestClient[Litestar]) -> None:
    missing = await token_client.get("/metrics")
    assert missing.status_code == 401
    assert missing.json()["type"] == "authentication_error"
    assert (await token_client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
    assert "beacon_http_requests_total" in await scrape(token_client, "scrape-secret")


async def test_with_a_metrics_port_of_its_own_the_http_port_has_no_metrics(settings: Settings) -> None:
    app = create_app(dataclasses.replace(settings, metrics_port=settings.port + 1))
    async with AsyncTestClient(app=app) as client:
        assert (await client.get("/metrics")).status_code == 404


# --- through real processes -----------------------------------------------------------------------------------------


def scrape_until(url: str, done: Callable[[str], bool], timeout: float = 15.0) -> str:
    """Scrape until `done` holds: other processes move their widget counts in about once a second."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            text = request("GET", url).body.decode()
        except OSError:  # a standalone worker still starting
            text = ""
        if done(text) or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


def test_one_scrape_covers_both_http_workers_and_the_background_worker(database_url: str, tmp_path: Path) -> None:
    admin = create_key(database_url, "admin", "admin")
    metrics_port = free_port()
    with live_server(
        database_url,
        tmp_path,
        extra_args=["--workers", "2", "--metrics-port", str(metrics_port)],
        extra_env={"BEACON_METRICS_TOKEN": "only-for-the-http-port"},
    ) as server:
        created = request("POST", f"{server.url}/v2/status_pages", admin, {"name": "Acme", "slug": "acme"})
        assert created.status == 201
        # The creating request waited for its own process's widget; the other follows within a second.
        deadline = time.monotonic() + 10
        while {request("GET", f"{server.url}/acme/api/v1/summary").status for _ in range(20)} != {200}:
            assert time.monotonic() < deadline, "the widget reached every HTTP worker"
            time.sleep(0.1)
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"

        def widget_hits(text: str) -> float:
            return value(text, "beacon_public_document_responses_total", document="widget", status="200")

        def list_requests(text: str) -> float:
            return value(text, "beacon_http_requests_total", route="/v2/status_pages", method="GET", status="200")

        # The warm-up's hits at the process that does not answer the scrape reach the shared values within
        # about a second: count from a value that has stopped moving, or they would be counted as ours.
        before = scrape_until(metrics_url, lambda text: "beacon_public_document_responses_total" in text)
        deadline = time.monotonic() + 15
        while True:
            time.sleep(1.5)
            again = scrape_until(metrics_url, lambda text: "beacon_public_document_responses_total" in text)
            if widget_hits(again) == widget_hits(before) or time.monotonic() > deadline:
                break
            before = again
        hits, lists = 200, 100
        served_by = set()
        for _ in range(hits):
            answer = request("GET", f"{server.url}/acme/api/v1/summary")
            assert answer.status == 200
            served_by.add(answer.request_id.rsplit("-", 1)[0])  # the id's prefix is drawn once per process
        for _ in range(lists):
            answer = request("GET", f"{server.url}/v2/status_pages", admin)
            assert answer.status == 200
            served_by.add(answer.request_id.rsplit("-", 1)[0])
        assert len(served_by) == 2, "both HTTP workers answered"

        def position(text: str) -> float:
            return value(text, "beacon_projection_position", projection="public_widget")

        # Processes read the projections' lag every few seconds; this scrape is answered by none of them.
        def settled(text: str) -> bool:
            return widget_hits(text) - widget_hits(before) >= hits and position(text) > 0

        after = scrape_until(metrics_url, settled)
        assert widget_hits(after) - widget_hits(before) == hits
        assert list_requests(after) - list_requests(before) == lists
        timed = "beacon_http_request_duration_seconds_count"
        assert value(after, timed, route="/v2/status_pages", method="GET") >= lists
        # The background worker's pool is there too, and the projections caught up with the page.
        assert value(after, "beacon_db_pool_max_connections", pool="worker") > 0
        assert value(after, "beacon_db_pool_max_connections", pool="api") > 0
        assert position(after) >= 1
        assert value(after, "beacon_appends_total", outcome="appended") >= 1
        # With a metrics port of its own, the HTTP port has no /metrics, token or not.
        assert request("GET", f"{server.url}/metrics", "only-for-the-http-port").status == 404


def test_a_standalone_worker_serves_its_metrics_on_its_port(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "BEACON_DATA_DIR": str(tmp_path / "data")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [BEACON, "worker", "--metrics-port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        text = scrape_until(
            f"http://127.0.0.1:{port}/metrics",
            lambda text: 'beacon_projection_position{projection="public_widget"}' in text,
            timeout=60,
        )
        assert value(text, "beacon_db_pool_max_connections", pool="worker") > 0, (tmp_path / "worker.log").read_text()
        assert value(text, "beacon_projection_stopped", projection="public_widget") == 0
        assert 'beacon_projection_lag_seconds{projection="public_widget"}' in text
    finally:
        worker.terminate()
        worker.wait(15)


# --- the example alert rules and dashboard --------------------------------------------------------------------------

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations"


def promql(alerts: dict[str, Any], dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the alert rules and of the dashboard's panels."""
    rules = [rule for group in alerts["groups"] for rule in group["rules"]]
    for rule in rules:
        assert {"alert", "expr", "for", "labels", "annotations"} <= set(rule), rule
        assert rule["labels"]["severity"] in ("page", "warning") and rule["annotations"]["summary"]
    targets = [target for panel in dashboard["panels"] for target in panel["targets"]]
    assert targets and all(target["refId"] and target["expr"] for target in targets)
    return [rule["expr"] for rule in rules] + [target["expr"] for target in targets]


async def test_the_example_alerts_and_dashboard_use_only_what_metrics_exports(
    client: AsyncTestClient[Litestar], keys: Keys
) -> None:
    created = await client.post(
        "/v2/status_pages", json={"name": "Acme", "slug": "acme"}, headers=Keys.header(keys.admin)
    )
    assert created.status_code == 201
    assert (await client.get("/acme/api/v1/summary")).status_code == 200  # every labelled family has a child
    exported: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(await scrape(client)):
        for sample in family.samples:
            exported.setdefault(sample.name, set()).update(sample.labels)

    alerts = yaml.safe_load((OPERATIONS / "alerts.yml").read_text())
    dashboard = json.loads((OPERATIONS / "grafana-dashboard.json").read_text())
    expressions = promql(alerts, dashboard)
    for expr in expressions:
        names = re.findall(r"\bbeacon_\w+", expr)
        assert names, expr
        assert set(names) <= set(exported), f"{expr}: {set(names) - set(exported)} is not exported"
        for name, matchers in re.findall(r"\b(beacon_\w+)\{([^}]*)\}", expr):
            assert set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers)) <= exported[name], expr
        labels = set().union(*(exported[name] for name in names))
        for grouping in re.findall(r"\bby \(([^)]*)\)", expr):
            assert {label.strip() for label in grouping.split(",")} <= labels, expr
    # What an operator must be paged on has a rule.
    rules = " ".join(rule["expr"] for group in alerts["groups"] for rule in group["rules"])
    needed_rules = (
        "beacon_projection_stopped",
        "beacon_projection_lag_seconds",
        '"5.."',
        "beacon_db_pool_connections",
        "beacon_notification_oldest_due_seconds",
        "beacon_notification_channel_paused",
    )
    for needed in needed_rules:
        assert needed in rules, needed


class Failing:
    """A read model writes do not wait for, which fails on every event once `broken`."""

    name = "failing_for_metrics"
    writes_wait = False
    tables: tuple[str, ...] = ("failing_for_metrics_seen",)
    schema_sql = "CREATE TABLE IF NOT EXISTS failing_for_metrics_seen (position bigint PRIMARY KEY)"

    def __init__(self) -> None:
        self.broken = False

    async def apply(self, conn: Any, events: Any) -> None:
        for event in events:
            if self.broken:
                raise ValueError(f"cannot fold position {event.position}")
            await conn.execute("INSERT INTO failing_for_metrics_seen VALUES ($1)", event.position)


async def test_a_projection_failure_is_counted_under_its_name(settings: Settings, keys: Keys) -> None:
    from projections.registry import all_projections

    failing = Failing()
    app = create_app(settings, projections=[*all_projections(), failing])
    async with AsyncTestClient(app=app) as client:
        before = await scrape(client)
        assert ("beacon_projection_failures_total", frozenset({("projection", "failing_for_metrics")})) in samples(
            before
        ), "every projection's counter is exported from 0"
        failing.broken = True
        created = await client.post(
            "/v2/status_pages", json={"name": "Acme", "slug": "acme"}, headers=Keys.header(keys.admin)
        )
        assert created.status_code == 201
        deadline = time.monotonic() + 30
        while value(after := await scrape(client), "beacon_projection_stopped", projection="failing_for_metrics") == 0:
            assert time.monotonic() < deadline, "the projection never stopped"
            await asyncio.sleep(0.05)
    counted = value(after, "beacon_projection_failures_total", projection="failing_for_metrics")
    assert counted - value(before, "beacon_projection_failures_total", projection="failing_for_metrics") == 1
    assert value(after, "beacon_projection_failures_total", projection="public_widget") == value(
        before, "beacon_projection_failures_total", projection="public_widget"
    )
