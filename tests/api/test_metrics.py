"""`GET /metrics` (README "Operations"): Prometheus text through HTTP, as a scraper reads it — families named by
Prometheus conventions with HELP text, labels free of ids, keys and addresses, the bearer token on the HTTP port,
and, through real `beacon serve` processes, every HTTP worker and the background worker in one scrape."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from infra.settings import Settings
from tests.api.conftest import Keys

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
