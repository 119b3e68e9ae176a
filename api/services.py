"""What a running HTTP process holds: settings, clock, pool, store, watermarks, widget cache, metrics sampler
and, when it runs one, its background worker's runner and scheduler. Assembled by `api.processes.http_process`
(the one place processes are put together) and reached by controllers through `services_of`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg

from api.errors import DATABASE_UNAVAILABLE, ApiError
from api.rate_limit import TokenBuckets
from api.request_id import ensure_request_id
from domain.base import CommandContext
from infra.clock import Clock
from infra.event_store import PostgresEventStore
from infra.settings import Settings
from projections import public_widget
from projections.runner import Projection, ProjectionLag, ProjectionRunner, lag
from projections.watermark import Watermarks

if TYPE_CHECKING:
    from api.auth import KeyCache
    from api.metrics import Sampler
    from api.public_documents import DocumentCache
    from process_managers.maintenance_scheduler import MaintenanceScheduler


log = logging.getLogger("beacon.api")


@dataclass
class Services:
    settings: Settings
    clock: Clock
    pool: asyncpg.Pool
    store: PostgresEventStore
    projections: Sequence[Projection]
    watermarks: Watermarks
    key_cache: KeyCache
    rate_limits: TokenBuckets
    retrospective_limits: TokenBuckets
    public_documents: DocumentCache
    """This process's public documents (the widget, the public site, feeds, Statuspage JSON, custom-domain
    aliases), served by the fast path; `settle` waits for the widget's."""
    metrics_sampler: Sampler
    """Samples this process's pools, widget counts and the projections' lag; `/metrics` asks it first."""
    secret_key: bytes
    """`BEACON_SECRET_KEY` (or the embedded default's generated key): signs subscriber links."""
    runner: ProjectionRunner | None = None
    """This process's projection runner; None in an API-only replica."""
    scheduler: MaintenanceScheduler | None = None
    """This process's maintenance scheduler; None in an API-only replica."""
    public_limits: TokenBuckets = field(init=False)
    """Public subscribe requests per client (an IPv4 address or an IPv6 /64; api/client_address.py), in this
    process."""
    migrated: bool = False
    """Set once `/readyz` has found the migrations applied (they are never taken back)."""

    def __post_init__(self) -> None:
        per_minute = self.settings.public_subscribe_per_minute
        self.public_limits = TokenBuckets(rate=per_minute / 60, burst=per_minute)

    def context(self, request: Any) -> CommandContext:
        """The command context of an authenticated request: now, the key as actor, the request id."""
        return CommandContext(
            now=self.clock.now(),
            actor=request.state.actor,
            request_id=ensure_request_id(request.scope),
        )

    async def settle(self, position: int) -> None:
        """Read-your-writes (docs/architecture.md#6-read-your-writes): return once every read model that
        writes wait for reflects `position` (a stopped one is not waited for), and this process's widget
        documents as far as their projection got.

        On timeout the write has still been recorded, so it is not an error for the client; the
        read models will catch up shortly (the warning is logged by `Watermarks`). A timeout of 0 is the
        operator turning the wait off: return at once, with nothing to warn about."""
        if position and self.settings.read_your_writes_timeout > 0:
            await self.watermarks.wait_for(position, self.settings.read_your_writes_timeout)
            # This process's widget documents (docs/architecture.md#5-the-widget-is-bytes).
            # The cache follows the widget projection, so it cannot get further than that projection has:
            # if it stopped (or is late), waiting for `position` would only wait out the timeout again.
            reached = self.watermarks.reached_by(public_widget.KEY, position)
            await self.public_documents.wait_for(reached, self.settings.read_your_writes_timeout)

    async def projections_lag(self) -> list[ProjectionLag]:
        """Every projection this process knows, as the database has it, and whether this process runs it."""
        return await lag(self.pool, self.store, self.projections, self.runner.statuses if self.runner else {})

    async def settle_command(self, context: CommandContext) -> None:
        """Read-your-writes after a domain handler (docs/architecture.md#6-read-your-writes): wait for the
        last position the command appended (`save` notes it on the context). A command that appended
        nothing, a replay or a no-op, waits for the log's head instead: the write it repeats may still be
        settling in another request."""
        if context.last_appended:
            await self.settle(context.last_appended)
        else:
            await self.settle_latest()

    async def settle_latest(self) -> None:
        """Read-your-writes on the log's head, which is at or past anything this request could depend on.

        The write is recorded by now: if the database drops away here, answering an error would invite the
        client to send it again (updates carry no idempotency key), so keep trying for as long as `settle`
        would wait, then answer as `settle` does on a timeout."""
        if self.settings.read_your_writes_timeout <= 0:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.read_your_writes_timeout
        while True:
            try:
                position = await self.store.max_position()
                break
            except DATABASE_UNAVAILABLE as error:
                if loop.time() >= deadline:
                    log.warning("read-your-writes skipped, the write is recorded: %r", error)
                    return
                await asyncio.sleep(0.05)
        await self.settle(position)


def services_of(request: Any) -> Services:
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None:
        raise ApiError(503, "Beacon is starting", code="starting")
    return services
