"""Status pages: their identity (name, slug, public URL, widget switch), their public-site settings
(public site switch, time zone, custom domain, maintenance notifications; README "Page settings") and
their structure — the tree of components, groups and sub-pages a page shows (docs/architecture.md#glossary).

The structure itself — its value types, rules, stored form and queries — is `domain/structure.py`.

Page updates are partial, as component updates are (see `domain/component.py`): `KEEP` keeps a field,
`None` resets it to its default (no description, no public URL, widget on, public site on, UTC, no
custom domain, maintenance notifications inherited).

The settings came after the first pages: `Created` and `Updated` events written before them (class
version 1) are upcast with the defaults, except that `public_site_enabled` takes the event's
`widget_api_enabled`, so a page whose widget was off keeps its public face off until someone turns it on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eventsourcing.domain import Aggregate, event

from domain.base import (
    KEEP,
    MAX_RETRIES,
    Actor,
    ActorData,
    BeaconAggregate,
    CommandContext,
    ConcurrencyConflict,
    DomainError,
    EventStore,
    IdempotencyKey,
    NotFound,
    Unchanged,
    WriteConflict,
    execute,
    load,
    save,
)
from domain.component import ComponentInfo
from domain.custom_domain import CustomDomain, CustomDomainTaken, domain_stream_id, normalise_custom_domain
from domain.rules import InvalidEnum, InvalidValue, check_name, check_read_only, check_slug
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
DEFAULT_PUBLIC_SITE_ENABLED = True
DEFAULT_TIME_ZONE = "UTC"
MAINTENANCE_NOTIFICATIONS = ("inherit", "never")
"""`automatic_maintenance_notifications`: `inherit` — a window's automatic transitions notify when the window
was created with `notify_subscribers: true`; `never` — they never notify (README "Page settings")."""
DEFAULT_MAINTENANCE_NOTIFICATIONS: Final = "inherit"
SLUG_IDEMPOTENCY_KIND = "status_page_slug"


def _upcast_settings(state: dict[str, Any]) -> None:
    """Version 1 events predate the page settings (module docstring)."""
    state["public_site_enabled"] = state["widget_api_enabled"]
    state["time_zone"] = DEFAULT_TIME_ZONE
    state["custom_domain"] = None
    state["automatic_maintenance_notifications"] = DEFAULT_MAINTENANCE_NOTIFICATIONS


class StatusPage(BeaconAggregate):
    """One status page. `items` is the structure exactly as stored on the last `StructureReplaced`."""

    TOPIC = "beacon.StatusPage"
    STREAM_TYPE = "status_page"

    class Created(Aggregate.Created):
        TOPIC = "beacon.StatusPage.Created"
        class_version = 2
        name: str
        slug: str
        description: str | None
        public_url: str | None
        widget_api_enabled: bool
        display_uptime_mode: str
        by: ActorData
        public_site_enabled: bool = DEFAULT_PUBLIC_SITE_ENABLED
        time_zone: str = DEFAULT_TIME_ZONE
        custom_domain: str | None = None
        automatic_maintenance_notifications: str = DEFAULT_MAINTENANCE_NOTIFICATIONS

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            _upcast_settings(state)

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
        public_site_enabled: bool = DEFAULT_PUBLIC_SITE_ENABLED,
        time_zone: str = DEFAULT_TIME_ZONE,
        custom_domain: str | None = None,
        automatic_maintenance_notifications: str = DEFAULT_MAINTENANCE_NOTIFICATIONS,
    ) -> None:
        self.name = name
        self.slug = slug
        self.description = description
        self.public_url = public_url
        self.widget_api_enabled = widget_api_enabled
        self.display_uptime_mode = display_uptime_mode
        self.public_site_enabled = public_site_enabled
        self.time_zone = time_zone
        self.custom_domain = custom_domain
        self.automatic_maintenance_notifications = automatic_maintenance_notifications
        self.items: list[dict[str, Any]] = []

    class Updated(Aggregate.Event):
        """The page's identity and settings after the change, every field (not only the changed ones)."""

        TOPIC = "beacon.StatusPage.Updated"
        class_version = 2
        name: str
        description: str | None
        public_url: str | None
        widget_api_enabled: bool
        by: ActorData
        public_site_enabled: bool = DEFAULT_PUBLIC_SITE_ENABLED
        time_zone: str = DEFAULT_TIME_ZONE
        custom_domain: str | None = None
        automatic_maintenance_notifications: str = DEFAULT_MAINTENANCE_NOTIFICATIONS

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            _upcast_settings(state)

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
        public_site_enabled: bool = DEFAULT_PUBLIC_SITE_ENABLED,
        time_zone: str = DEFAULT_TIME_ZONE,
        custom_domain: str | None = None,
        automatic_maintenance_notifications: str = DEFAULT_MAINTENANCE_NOTIFICATIONS,
    ) -> None:
        self.name = name
        self.description = description
        self.public_url = public_url
        self.widget_api_enabled = widget_api_enabled
        self.public_site_enabled = public_site_enabled
        self.time_zone = time_zone
        self.custom_domain = custom_domain
        self.automatic_maintenance_notifications = automatic_maintenance_notifications

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
        settings: PageSettings | None = None,
        at: datetime,
        by: Actor,
    ) -> StatusPage:
        """A new page. Slug and custom domain uniqueness across pages are the handler's job (they need the
        store); `settings` must have been through `check_settings`."""
        check_name(name)
        check_slug(slug)
        check_public_url(public_url)
        settings = settings or PageSettings()
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
            public_site_enabled=settings.public_site_enabled,
            time_zone=settings.time_zone,
            custom_domain=settings.custom_domain,
            automatic_maintenance_notifications=settings.automatic_maintenance_notifications,
        )

    def update(
        self,
        *,
        name: str | Unchanged = KEEP,
        description: str | Unchanged | None = KEEP,
        public_url: str | Unchanged | None = KEEP,
        widget_api_enabled: bool | Unchanged | None = KEEP,
        slug: str | Unchanged = KEEP,
        settings: PageSettings | None = None,
        at: datetime,
        by: Actor,
    ) -> None:
        """Change what is given (`None` resets a field to its default); the slug never changes, so one
        sent back must be the page's own. `settings` are the page's settings after the change (see
        `merge_settings`; None keeps them). A no-op records nothing."""
        if slug is not KEEP:
            check_read_only("slug", slug, self.slug)
        name = self.name if name is KEEP else name
        description = self.description if description is KEEP else description
        public_url = self.public_url if public_url is KEEP else public_url
        if widget_api_enabled is KEEP:
            widget_api_enabled = self.widget_api_enabled
        elif widget_api_enabled is None:
            widget_api_enabled = DEFAULT_WIDGET_API_ENABLED
        settings = settings or self.settings
        check_name(name)
        check_public_url(public_url)
        new = (name, description, public_url, widget_api_enabled, settings)
        if new == (self.name, self.description, self.public_url, self.widget_api_enabled, self.settings):
            return
        self._updated(
            name=name,
            description=description,
            public_url=public_url,
            widget_api_enabled=widget_api_enabled,
            by=by.as_data(),
            timestamp=at,
            public_site_enabled=settings.public_site_enabled,
            time_zone=settings.time_zone,
            custom_domain=settings.custom_domain,
            automatic_maintenance_notifications=settings.automatic_maintenance_notifications,
        )

    @property
    def settings(self) -> PageSettings:
        return PageSettings(
            public_site_enabled=self.public_site_enabled,
            time_zone=self.time_zone,
            custom_domain=self.custom_domain,
            automatic_maintenance_notifications=self.automatic_maintenance_notifications,
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


@dataclass(frozen=True)
class PageSettings:
    """A page's public-site settings (README "Page settings"), as the page holds them."""

    public_site_enabled: bool = DEFAULT_PUBLIC_SITE_ENABLED
    time_zone: str = DEFAULT_TIME_ZONE
    custom_domain: str | None = None
    automatic_maintenance_notifications: str = DEFAULT_MAINTENANCE_NOTIFICATIONS


@dataclass(frozen=True)
class SettingsChange:
    """What a request says about the settings: `KEEP` keeps a stored value, `None` resets it to its default."""

    public_site_enabled: bool | Unchanged | None = KEEP
    time_zone: str | Unchanged | None = KEEP
    custom_domain: str | Unchanged | None = KEEP
    automatic_maintenance_notifications: str | Unchanged | None = KEEP


# Rules


def merge_settings(current: PageSettings, change: SettingsChange, *, reserved_host: str | None = None) -> PageSettings:
    """The settings after `change`, checked: an IANA time zone, a custom domain normalised by
    `normalise_custom_domain` (never `reserved_host`, Beacon's own public host), a known notification mode."""
    defaults = PageSettings()

    def pick(name: str) -> Any:
        value = getattr(change, name)
        if value is KEEP:
            return getattr(current, name)
        return getattr(defaults, name) if value is None else value

    time_zone = pick("time_zone")
    check_time_zone(time_zone)
    mode = pick("automatic_maintenance_notifications")
    if mode not in MAINTENANCE_NOTIFICATIONS:
        raise InvalidEnum(
            f"automatic_maintenance_notifications must be one of {', '.join(MAINTENANCE_NOTIFICATIONS)}",
            field="automatic_maintenance_notifications",
        )
    domain = pick("custom_domain")
    if domain is not None and change.custom_domain is not KEEP:
        domain = normalise_custom_domain(domain, reserved_host=reserved_host)
    return PageSettings(
        public_site_enabled=pick("public_site_enabled"),
        time_zone=time_zone,
        custom_domain=domain,
        automatic_maintenance_notifications=mode,
    )


def check_time_zone(time_zone: str) -> None:
    """An IANA zone name (`Europe/Paris`, `UTC`). `localtime` is a file of the host, not a zone: a page
    would render in whatever zone the machine that happens to render it is set to."""
    try:
        if time_zone == "localtime":
            raise ValueError(time_zone)
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidTimeZone(
            f"time_zone {time_zone!r} is not an IANA time zone (for example Europe/Paris or UTC)",
            field="time_zone",
        ) from None


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


class InvalidTimeZone(InvalidValue):
    """Raised when `time_zone` is not a zone of the IANA database."""

    field = "time_zone"


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
    settings: SettingsChange = SettingsChange(),
    reserved_host: str | None = None,
    context: CommandContext,
) -> StatusPage:
    """A new page; its custom domain, if any, is claimed first and given back if the page cannot be made."""
    checked = merge_settings(PageSettings(), settings, reserved_host=reserved_host)
    page = StatusPage.create(
        id=page_id,
        name=name,
        slug=slug,
        description=description,
        public_url=public_url,
        widget_api_enabled=widget_api_enabled,
        settings=checked,
        at=context.now,
        by=context.actor,
    )
    if checked.custom_domain is not None:
        await claim_custom_domain(store, checked.custom_domain, page_id, context)
    try:
        result = await save(store, page, context, idempotency=slug_reservation(slug))
    except BaseException:
        if checked.custom_domain is not None:
            await release_custom_domain(store, checked.custom_domain, page_id, context)
        raise
    if result.replayed:
        if checked.custom_domain is not None:
            await release_custom_domain(store, checked.custom_domain, page_id, context)
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
    settings: SettingsChange = SettingsChange(),
    reserved_host: str | None = None,
    context: CommandContext,
) -> StatusPage:
    """A partial update: `KEEP` keeps the stored value, `None` resets it to its default. A new custom domain
    is claimed before the page records it, and the one it replaces is released after."""
    page = await load(store, StatusPage, page_id)
    before = page.custom_domain
    wanted = merge_settings(page.settings, settings, reserved_host=reserved_host)
    if wanted.custom_domain is not None and wanted.custom_domain != before:
        await claim_custom_domain(store, wanted.custom_domain, page_id, context)

    def decide(current: StatusPage) -> None:
        current.update(
            name=name,
            description=description,
            public_url=public_url,
            widget_api_enabled=widget_api_enabled,
            slug=slug,
            settings=merge_settings(current.settings, settings, reserved_host=reserved_host),
            at=context.now,
            by=context.actor,
        )

    try:
        page, _ = await execute(store, StatusPage, page_id, decide, context, loaded=page)
    except BaseException:
        if wanted.custom_domain is not None and wanted.custom_domain != before:
            await release_custom_domain(store, wanted.custom_domain, page_id, context)
        raise
    if before is not None and before != page.custom_domain:
        await release_custom_domain(store, before, page_id, context)
    return page


async def claim_custom_domain(store: EventStore, domain: str, page_id: UUID, context: CommandContext) -> None:
    """Reserve `domain` for the page, or raise `CustomDomainTaken` naming the page that holds it."""
    stream_id = domain_stream_id(domain)
    for _ in range(MAX_RETRIES):
        try:
            reservation = await load(store, CustomDomain, stream_id)
        except NotFound:
            reservation = CustomDomain(
                id=stream_id, domain=domain, status_page_id=page_id, by=context.actor.as_data(), timestamp=context.now
            )
        else:
            holder = await _holder(store, reservation)
            try:
                reservation.claim(
                    status_page_id=page_id,
                    holder_still_uses=holder is None
                    or holder.custom_domain == domain
                    or holder.modified_on <= reservation.claimed_at,
                    at=context.now,
                    by=context.actor.as_data(),
                )
            except CustomDomainTaken as taken:
                raise CustomDomainTaken(domain, taken.holder, holder_slug=holder.slug if holder else None) from None
        try:
            await save(store, reservation, context)
        except ConcurrencyConflict:
            continue
        return
    raise WriteConflict(f"custom_domain {domain!r} is being claimed concurrently; try again")


async def _holder(store: EventStore, reservation: CustomDomain) -> StatusPage | None:
    """The page holding the reservation, None when there is none yet (a page being created holds it)."""
    if reservation.holder is None:
        return None
    try:
        return await load(store, StatusPage, reservation.holder)
    except NotFound:
        return None


async def release_custom_domain(store: EventStore, domain: str, page_id: UUID, context: CommandContext) -> None:
    """Give `domain` up if the page holds it."""

    def decide(reservation: CustomDomain) -> None:
        reservation.release(status_page_id=page_id, at=context.now, by=context.actor.as_data())

    try:
        await execute(store, CustomDomain, domain_stream_id(domain), decide, context)
    except NotFound:
        return


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
