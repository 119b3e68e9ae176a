"""Status pages: their identity (name, slug, public URL, widget switch) and their structure — the tree
of components, groups and sub-pages a page shows (docs/architecture.md#glossary).

The structure itself — its value types, rules, stored form and queries — is `domain/structure.py`.

Page updates are partial, as component updates are (see `domain/component.py`): `KEEP` keeps a field,
`None` resets it to its default (no description, no public URL, widget on).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.base import (
    KEEP,
    Actor,
    ActorData,
    BeaconAggregate,
    CommandContext,
    DomainError,
    EventStore,
    IdempotencyKey,
    Unchanged,
    execute,
    save,
)
from domain.component import ComponentInfo
from domain.rules import check_name, check_read_only, check_slug
from domain.structure import (
    StructureItem,
    check_structure,
    keep_stored_settings,
    parse_structure,
    structure_data,
    sub_pages,
)

UPTIME_MODES = ("chart_and_percentage", "chart_only", "nothing")
DEFAULT_UPTIME_MODE = "chart_and_percentage"
DEFAULT_WIDGET_API_ENABLED = True
SLUG_IDEMPOTENCY_KIND = "status_page_slug"


class StatusPage(BeaconAggregate):
    """One status page. `items` is the structure exactly as stored on the last `StructureReplaced`."""

    TOPIC = "beacon.StatusPage"
    STREAM_TYPE = "status_page"

    class Created(Aggregate.Created):
        TOPIC = "beacon.StatusPage.Created"
        name: str
        slug: str
        description: str | None
        public_url: str | None
        widget_api_enabled: bool
        display_uptime_mode: str
        by: ActorData

    @event(Created)
    def __init__(
        self,
        *,
        id: UUID,
        name: str,
        slug: str,
        description: str | None,
        public_url: str | None,
        widget_api_enabled: bool,
        display_uptime_mode: str,
        by: ActorData,
        timestamp: datetime,
    ) -> None:
        self.name = name
        self.slug = slug
        self.description = description
        self.public_url = public_url
        self.widget_api_enabled = widget_api_enabled
        self.display_uptime_mode = display_uptime_mode
        self.items: list[dict[str, Any]] = []

    class Updated(Aggregate.Event):
        TOPIC = "beacon.StatusPage.Updated"
        name: str
        description: str | None
        public_url: str | None
        widget_api_enabled: bool
        by: ActorData

    @event(Updated)
    def _updated(
        self,
        *,
        name: str,
        description: str | None,
        public_url: str | None,
        widget_api_enabled: bool,
        by: ActorData,
        timestamp: datetime,
    ) -> None:
        self.name = name
        self.description = description
        self.public_url = public_url
        self.widget_api_enabled = widget_api_enabled

    class StructureReplaced(Aggregate.Event):
        TOPIC = "beacon.StatusPage.StructureReplaced"
        items: list[dict[str, Any]]
        display_uptime_mode: str
        by: ActorData

    @event(StructureReplaced)
    def _structure_replaced(
        self, *, items: list[dict[str, Any]], display_uptime_mode: str, by: ActorData, timestamp: datetime
    ) -> None:
        self.items = items
        self.display_uptime_mode = display_uptime_mode

    # Commands: check the rules, then record one event.

    @classmethod
    def create(
        cls,
        *,
        id: UUID,
        name: str,
        slug: str,
        description: str | None = None,
        public_url: str | None = None,
        widget_api_enabled: bool = DEFAULT_WIDGET_API_ENABLED,
        at: datetime,
        by: Actor,
    ) -> StatusPage:
        """A new page. Slug uniqueness across pages is the handler's job (it needs the store)."""
        check_name(name)
        check_slug(slug)
        check_public_url(public_url)
        return cls(
            id=id,
            name=name,
            slug=slug,
            description=description,
            public_url=public_url,
            widget_api_enabled=widget_api_enabled,
            display_uptime_mode=DEFAULT_UPTIME_MODE,
            by=by.as_data(),
            timestamp=at,
        )

    def update(
        self,
        *,
        name: str | Unchanged = KEEP,
        description: str | Unchanged | None = KEEP,
        public_url: str | Unchanged | None = KEEP,
        widget_api_enabled: bool | Unchanged | None = KEEP,
        slug: str | Unchanged = KEEP,
        at: datetime,
        by: Actor,
    ) -> None:
        """Change what is given (`None` resets a field to its default); the slug never changes, so one
        sent back must be the page's own. A no-op records nothing."""
        if slug is not KEEP:
            check_read_only("slug", slug, self.slug)
        name = self.name if name is KEEP else name
        description = self.description if description is KEEP else description
        public_url = self.public_url if public_url is KEEP else public_url
        if widget_api_enabled is KEEP:
            widget_api_enabled = self.widget_api_enabled
        elif widget_api_enabled is None:
            widget_api_enabled = DEFAULT_WIDGET_API_ENABLED
        check_name(name)
        check_public_url(public_url)
        new = (name, description, public_url, widget_api_enabled)
        if new == (self.name, self.description, self.public_url, self.widget_api_enabled):
            return
        self._updated(
            name=name,
            description=description,
            public_url=public_url,
            widget_api_enabled=widget_api_enabled,
            by=by.as_data(),
            timestamp=at,
        )

    def replace_structure(
        self,
        *,
        items: Sequence[StructureItem],
        components: Mapping[str, ComponentInfo],
        display_uptime_mode: str | None = None,
        at: datetime,
        by: Actor,
    ) -> None:
        """Replace the whole tree, keeping the stored settings an item left `unset` (see the module
        docstring). `components` are the organisation's components by ULID (the caller loads them);
        `display_uptime_mode=None` keeps the current mode. A no-op records nothing."""
        mode = self.display_uptime_mode if display_uptime_mode is None else display_uptime_mode
        if mode not in UPTIME_MODES:
            raise InvalidDisplayUptimeMode(
                f"display_uptime_mode must be one of {', '.join(UPTIME_MODES)}", field="display_uptime_mode"
            )
        current_slugs = {page.id: page.slug for page in sub_pages(self.structure) if page.slug}
        resolved = check_structure(items, components, current_slugs)
        data = structure_data(keep_stored_settings(resolved, self.structure))
        if data == self.items and mode == self.display_uptime_mode:
            return
        self._structure_replaced(items=data, display_uptime_mode=mode, by=by.as_data(), timestamp=at)

    @property
    def structure(self) -> tuple[StructureItem, ...]:
        return parse_structure(self.items)


# Rules


def check_public_url(public_url: str | None) -> None:
    if public_url is None:
        return
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidPublicUrl("public_url must be an absolute http or https URL", field="public_url")


# Errors


class SlugTaken(DomainError):
    """Raised when another status page already has the slug a new page asks for."""

    field = "slug"
    code = "conflict"


class InvalidPublicUrl(DomainError):
    """Raised when a public URL is not an absolute http(s) URL."""

    field = "public_url"


class InvalidDisplayUptimeMode(DomainError):
    """Raised when `display_uptime_mode` is not one of the modes the SDK knows."""

    field = "display_uptime_mode"
    code = "invalid_enum"


# Handlers


def slug_reservation(slug: str) -> IdempotencyKey:
    """The idempotency key that reserves a page slug across all pages; `store.find_idempotent` on it
    answers which page has the slug (the serialised append makes the reservation race-free)."""
    return IdempotencyKey(kind=SLUG_IDEMPOTENCY_KIND, status_page_id="*", key=slug)


async def create_status_page(
    store: EventStore,
    *,
    page_id: UUID,
    name: str,
    slug: str,
    description: str | None = None,
    public_url: str | None = None,
    widget_api_enabled: bool = DEFAULT_WIDGET_API_ENABLED,
    context: CommandContext,
) -> StatusPage:
    page = StatusPage.create(
        id=page_id,
        name=name,
        slug=slug,
        description=description,
        public_url=public_url,
        widget_api_enabled=widget_api_enabled,
        at=context.now,
        by=context.actor,
    )
    result = await save(store, page, context, idempotency=slug_reservation(slug))
    if result.replayed:
        raise SlugTaken(f"slug {slug!r} is already used by another status page")
    return page


async def update_status_page(
    store: EventStore,
    *,
    page_id: UUID,
    name: str | Unchanged = KEEP,
    description: str | Unchanged | None = KEEP,
    public_url: str | Unchanged | None = KEEP,
    widget_api_enabled: bool | Unchanged | None = KEEP,
    slug: str | Unchanged = KEEP,
    context: CommandContext,
) -> StatusPage:
    """A partial update: `KEEP` keeps the stored value, `None` resets it to its default."""

    def decide(page: StatusPage) -> None:
        page.update(
            name=name,
            description=description,
            public_url=public_url,
            widget_api_enabled=widget_api_enabled,
            slug=slug,
            at=context.now,
            by=context.actor,
        )

    page, _ = await execute(store, StatusPage, page_id, decide, context)
    return page


async def replace_structure(
    store: EventStore,
    *,
    page_id: UUID,
    items: Sequence[StructureItem],
    components: Mapping[str, ComponentInfo],
    display_uptime_mode: str | None = None,
    context: CommandContext,
) -> StatusPage:
    def decide(page: StatusPage) -> None:
        page.replace_structure(
            items=items,
            components=components,
            display_uptime_mode=display_uptime_mode,
            at=context.now,
            by=context.actor,
        )

    page, _ = await execute(store, StatusPage, page_id, decide, context)
    return page
