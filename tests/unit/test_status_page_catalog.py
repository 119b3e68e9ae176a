"""The status page catalog on its own: given events (written by the real domain handlers) -> exact rows
and query answers; rebuilt from zero into a scratch schema it is byte-identical to the live tables.

It runs against Postgres (the projection is SQL), but drives the projection directly, without the API."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import asyncpg

from domain.base import CommandContext
from domain.component import ComponentInfo, archive_component, create_component, update_component
from domain.status_page import create_status_page, replace_structure, update_status_page
from domain.structure import ComponentItem, GroupItem, SubPageItem
from infra.event_store import PostgresEventStore
from infra.ids import new_ulid, ulid_to_uuid, uuid_to_ulid
from projections import status_page_catalog as catalog
from projections.runner import catch_up, ensure_tables
from projections.versions import quote_ident
from tests.support.builders import ALICE, T0


def at(minutes: int) -> CommandContext:
    return CommandContext(now=T0 + timedelta(minutes=minutes), actor=ALICE, request_id="req")


def new_id(minutes: int) -> UUID:
    return ulid_to_uuid(new_ulid(T0 + timedelta(minutes=minutes)))


async def build_history(store: PostgresEventStore) -> dict[str, str]:
    """Two pages, three components (one renamed, one deleted), a structure with a group and a sub-page."""
    ids = {name: new_id(i) for i, name in enumerate(("login", "api", "old", "acme", "beta"))}
    await create_component(store, component_id=ids["login"], name="Login", description=None, context=at(1))
    await create_component(store, component_id=ids["api"], name="API", description="v1", context=at(2))
    await create_component(store, component_id=ids["old"], name="Old", description=None, context=at(3))
    await create_status_page(store, page_id=ids["acme"], name="Acme", slug="acme", context=at(4))
    await create_status_page(
        store, page_id=ids["beta"], name="Beta", slug="beta", public_url="https://beta.test", context=at(5)
    )
    login, api = uuid_to_ulid(ids["login"]), uuid_to_ulid(ids["api"])
    await replace_structure(
        store,
        page_id=ids["acme"],
        items=[
            GroupItem(id="G1", name="Auth", components=(ComponentItem(login),)),
            SubPageItem(id="S1", name="Europe", items=(ComponentItem(api, hidden=True),)),
        ],
        components={login: ComponentInfo("Login"), api: ComponentInfo("API")},
        context=at(6),
    )
    await update_component(store, component_id=ids["login"], name="Sign in", description=None, context=at(7))
    await archive_component(store, component_id=ids["old"], context=at(8))
    await update_status_page(
        store, page_id=ids["beta"], name="Beta 2", public_url=None, widget_api_enabled=False, context=at(9)
    )
    return {name: uuid_to_ulid(value) for name, value in ids.items()}


async def dump(conn: asyncpg.Connection, schema: str) -> list[str]:
    rows: list[str] = []
    for table in catalog.StatusPageCatalog.tables:
        records = await conn.fetch(f"SELECT t::text FROM {quote_ident(schema)}.{table} t ORDER BY id")
        rows += [f"{table}: {record[0]}" for record in records]
    return rows


async def test_catalog_answers_every_query_and_rebuilds_byte_identically(pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pool)
    ids = await build_history(store)
    projection = catalog.StatusPageCatalog()
    async with pool.acquire() as conn:
        await ensure_tables(conn, [projection])
        position = await catch_up(conn, store, projection)
        assert position == await store.max_position()

        pages = await catalog.list_pages(conn, limit=10)
        assert pages is not None
        assert [(p.id, p.name, p.slug, p.public_url, p.widget_api_enabled) for p in pages] == [
            (ids["acme"], "Acme", "acme", None, True),
            (ids["beta"], "Beta 2", "beta", None, False),  # null cleared the URL
        ]
        assert pages[0].created_at == T0 + timedelta(minutes=4)
        assert [p.id for p in await catalog.list_pages(conn, limit=10, after=ids["acme"]) or []] == [ids["beta"]]
        assert await catalog.list_pages(conn, limit=10, after=ids["beta"]) == []
        assert await catalog.list_pages(conn, limit=10, after=ids["login"]) is None  # not a page: bad cursor
        assert (await catalog.get_page_by_slug(conn, "beta")) == pages[1]
        assert await catalog.get_page(conn, ids["acme"]) == pages[0]
        assert await catalog.get_page(conn, "nope") is None

        structure = await catalog.get_structure(conn, ids["acme"])
        assert structure is not None and structure.display_uptime_mode == "chart_and_percentage"
        assert structure.items == (
            GroupItem(id="G1", name="Auth", components=(ComponentItem(ids["login"]),)),
            SubPageItem(id="S1", name="Europe", slug="europe", items=(ComponentItem(ids["api"], hidden=True),)),
        )
        empty = await catalog.get_structure(conn, ids["beta"])
        assert empty is not None and empty.items == ()

        assert [c.name for c in await catalog.list_components(conn)] == ["Sign in", "API"]
        assert [c.archived for c in await catalog.list_components(conn, include_archived=True)] == [False, False, True]
        assert await catalog.component_names(conn, [ids["login"], ids["old"], "junk", ids["acme"]]) == {
            ids["login"]: "Sign in",
            ids["old"]: "Old",
        }
        old = await catalog.get_component(conn, ids["old"])
        assert old is not None and old.archived

        live = await dump(conn, "public")
        await ensure_tables(conn, [projection], schema="scratch")
        await catch_up(conn, store, projection, schema="scratch", batch_size=3)  # other batch boundaries
        assert await dump(conn, "scratch") == live
        assert len(live) == 5



async def test_usable_components_are_the_placed_ones_not_deleted_in_one_answer(pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pool)
    ids = await build_history(store)  # acme places login (in a group) and api (on a sub-page); beta none
    projection = catalog.StatusPageCatalog()
    async with pool.acquire() as conn:
        await ensure_tables(conn, [projection])
        await catch_up(conn, store, projection)
        assert await catalog.usable_components(conn, ids["acme"]) == frozenset({ids["login"], ids["api"]})
        assert await catalog.usable_components(conn, ids["beta"]) == frozenset()
        assert await catalog.usable_components(conn, ids["login"]) is None  # not a page
        assert await catalog.usable_components(conn, "nope") is None

        await archive_component(store, component_id=ulid_to_uuid(ids["api"]), context=at(10))
        await catch_up(conn, store, projection)
        assert await catalog.usable_components(conn, ids["acme"]) == frozenset({ids["login"]})
