"""An auditor can read Beacon's log with the unmodified `eventsourcing` library
(docs/architecture.md#1-library-compatible-log): the msgspec transcoder writes the stock JSONTranscoder's
format, and the library's own Postgres `Application` reconstructs an aggregate Beacon's asyncpg store
wrote."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)

from domain.base import Actor, CommandContext, load
from domain.component import ComponentInfo
from domain.status_page import StatusPage, create_status_page, replace_structure, update_status_page
from domain.structure import ComponentItem, GroupItem
from infra.event_store import PostgresEventStore
from infra.ids import new_ulid
from infra.transcoder import MsgspecTranscoder
from tests.support.builders import T0

ADMIN = Actor(type="api_key", id="01KEYADMIN", name="admin key")


def stock_transcoder() -> JSONTranscoder:
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    return transcoder


STATE: dict[str, Any] = {
    "timestamp": datetime(2026, 1, 28, 10, 0, 0, 123456, tzinfo=UTC),
    "originator_topic": "beacon.Incident",
    "name": "Login failing — ünïcode \n\"quoted\"",
    "by": {"type": "api_key", "id": "01KEY", "name": "ops"},
    "components": [{"component_id": "01C", "status": "partial_outage", "at": T0 + timedelta(hours=1)}],
    "ref": uuid.UUID("0190f2a6-3c4e-7d1a-9b2c-3d4e5f607182"),
    "amount": Decimal("99.9500"),
    "notify_subscribers": False,
    "count": 3,
    "note": None,
}


def test_the_stock_transcoder_reads_what_the_msgspec_transcoder_writes() -> None:
    written = MsgspecTranscoder().encode(STATE)
    assert stock_transcoder().decode(written) == STATE
    # Not just readable: the very bytes the library itself would have written.
    assert written == stock_transcoder().encode(STATE)


def test_the_msgspec_transcoder_reads_what_the_stock_transcoder_writes() -> None:
    assert MsgspecTranscoder().decode(stock_transcoder().encode(STATE)) == STATE


def test_the_msgspec_transcoder_refuses_what_the_stock_one_could_not_read() -> None:
    with pytest.raises(TranscodingNotRegisteredError):
        MsgspecTranscoder().encode({"when": T0.date()})
    with pytest.raises(TranscodingNotRegisteredError):
        MsgspecTranscoder().decode(b'{"x":{"_type_":"mystery","_data_":1}}')


def library_env(database_url: str) -> dict[str, str]:
    """The library's Postgres settings for a libpq URL, TCP (`postgresql://u:p@host:port/db`) or
    unix socket (`postgresql://u:@/db?host=/socket/dir`, as the embedded server gives)."""
    parts = urlsplit(database_url)
    query = parse_qs(parts.query)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/"),
        "POSTGRES_HOST": parts.hostname or query["host"][0],
        "POSTGRES_PORT": str(parts.port or query.get("port", ["5432"])[0]),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        # The auditor reads; Beacon's migrations own the schema.
        "CREATE_TABLE": "false",
    }


class Beacon(Application[uuid.UUID]):
    """The library's application whose events table is `beacon_events` (its name, lowercased)."""


def read_with_the_library(database_url: str, page_id: uuid.UUID) -> tuple[StatusPage, list[str]]:
    app = Beacon(env=library_env(database_url))
    try:
        page: StatusPage = app.repository.get(page_id)
        notifications = app.recorder.select_notifications(start=1, limit=100)
        return page, [n.topic for n in notifications]
    finally:
        app.close()


async def test_the_library_application_reconstructs_an_aggregate_beacon_wrote(
    pool: Any, database_url: str
) -> None:
    store = PostgresEventStore(pool)
    page_id = uuid.uuid4()
    await create_status_page(
        store, page_id=page_id, name="Acme", slug="acme", context=CommandContext(now=T0, actor=ADMIN)
    )
    await update_status_page(
        store,
        page_id=page_id,
        name="Acme Cloud",
        description="Everything Acme runs",
        public_url="https://status.acme.test",
        context=CommandContext(now=T0 + timedelta(minutes=1), actor=ADMIN, request_id="req-2"),
    )
    login, sso = new_ulid(T0), new_ulid(T0)
    await replace_structure(
        store,
        page_id=page_id,
        items=[
            ComponentItem(component_id=login),
            GroupItem(
                id=new_ulid(T0), name="Auth", components=(ComponentItem(component_id=sso, hidden=True),)
            ),
        ],
        components={login: ComponentInfo(name="Login"), sso: ComponentInfo(name="SSO")},
        display_uptime_mode="chart_only",
        context=CommandContext(now=T0 + timedelta(minutes=2), actor=ADMIN),
    )
    beacon_view = await load(store, StatusPage, page_id)

    # The library is synchronous (psycopg), so it runs off the event loop.
    page, topics = await asyncio.to_thread(read_with_the_library, database_url, page_id)

    assert isinstance(page, StatusPage)
    assert (page.id, page.version, page.name, page.slug) == (page_id, 3, "Acme Cloud", "acme")
    assert (page.description, page.public_url, page.display_uptime_mode) == (
        "Everything Acme runs", "https://status.acme.test", "chart_only"
    )
    assert [component.component_id for component in page.structure[1].components] == [sso]  # type: ignore[union-attr]
    assert page.modified_on == T0 + timedelta(minutes=2)
    assert vars(page) == vars(beacon_view)
    assert topics == [
        "beacon.StatusPage.Created", "beacon.StatusPage.Updated", "beacon.StatusPage.StructureReplaced"
    ]
