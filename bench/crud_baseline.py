"""The baseline `bench/commands.py` measures Beacon's command path against: the straightforward CRUD API a
team would write on the same stack instead of event sourcing (issue 14). A measuring stick, not product code.

Same stack and same front door as Beacon: granian with one HTTP worker, Litestar, msgspec, an asyncpg pool
made by `infra.db.create_pool`, API keys looked up by Beacon's `infra.api_keys` (SHA-256 of the token) behind
Beacon's two-second `KeyCache`, Beacon's per-key token bucket, its JSON body checks and its error envelope.
Requests and answers are Beacon's own wire structs, and the rules are Beacon's rule functions, so both
servers refuse the same requests with the same 422s. What differs is storage: mutable tables, one
transaction per command with one statement per step, and the answer built from what was written.

Only the five routes the bench drives exist: create a status page, create a component, replace a page's
structure (top-level components only: the bench places no groups or sub-pages, so the baseline refuses
them with a 422 rather than model them), declare an incident, post an incident update. Component
impacts are rows opened and closed as updates change a component's status, the way Beacon derives them
(see `domain.notice.derive_intervals`).

    DATABASE_URL=… .venv/bin/python -m bench.crud_baseline --port 8001

It expects a database Beacon has migrated (for the API key table) and creates its own tables on start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from litestar import Litestar, Request, Response, Router, post, put
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath, JSONBody

from api.app import MAX_BODY_BYTES
from api.auth import KeyCache
from api.body import check_json_body
from api.controllers.components import (
    StatusPageComponentPayload,
    StatusPageComponentResult,
    StatusPageComponentView,
)
from api.controllers.incidents import (
    CreateStatusPageIncidentPayload,
    CreateStatusPageIncidentUpdatePayload,
    StatusPageIncidentResult,
    StatusPageIncidentUpdateResult,
)
from api.controllers.status_pages import CreateStatusPagePayload, StatusPageResult, StatusPageView
from api.controllers.structures import (
    ReplaceStatusPageStructurePayload,
    ShowStatusPageStructureResult,
    render_structure,
    to_structure,
)
from api.errors import EXCEPTION_HANDLERS, ApiError
from api.notices import created, statuses_input
from api.rate_limit import TokenBuckets
from api.request_id import add_request_id_header
from api.wire import management_meta, not_found
from domain.incident import IncidentComponentStatus, IncidentStatus
from domain.notice import (
    MAX_UPDATES,
    OPERATIONAL,
    ClosingWithComponentStatuses,
    NoticeClosed,
    TooManyUpdates,
    check_component_statuses,
)
from domain.rules import check_message, check_name, check_slug, parse_enum
from domain.status_page import DEFAULT_UPTIME_MODE, UPTIME_MODES, InvalidDisplayUptimeMode, SlugTaken, check_public_url
from domain.structure import ComponentItem, ComponentPlacedTwice, InvalidStructureItem, UnplaceableComponent
from infra.api_keys import ADMIN, PUBLISH, ApiKey, find_by_token
from infra.clock import SystemClock, format_timestamp
from infra.db import create_pool, database_url
from infra.ids import new_ulid
from infra.settings import Settings
from projections.incident_list import StatusPageIncident, StatusPageIncidentComponentImpact, StatusPageIncidentUpdate
from projections.notice_list import AffectedComponent

SCHEMA = """
CREATE TABLE IF NOT EXISTS crud_status_pages (
    id                  text        PRIMARY KEY,
    name                text        NOT NULL,
    slug                text        NOT NULL UNIQUE,
    description         text,
    public_url          text,
    widget_api_enabled  boolean     NOT NULL,
    display_uptime_mode text        NOT NULL,
    created_by          text        NOT NULL
);
CREATE TABLE IF NOT EXISTS crud_components (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    description text,
    created_by  text NOT NULL
);
CREATE TABLE IF NOT EXISTS crud_page_components (
    page_id        text    NOT NULL REFERENCES crud_status_pages (id),
    component_id   text    NOT NULL REFERENCES crud_components (id),
    position       integer NOT NULL,
    hidden         boolean NOT NULL,
    display_uptime boolean NOT NULL,
    PRIMARY KEY (page_id, component_id)
);
-- `component_statuses` is every component the incident has named, with its current status: what a
-- resolving update returns to operational.
CREATE TABLE IF NOT EXISTS crud_incidents (
    id                 text        PRIMARY KEY,
    status_page_id     text        NOT NULL REFERENCES crud_status_pages (id),
    idempotency_key    text        NOT NULL,
    name               text        NOT NULL,
    published_at       timestamptz NOT NULL,
    status             text        NOT NULL,
    update_count       integer     NOT NULL,
    component_statuses jsonb       NOT NULL,
    created_by         text        NOT NULL,
    UNIQUE (status_page_id, idempotency_key)
);
CREATE TABLE IF NOT EXISTS crud_incident_updates (
    id                 text        PRIMARY KEY,
    incident_id        text        NOT NULL REFERENCES crud_incidents (id),
    published_at       timestamptz NOT NULL,
    message            text        NOT NULL,
    status             text        NOT NULL,
    component_statuses jsonb       NOT NULL,
    notify_subscribers boolean     NOT NULL,
    created_by         text        NOT NULL
);
CREATE INDEX IF NOT EXISTS crud_incident_updates_incident ON crud_incident_updates (incident_id);
CREATE TABLE IF NOT EXISTS crud_incident_impacts (
    id           bigserial   PRIMARY KEY,
    incident_id  text        NOT NULL REFERENCES crud_incidents (id),
    component_id text        NOT NULL,
    status       text        NOT NULL,
    start_at     timestamptz NOT NULL,
    end_at       timestamptz
);
CREATE INDEX IF NOT EXISTS crud_incident_impacts_open ON crud_incident_impacts (incident_id) WHERE end_at IS NULL;
"""

WHAT = "status page incident"


@dataclass
class CrudState:
    pool: asyncpg.Pool
    clock: SystemClock
    key_cache: KeyCache
    rate_limits: TokenBuckets


def _state(connection: ASGIConnection[Any, Any, Any, Any]) -> CrudState:
    state: CrudState = connection.app.state.crud
    return state


async def require_api_key(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Beacon's checks in Beacon's order: a known key (cached), its rate limit, the route's scope."""
    state = _state(connection)
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "Missing API key: send `Authorization: Bearer <api key>`", code="unauthenticated")
    cached, key = state.key_cache.get(token)
    if not cached:
        key = await find_by_token(state.pool, token)
        state.key_cache.put(token, key)
    if key is None:
        raise ApiError(401, "Unknown or revoked API key", code="unauthenticated")
    state.rate_limits.check(key.id, state.clock.now(), name="api_key")
    scope = handler.opt["scope"]
    if not key.grants(scope):
        raise ApiError(403, f"This API key lacks the `{scope}` scope", code="forbidden")
    connection.state.api_key = key


def _key(request: Request[Any, Any, Any]) -> ApiKey:
    key: ApiKey = request.state.api_key
    return key


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


def _statuses(document: str) -> dict[str, str]:
    statuses: dict[str, str] = msgspec.json.decode(document)
    return statuses


# Routes


@post("/status_pages", status_code=201, opt={"scope": ADMIN})
async def create_status_page(
    request: Request[Any, Any, Any], data: JSONBody[CreateStatusPagePayload]
) -> StatusPageResult:
    check_name(data.name)
    check_slug(data.slug)
    check_public_url(data.public_url)
    state = _state(request)
    page_id = new_ulid(state.clock.now())
    inserted = await state.pool.fetchval(
        "INSERT INTO crud_status_pages (id, name, slug, description, public_url, widget_api_enabled,"
        " display_uptime_mode, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (slug) DO NOTHING RETURNING id",
        page_id, data.name, data.slug, data.description, data.public_url, data.widget_api_enabled,
        DEFAULT_UPTIME_MODE, _key(request).id,
    )
    if inserted is None:
        raise SlugTaken(f"slug {data.slug!r} is already used by another status page")
    view = StatusPageView(
        id=page_id,
        name=data.name,
        description=data.description,
        public_url=data.public_url,
        slug=data.slug,
        widget_api_enabled=data.widget_api_enabled,
        public_site_enabled=True,
        time_zone="UTC",
        custom_domain=None,
        automatic_maintenance_notifications="inherit",
    )
    return StatusPageResult(status_page=view)


@post("/status_page_components", status_code=201, opt={"scope": ADMIN})
async def create_component(
    request: Request[Any, Any, Any], data: JSONBody[StatusPageComponentPayload]
) -> StatusPageComponentResult:
    check_name(data.name)
    state = _state(request)
    component_id = new_ulid(state.clock.now())
    await state.pool.execute(
        "INSERT INTO crud_components (id, name, description, created_by) VALUES ($1, $2, $3, $4)",
        component_id, data.name, data.description, _key(request).id,
    )
    view = StatusPageComponentView(
        id=component_id, name=data.name, description=data.description, management_meta=management_meta()
    )
    return StatusPageComponentResult(status_page_component=view)


@put("/status_page_structures/{status_page_id:str}", opt={"scope": ADMIN})
async def replace_structure(
    request: Request[Any, Any, Any], status_page_id: FromPath[str], data: JSONBody[ReplaceStatusPageStructurePayload]
) -> ShowStatusPageStructureResult:
    state = _state(request)
    items = to_structure(data, lambda: new_ulid(state.clock.now()))
    placed: list[ComponentItem] = []
    for index, item in enumerate(items):
        if not isinstance(item, ComponentItem):
            raise InvalidStructureItem(
                "the CRUD baseline places components at the top level only", field=f"items[{index}]"
            )
        if any(other.component_id == item.component_id for other in placed):
            raise ComponentPlacedTwice(
                f"component {item.component_id} appears more than once on this page", field=f"items[{index}]"
            )
        placed.append(item)
    if data.display_uptime_mode is not None and data.display_uptime_mode not in UPTIME_MODES:
        raise InvalidDisplayUptimeMode(f"display_uptime_mode must be one of {', '.join(UPTIME_MODES)}")
    ids = [item.component_id for item in placed]
    async with state.pool.acquire() as conn, conn.transaction():
        names = dict(await conn.fetch("SELECT id, name FROM crud_components WHERE id = ANY($1::text[])", ids))
        for index, component_id in enumerate(ids):
            if component_id not in names:
                raise UnplaceableComponent(
                    f"component {component_id} does not exist", field=f"items[{index}].component_id"
                )
        mode = await conn.fetchval(
            "UPDATE crud_status_pages SET display_uptime_mode = coalesce($2, display_uptime_mode) WHERE id = $1"
            " RETURNING display_uptime_mode",
            status_page_id,
            data.display_uptime_mode,
        )
        if mode is None:
            raise not_found("status page", status_page_id)
        await conn.execute("DELETE FROM crud_page_components WHERE page_id = $1", status_page_id)
        await conn.execute(
            "INSERT INTO crud_page_components (page_id, component_id, position, hidden, display_uptime)"
            " SELECT $1, component_id, position, hidden, display_uptime"
            " FROM unnest($2::text[], $3::bool[], $4::bool[]) WITH ORDINALITY"
            " AS placed (component_id, hidden, display_uptime, position)",
            status_page_id, ids, [item.hidden for item in placed], [item.display_uptime for item in placed],
        )
    return render_structure(placed, names, mode)


@post("/status_page_incidents", opt={"scope": PUBLISH})
async def create_incident(
    request: Request[Any, Any, Any], data: JSONBody[CreateStatusPageIncidentPayload]
) -> Response[StatusPageIncidentResult]:
    check_name(data.name)
    check_message(data.message)
    status = parse_enum(IncidentStatus, data.incident_status, field="incident_status")
    state = _state(request)
    now = state.clock.now()
    incident_id, update_id, by = new_ulid(now), new_ulid(now), _key(request).id
    async with state.pool.acquire() as conn, conn.transaction():
        members = await conn.fetchval(
            "SELECT array(SELECT component_id FROM crud_page_components WHERE page_id = p.id)"
            " FROM crud_status_pages p WHERE p.id = $1",
            data.status_page_id,
        )
        if members is None:
            raise ApiError(422, f"No status page with id {data.status_page_id!r}", field="status_page_id")
        statuses = check_component_statuses(
            statuses_input(data.component_statuses), enum=IncidentComponentStatus, page_components=frozenset(members)
        )
        if status is IncidentStatus.RESOLVED and statuses:
            raise ClosingWithComponentStatuses("a resolved incident must not set component_statuses")
        inserted = await conn.fetchval(
            "INSERT INTO crud_incidents (id, status_page_id, idempotency_key, name, published_at, status,"
            " update_count, component_statuses, created_by) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8)"
            " ON CONFLICT (status_page_id, idempotency_key) DO NOTHING RETURNING id",
            incident_id, data.status_page_id, data.idempotency_key, data.name, now, status.value, _json(statuses), by,
        )
        if inserted is None:  # the key was used: answer with what it created, as it is now
            existing = await conn.fetchval(
                "SELECT id FROM crud_incidents WHERE status_page_id = $1 AND idempotency_key = $2",
                data.status_page_id,
                data.idempotency_key,
            )
            return created(StatusPageIncidentResult(await _load_incident(conn, existing)), replayed=True)
        await conn.execute(
            "INSERT INTO crud_incident_updates (id, incident_id, published_at, message, status, component_statuses,"
            " notify_subscribers, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            update_id, incident_id, now, data.message, status.value, _json(statuses), data.notify_subscribers, by,
        )
        impacts = {cid: value for cid, value in statuses.items() if value != OPERATIONAL}
        if impacts:
            await _open_impacts(conn, incident_id, impacts, now)
    published = format_timestamp(now)
    update = StatusPageIncidentUpdate(
        id=update_id,
        status_page_incident_id=incident_id,
        published_at=published,
        message=data.message,
        incident_status=status.value,
        component_statuses=[AffectedComponent(cid, value) for cid, value in statuses.items()],
    )
    incident = StatusPageIncident(
        id=incident_id,
        status_page_id=data.status_page_id,
        name=data.name,
        published_at=published,
        incident_status=status.value,
        updates=[update],
        component_impacts=[
            StatusPageIncidentComponentImpact(component_id=cid, component_status=value, start_at=published)
            for cid, value in impacts.items()
        ],
    )
    return created(StatusPageIncidentResult(incident), replayed=False)


@post("/status_page_incident_updates", status_code=201, opt={"scope": PUBLISH})
async def create_incident_update(
    request: Request[Any, Any, Any], data: JSONBody[CreateStatusPageIncidentUpdatePayload]
) -> StatusPageIncidentUpdateResult:
    state = _state(request)
    now = state.clock.now()
    incident_id, update_id = data.status_page_incident_id, new_ulid(now)
    async with state.pool.acquire() as conn, conn.transaction():
        # The row lock serialises concurrent updates to one incident, as Beacon's expected version does.
        incident = await conn.fetchrow(
            "SELECT status_page_id, status, update_count, component_statuses FROM crud_incidents"
            " WHERE id = $1 FOR UPDATE",
            incident_id,
        )
        if incident is None:
            raise not_found(WHAT, incident_id)
        if incident["status"] == IncidentStatus.RESOLVED:
            raise NoticeClosed("this incident is resolved and takes no more updates (it can still be renamed)")
        check_message(data.message)
        status = (
            IncidentStatus(incident["status"])
            if data.incident_status is None
            else parse_enum(IncidentStatus, data.incident_status, field="incident_status")
        )
        members: Sequence[str] = ()
        if data.component_statuses:  # only then does the page's structure matter
            members = await conn.fetchval(
                "SELECT array(SELECT component_id FROM crud_page_components WHERE page_id = $1)",
                incident["status_page_id"],
            )
        statuses = check_component_statuses(
            statuses_input(data.component_statuses), enum=IncidentComponentStatus, page_components=frozenset(members)
        )
        current = _statuses(incident["component_statuses"])
        if status is IncidentStatus.RESOLVED:
            if statuses:
                raise ClosingWithComponentStatuses("a resolving update must not set component_statuses")
            statuses = dict.fromkeys(current, OPERATIONAL)
        if incident["update_count"] >= MAX_UPDATES:
            raise TooManyUpdates(f"an incident holds at most {MAX_UPDATES} updates")
        changed = {cid: value for cid, value in statuses.items() if current.get(cid) != value}
        await conn.execute(
            "UPDATE crud_incidents SET status = $2, update_count = update_count + 1, component_statuses = $3"
            " WHERE id = $1",
            incident_id, status.value, _json(current | statuses),
        )
        await conn.execute(
            "INSERT INTO crud_incident_updates (id, incident_id, published_at, message, status, component_statuses,"
            " notify_subscribers, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            update_id, incident_id, now, data.message, status.value, _json(statuses), data.notify_subscribers,
            _key(request).id,
        )
        # A change of status ends a component's open impact; a non-operational one starts the next.
        if changed:
            await conn.execute(
                "UPDATE crud_incident_impacts SET end_at = $3"
                " WHERE incident_id = $1 AND end_at IS NULL AND component_id = ANY($2::text[])",
                incident_id, list(changed), now,
            )
            opened = {cid: value for cid, value in changed.items() if value != OPERATIONAL}
            if opened:
                await _open_impacts(conn, incident_id, opened, now)
    update = StatusPageIncidentUpdate(
        id=update_id,
        status_page_incident_id=incident_id,
        published_at=format_timestamp(now),
        message=data.message,
        incident_status=status.value,
        component_statuses=[AffectedComponent(cid, value) for cid, value in statuses.items()],
    )
    return StatusPageIncidentUpdateResult(status_page_incident_update=update)


async def _open_impacts(conn: asyncpg.Connection, incident_id: str, impacts: dict[str, str], at: datetime) -> None:
    await conn.execute(
        "INSERT INTO crud_incident_impacts (incident_id, component_id, status, start_at)"
        " SELECT $1, component_id, status, $4 FROM unnest($2::text[], $3::text[]) AS opened (component_id, status)",
        incident_id, list(impacts), list(impacts.values()), at,
    )


async def _load_incident(conn: asyncpg.Connection, incident_id: str) -> StatusPageIncident:
    """The whole incident from its rows (only an idempotent replay needs it)."""
    row = await conn.fetchrow(
        "SELECT status_page_id, name, published_at, status FROM crud_incidents WHERE id = $1", incident_id
    )
    updates = await conn.fetch(
        "SELECT id, published_at, message, status, component_statuses FROM crud_incident_updates"
        " WHERE incident_id = $1 ORDER BY id",
        incident_id,
    )
    impacts = await conn.fetch(
        "SELECT component_id, status, start_at, end_at FROM crud_incident_impacts WHERE incident_id = $1 ORDER BY id",
        incident_id,
    )
    return StatusPageIncident(
        id=incident_id,
        status_page_id=row["status_page_id"],
        name=row["name"],
        published_at=format_timestamp(row["published_at"]),
        incident_status=row["status"],
        updates=[
            StatusPageIncidentUpdate(
                id=update["id"],
                status_page_incident_id=incident_id,
                published_at=format_timestamp(update["published_at"]),
                message=update["message"],
                incident_status=update["status"],
                component_statuses=[
                    AffectedComponent(cid, value) for cid, value in _statuses(update["component_statuses"]).items()
                ],
            )
            for update in updates
        ],
        component_impacts=[
            StatusPageIncidentComponentImpact(
                component_id=impact["component_id"],
                component_status=impact["status"],
                start_at=format_timestamp(impact["start_at"]),
                end_at=None if impact["end_at"] is None else format_timestamp(impact["end_at"]),
            )
            for impact in impacts
        ],
    )


def create_app(settings: Settings) -> Litestar:
    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        url = await asyncio.to_thread(database_url, settings)
        pool = await create_pool(url, settings, stateless=True)
        try:
            await pool.execute(SCHEMA)
            rate = settings.rate_limit_per_minute
            app.state.crud = CrudState(pool, SystemClock(), KeyCache(), TokenBuckets(rate=rate / 60, burst=rate))
            yield
        finally:
            await pool.close()

    routes = [create_status_page, create_component, replace_structure, create_incident, create_incident_update]
    v2 = Router(
        path="/v2",
        route_handlers=routes,
        guards=[require_api_key],
        before_request=check_json_body,
    )
    return Litestar(
        route_handlers=[v2],
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        before_send=[add_request_id_header],
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=None,
        debug=False,
    )


def app_from_env() -> Litestar:
    """The factory granian loads; `DATABASE_URL` names a database Beacon has migrated."""
    return create_app(Settings.from_env())


def main() -> None:
    from granian import Granian
    from granian.constants import Interfaces

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # As `beacon serve` runs the API: one HTTP worker, no access log.
    Granian(
        "bench.crud_baseline:app_from_env",
        factory=True,
        address=args.host,
        port=args.port,
        workers=1,
        interface=Interfaces.ASGI,
        log_access=False,
    ).serve()


if __name__ == "__main__":
    main()
