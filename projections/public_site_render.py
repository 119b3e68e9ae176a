"""The public site's documents from its state, without a database (docs/architecture.md#public-site): the
eight Statuspage JSON documents, the feeds and the HTML views of a page or sub-page, each as bytes. The
`public_site` projection calls these for what a batch dirtied; the same functions serve a rebuild, so the
bytes never depend on when or how they were rendered.

Decisions the contract leaves open:

- A page's documents cover every visible component of the page and its sub-pages; a sub-page's cover its
  own and the notices that name one of them. A sub-page is a page of its own: its lists (the 50 newest of
  each kind, the feeds' 25 latest updated) are drawn from its own notices, and its history's months are
  the months of its own notices (`Scope.months`), never the parent's.
- The clock-dependent parts (the 90-day bars and uptime) are rendered at `SitePage.instant`.
- `/history` shows the latest three months with notices; every history page lists every month that has
  notices (`HistoryView.months`, with counts on `/history` only: a count on each month page would make every
  new notice re-render them all), and links the months before and after it. A month appearing or
  disappearing re-renders every month page of its page.
- A day of the bars is the worst incident status any component of the row held during the day; the
  uptime is `component_availability`'s rule over the bar's days up to the instant.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from domain.canonical_url import canonical_url as canonical
from domain.canonical_url import sub_page_url
from domain.structure import ComponentItem, GroupItem, StructureItem, SubPageItem, parse_structure, sub_pages
from projections import statuspage
from projections.component_availability import Interval, availability_percent, downtime
from projections.public_site_state import SiteComponent, SiteNotice, SitePage, local_month
from projections.public_site_view import (
    Banner,
    ComponentView,
    DayCell,
    HistoryView,
    IndexView,
    Link,
    MonthLink,
    NoticeDay,
    NoticeView,
    PageView,
    SiteLinks,
    UpdateView,
)
from projections.status_words import status_word
from projections.statuspage import (
    COMPONENT_SEVERITY,
    ComponentFacts,
    NoticeFacts,
    PageFacts,
    UpdateFacts,
)

JSON = "application/json"
HTML = "text/html; charset=utf-8"
ATOM = "application/atom+xml; charset=utf-8"
RSS = "application/rss+xml; charset=utf-8"

BAR_DAYS = 90
PAST_DAYS = 15
RECENT = timedelta(days=BAR_DAYS + 1)
"""How far back the index needs every notice (the bars); older ones only by the lists' counts."""
LIST_SIZE = 50
FEED_SIZE = 25
HISTORY_MONTHS = 3

JSON_DOCUMENTS = (
    "summary",
    "status",
    "components",
    "incidents",
    "scheduled-maintenances",
    "incidents/unresolved",
    "scheduled-maintenances/upcoming",
    "scheduled-maintenances/active",
)

_ENCODER = msgspec.json.Encoder()


@dataclass(frozen=True)
class Document:
    """One rendered document: its path on Beacon's own host, its type, its bytes, and whether every process
    keeps it in memory (`hot`) or reads it when asked."""

    path: str
    content_type: str
    body: bytes
    hot: bool


# A page or a sub-page, as a page of its own.


@dataclass(frozen=True)
class Scope:
    page: SitePage
    sub_page: SubPageItem | None
    base_url: str | None
    """Beacon's public base URL as the log last recorded it."""
    months: Mapping[str, int] | None = field(default=None, compare=False, hash=False)
    """A sub-page's history months (its own notices per local month, `month_counts`), set by whoever renders
    its history; None: the page's (`SitePage.months`)."""

    @property
    def month_counts(self) -> Mapping[str, int]:
        return self.months if self.months is not None else self.page.months

    @property
    def id(self) -> str:
        return self.sub_page.id if self.sub_page is not None else self.page.id

    @property
    def name(self) -> str:
        return f"{self.page.name} — {self.sub_page.name}" if self.sub_page is not None else self.page.name

    @property
    def prefix(self) -> str:
        """The scope's path on Beacon's own host (`/acme`, `/acme/eu`)."""
        return f"/{self.page.slug}/{self.sub_page.slug}" if self.sub_page is not None else f"/{self.page.slug}"

    @property
    def url(self) -> str | None:
        page_url = canonical_url(self.page, self.base_url)
        if self.sub_page is None or self.sub_page.slug is None:
            return page_url
        return sub_page_url(page_url, self.sub_page.slug)

    @property
    def items(self) -> tuple[StructureItem, ...]:
        structure = parse_structure(self.page.items)
        if self.sub_page is None:
            return structure
        return next((item.items for item in sub_pages(structure) if item.id == self.sub_page.id), ())

    def link(self, path: str) -> str:
        """Where a document of the scope is stored: its path on Beacon's own host."""
        return self.prefix + path

    def href(self, path: str = "") -> str:
        """How the scope's pages link to one of its documents: a path on Beacon's own host, or on a page
        served on a custom domain an absolute URL on its canonical base (a path there would gain the slug
        twice: the domain's requests are already rewritten to `/{slug}…`)."""
        base = self.url if self.page.custom_domain and self.url else self.prefix
        return base + path


def canonical_url(page: SitePage, base_url: str | None) -> str | None:
    """The page's canonical URL (domain/canonical_url.py)."""
    return canonical(public_url=page.public_url, custom_domain=page.custom_domain, base_url=base_url, slug=page.slug)


def month_counts(notices: Iterable[SiteNotice], zone: ZoneInfo) -> dict[str, int]:
    """Notices begun per local month: a sub-page's history months, from its own notices."""
    counts: dict[str, int] = {}
    for notice in notices:
        month = local_month(notice.begun_at, zone)
        counts[month] = counts.get(month, 0) + 1
    return counts


def scopes(page: SitePage, base_url: str | None) -> list[Scope]:
    """The page and each of its sub-pages."""
    found = [Scope(page, None, base_url)]
    for sub_page in sub_pages(parse_structure(page.items)):
        found.append(Scope(page, sub_page, base_url))
    return found


# Component rows.


@dataclass(frozen=True)
class Row:
    """A visible component row of a scope, or a group with its visible children."""

    facts: ComponentFacts
    display: bool
    """`display_uptime` (a group's `display_aggregated_uptime`)."""
    data_since: datetime
    """Where its data begins: its creation or its earliest impact, whichever is earlier (a group: its
    earliest child's)."""
    children: tuple[Row, ...] = ()


def rows_of(scope: Scope, components: Mapping[str, SiteComponent]) -> list[Row]:
    page = scope.page
    top: list[Row] = []

    def component(item: ComponentItem, position: int, group_id: str | None) -> Row:
        known = components.get(item.component_id)
        created = known.created_at if known is not None else page.created_at
        since = page.impact_since.get(item.component_id)
        data_since = min(created, since) if since is not None else created
        return Row(
            ComponentFacts(
                id=item.component_id,
                name=known.name if known is not None else "",
                status=page.statuses.get(item.component_id, "operational"),
                created_at=created,
                updated_at=page.status_changed.get(item.component_id, created),
                position=position,
                description=known.description if known is not None else None,
                showcase=item.display_uptime,
                start_date=data_since.astimezone(UTC).date(),
                group_id=group_id,
            ),
            item.display_uptime,
            data_since,
        )

    def add(item: ComponentItem | GroupItem) -> None:
        if item.hidden:
            return
        position = len(top) + 1
        if isinstance(item, ComponentItem):
            top.append(component(item, position, None))
            return
        children = tuple(
            component(child, index + 1, item.id)
            for index, child in enumerate(child for child in item.components if not child.hidden)
        )
        created = page.groups_since.get(item.id, page.created_at)
        top.append(
            Row(
                ComponentFacts(
                    id=item.id,
                    name=item.name,
                    status=statuspage.worst_status(child.facts.status for child in children),
                    created_at=created,
                    updated_at=max((child.facts.updated_at for child in children), default=created),
                    position=position,
                    description=item.description,
                    showcase=item.display_aggregated_uptime,
                    start_date=None,
                    group_id=None,
                    group=True,
                    components=tuple(child.facts.id for child in children),
                ),
                item.display_aggregated_uptime,
                min((child.data_since for child in children), default=created),
                children,
            )
        )

    for item in scope.items:
        if isinstance(item, SubPageItem):
            for member in item.items:
                add(member)
        else:
            add(item)
    return top


def flat(rows: Iterable[Row]) -> list[ComponentFacts]:
    """Statuspage's flat list: each group row followed by its children."""
    out: list[ComponentFacts] = []
    for row in rows:
        out.append(row.facts)
        out.extend(child.facts for child in row.children)
    return out


def leaves(rows: Iterable[Row]) -> list[ComponentFacts]:
    return [facts for facts in flat(rows) if not facts.group]


# Notices as Statuspage facts.


def notice_facts(
    notice: SiteNotice, components: Mapping[str, SiteComponent], visible: set[str] | None = None
) -> NoticeFacts:
    """The notice as Statuspage facts; with `visible`, only those components count: its updates' component
    changes list only them and its impact is the worst status one of them reached (a hidden component is
    never shown publicly, not even through an impact)."""
    before: dict[str, str] = {}
    updates: list[UpdateFacts] = []
    worst: str | None = None
    monitoring_at: datetime | None = None
    resolved_at: datetime | None = None
    for update in notice.updates:
        names = {cid: components[cid].name for cid, _ in update.statuses if cid in components}
        updates.append(
            UpdateFacts(
                id=update.id,
                status=update.status,
                message=update.message,
                published_at=update.at,
                notify_subscribers=update.notify,
                changes=statuspage.component_changes(
                    before,
                    [(c, s) for c, s in update.statuses if visible is None or c in visible],
                    names,
                ),
            )
        )
        for component_id, status in update.statuses:
            before[component_id] = status
            if notice.kind == "incident" and status != "operational" and (visible is None or component_id in visible):
                if COMPONENT_SEVERITY.get(status, 0) > COMPONENT_SEVERITY.get(worst or "operational", 0):
                    worst = status
        if update.status == "monitoring" and monitoring_at is None:
            monitoring_at = update.at
        if update.status in ("resolved", "maintenance_complete"):
            resolved_at = update.at
    return NoticeFacts(
        id=notice.id,
        kind=notice.kind,
        name=notice.name,
        status=notice.status,
        created_at=notice.created_at,
        updated_at=notice.updated_at,
        updates=tuple(updates),
        worst_reached=worst,
        monitoring_at=monitoring_at,
        resolved_at=resolved_at,
        scheduled_for=notice.start_at,
        scheduled_until=notice.end_at,
        started_at=statuspage.window_started_at((u.status, u.at) for u in notice.updates)
        if notice.kind == "maintenance"
        else None,
    )


def named_components(notice: SiteNotice) -> list[str]:
    """Every component the notice named, in the order first named."""
    return list(dict.fromkeys(cid for update in notice.updates for cid, _ in update.statuses))


def in_scope(scope: Scope, notices: Iterable[SiteNotice], visible: set[str]) -> list[SiteNotice]:
    """A page's notices are all of its own; a sub-page's those that name one of its visible components."""
    own = [notice for notice in notices if notice.status_page_id == scope.page.id]
    if scope.sub_page is None:
        return own
    return [notice for notice in own if visible.intersection(named_components(notice))]


def _newest(notices: Iterable[SiteNotice], key: Callable[[SiteNotice], datetime]) -> list[SiteNotice]:
    return sorted(notices, key=lambda n: (key(n), n.id), reverse=True)


def _soonest(notices: Iterable[SiteNotice]) -> list[SiteNotice]:
    return sorted(notices, key=lambda n: (n.begun_at, n.id))


# The JSON documents and the feeds.


@dataclass
class CoreInputs:
    """What a scope's index, JSON and feeds are rendered from."""

    scope: Scope
    rows: list[Row]
    notices: list[SiteNotice]
    components: Mapping[str, SiteComponent]

    def __post_init__(self) -> None:
        self.visible = {facts.id for facts in leaves(self.rows)}
        self.views = Views(self.scope, self.components, self.visible)

    def facts(self, notice: SiteNotice) -> NoticeFacts:
        return notice_facts(notice, self.components, self.visible)

    def incident_object(self, notice: SiteNotice) -> dict[str, Any]:
        affected = set(named_components(notice))
        shown = [facts for facts in leaves(self.rows) if facts.id in affected]
        return statuspage.incident(self.facts(notice), page_id=self.scope.id, base_url=self.scope.url, components=shown)


def page_facts(scope: Scope) -> PageFacts:
    return PageFacts(
        id=scope.id, name=scope.name, url=scope.url, time_zone=scope.page.time_zone, updated_at=scope.page.updated_at
    )


def json_documents(inputs: CoreInputs) -> dict[str, bytes]:
    """The eight documents, keyed by their name under `api/v2/` without `.json`."""
    scope = inputs.scope
    page = statuspage.page_object(page_facts(scope))
    components = statuspage.component_objects(flat(inputs.rows), scope.id)
    incidents = [n for n in inputs.notices if n.kind == "incident"]
    windows = [n for n in inputs.notices if n.kind == "maintenance"]
    unresolved = _newest((n for n in incidents if n.open), lambda n: n.created_at)
    upcoming = _soonest(n for n in windows if n.status == "maintenance_scheduled")
    active = _soonest(n for n in windows if n.status == "maintenance_in_progress")
    unresolved_objects = [inputs.incident_object(n) for n in unresolved]
    upcoming_objects = [inputs.incident_object(n) for n in upcoming]
    active_objects = [inputs.incident_object(n) for n in active]
    status = statuspage.status_object(
        statuspage.status_indicator(
            [facts.status for facts in leaves(inputs.rows)], (obj["impact"] for obj in unresolved_objects)
        )
    )
    newest_incidents = [inputs.incident_object(n) for n in _newest(incidents, lambda n: n.created_at)[:LIST_SIZE]]
    newest_windows = [inputs.incident_object(n) for n in _newest(windows, lambda n: n.created_at)[:LIST_SIZE]]
    bodies: dict[str, dict[str, Any]] = {
        "summary": {
            "page": page,
            "components": components,
            "incidents": unresolved_objects,
            "scheduled_maintenances": active_objects + upcoming_objects,
            "status": status,
        },
        "status": {"page": page, "status": status},
        "components": {"page": page, "components": components},
        "incidents": {"page": page, "incidents": newest_incidents},
        "scheduled-maintenances": {"page": page, "scheduled_maintenances": newest_windows},
        "incidents/unresolved": {"page": page, "incidents": unresolved_objects},
        "scheduled-maintenances/upcoming": {"page": page, "scheduled_maintenances": upcoming_objects},
        "scheduled-maintenances/active": {"page": page, "scheduled_maintenances": active_objects},
    }
    return {name: _ENCODER.encode(body) for name, body in bodies.items()}


def feed_entries(inputs: CoreInputs) -> list[NoticeFacts]:
    """The 25 notices with the latest updates, newest first."""
    return [inputs.facts(n) for n in _newest(inputs.notices, lambda n: n.updated_at)[:FEED_SIZE]]


# The HTML views.

def local_text(instant: datetime, zone: ZoneInfo) -> str:
    """`3 Mar 2026, 14:05 CET`."""
    local = instant.astimezone(zone)
    return f"{local.day} {local:%b %Y}, {local:%H:%M} {local.tzname()}"


def day_text(day: date) -> str:
    return f"{day.day} {day:%b %Y}"


def duration_text(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d"] if days else []
    if hours:
        parts.append(f"{hours} h")
    if minutes or not parts:
        parts.append(f"{minutes} min")
    return " ".join(parts)


def page_view(scope: Scope) -> PageView:
    structure = parse_structure(scope.page.items)
    return PageView(
        id=scope.id,
        name=scope.name,
        description=scope.page.description,
        time_zone=scope.page.time_zone,
        links=SiteLinks(
            home=scope.href(),
            history=scope.href("/history"),
            feed_atom=scope.href("/history.atom"),
            feed_rss=scope.href("/history.rss"),
            summary_json=scope.href("/api/v2/summary.json"),
            status_json=scope.href("/api/v2/status.json"),
            subscribe_action=scope.href("/subscriptions"),
            canonical=scope.url,
        ),
        sub_pages=()
        if scope.sub_page is not None
        else tuple(Link(scope.href(f"/{s.slug}"), s.name) for s in sub_pages(structure)),
        parent=Link(Scope(scope.page, None, scope.base_url).href(), scope.page.name)
        if scope.sub_page is not None
        else None,
    )


def notice_view(
    scope: Scope, notice: SiteNotice, components: Mapping[str, SiteComponent], visible: set[str]
) -> NoticeView:
    zone = scope.page.zone
    facts = notice_facts(notice, components, visible)
    updates = tuple(
        UpdateView(
            id=update.id,
            status=update.status,
            status_text=status_word(update.status),
            at=update.published_at.astimezone(UTC),
            at_local=local_text(update.published_at, zone),
            message=update.message,
            components=tuple(
                f"{change.name}: {status_word(change.new_status)}"
                for change in update.changes or ()
                if change.component_id in visible
            ),
        )
        for update in reversed(facts.updates)
    )
    ended = facts.resolved_at
    began = facts.started_at or notice.created_at  # a window began when it went in progress, as its JSON says
    path = "incidents" if notice.kind == "incident" else "maintenances"
    return NoticeView(
        id=notice.id,
        kind=notice.kind,
        name=notice.name,
        status=notice.status,
        status_text=status_word(notice.status),
        impact=facts.impact,
        href=scope.href(f"/{path}/{notice.id}"),
        updates=updates,
        components=tuple(
            components[cid].name for cid in named_components(notice) if cid in visible and cid in components
        ),
        started_at=began.astimezone(UTC),
        started_at_local=local_text(began, zone),
        ended_at=ended.astimezone(UTC) if ended is not None else None,
        ended_at_local=local_text(ended, zone) if ended is not None else None,
        duration=duration_text(ended - began) if ended is not None else None,
        scheduled_for=notice.start_at.astimezone(UTC) if notice.start_at is not None else None,
        scheduled_for_local=local_text(notice.start_at, zone) if notice.start_at is not None else None,
        scheduled_until=notice.end_at.astimezone(UTC) if notice.end_at is not None else None,
        scheduled_until_local=local_text(notice.end_at, zone) if notice.end_at is not None else None,
    )


class Views:
    """Each notice's view in one scope, made once per render however many documents show it (its page, its
    month, the history, the index)."""

    def __init__(self, scope: Scope, components: Mapping[str, SiteComponent], visible: set[str]) -> None:
        self.scope, self.components, self.visible = scope, components, visible
        self._made: dict[str, NoticeView] = {}

    def __call__(self, notice: SiteNotice) -> NoticeView:
        view = self._made.get(notice.id)
        if view is None:
            view = self._made[notice.id] = notice_view(self.scope, notice, self.components, self.visible)
        return view


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of a local day, in UTC (a DST day is 23 or 25 hours long)."""
    return datetime.combine(day, time(), zone).astimezone(UTC)


def _incident_intervals(notices: Iterable[SiteNotice]) -> dict[str, list[tuple[datetime, datetime | None, str]]]:
    """Each component's non-operational ranges during incidents (maintenance does not count)."""
    found: dict[str, list[tuple[datetime, datetime | None, str]]] = {}
    for notice in notices:
        if notice.kind != "incident":
            continue
        open_at: dict[str, tuple[datetime, str]] = {}
        for update in notice.updates:
            for component_id, status in update.statuses:
                current = open_at.pop(component_id, None)
                if current is not None:
                    if current[1] == status:
                        open_at[component_id] = current
                        continue
                    found.setdefault(component_id, []).append((current[0], update.at, current[1]))
                if status != "operational":
                    open_at[component_id] = (update.at, status)
        for component_id, (start, status) in open_at.items():
            found.setdefault(component_id, []).append((start, None, status))
    return found


def _bar(
    ids: Sequence[str],
    intervals: Mapping[str, list[tuple[datetime, datetime | None, str]]],
    data_since: datetime,
    days: Sequence[date],
    bounds: Sequence[datetime],
    instant: datetime,
) -> tuple[tuple[DayCell, ...], str | None]:
    """The cells of `days` (whose starts and the end of the last are `bounds`) and the uptime percentage."""
    worst = ["operational"] * len(days)
    outages: list[Interval] = []
    for component_id in ids:
        for begin, finish, status in intervals.get(component_id, ()):
            if status in ("partial_outage", "full_outage"):
                outages.append(Interval(begin, finish))
            if begin >= instant or (finish is not None and finish <= bounds[0]) or begin >= bounds[-1]:
                continue
            first = max(bisect_right(bounds, begin) - 1, 0)
            last = len(days) if finish is None else min(bisect_left(bounds, finish), len(days))
            for index in range(first, last):
                if COMPONENT_SEVERITY.get(status, 0) > COMPONENT_SEVERITY.get(worst[index], 0):
                    worst[index] = status
    cells: list[DayCell] = []
    for index, day in enumerate(days):
        if bounds[index + 1] <= data_since:
            cells.append(DayCell(day, "no_data", f"{day_text(day)}: no data"))
        elif worst[index] == "operational":
            cells.append(DayCell(day, "operational", f"{day_text(day)}: no incidents"))
        else:
            cells.append(DayCell(day, worst[index], f"{day_text(day)}: {status_word(worst[index]).lower()}"))
    window_start = max(bounds[0], data_since)
    covered = instant - window_start if instant > window_start else timedelta()
    return tuple(cells), availability_percent(
        covered, downtime(outages, window_start, instant) if covered else timedelta()
    )


def index_view(inputs: CoreInputs) -> IndexView:
    scope, page = inputs.scope, inputs.scope.page
    zone, instant = page.zone, page.instant
    today = instant.astimezone(zone).date()
    days = [today - timedelta(days=offset) for offset in range(BAR_DAYS - 1, -1, -1)]
    bounds = [day_start(day, zone) for day in days] + [day_start(today + timedelta(days=1), zone)]
    intervals = _incident_intervals(inputs.notices)
    mode = page.uptime_mode

    def component_view(row: Row) -> ComponentView:
        ids = [child.facts.id for child in row.children if child.display] if row.facts.group else [row.facts.id]
        cells: tuple[DayCell, ...] | None = None
        percent: str | None = None
        if mode != "nothing" and row.display:
            cells, percent = _bar(ids, intervals, row.data_since, days, bounds, instant)
            if mode == "chart_only":
                percent = None
        return ComponentView(
            id=row.facts.id,
            name=row.facts.name,
            description=row.facts.description,
            status=statuspage.component_status(row.facts.status),
            status_text=status_word(row.facts.status),
            days=cells,
            uptime_percent=percent,
            children=tuple(component_view(child) for child in row.children),
        )

    data = json_documents_status(inputs)
    in_progress = any(n.status == "maintenance_in_progress" for n in inputs.notices)
    view = inputs.views
    spans: list[tuple[date, datetime, datetime, list[NoticeView]]] = []
    for offset in range(PAST_DAYS):
        day = today - timedelta(days=offset)
        spans.append((day, day_start(day, zone), day_start(day + timedelta(days=1), zone), []))
    for n in _newest(inputs.notices, lambda n: n.begun_at):  # sorted once, not once per day
        if n.kind == "incident" or n.status == "maintenance_complete":
            for _, start, end, shown in spans:
                if start <= n.begun_at < end:
                    shown.append(view(n))
    past = [NoticeDay(day, day_text(day), tuple(shown)) for day, _, _, shown in spans]
    return IndexView(
        page=page_view(scope),
        banner=Banner(indicator=data[0], maintenance=in_progress and data[0] == "none", text=data[1]),
        components=tuple(component_view(row) for row in inputs.rows),
        ongoing_incidents=tuple(
            view(n) for n in _newest(inputs.notices, lambda n: n.updated_at) if n.kind == "incident" and n.open
        ),
        in_progress_maintenances=tuple(
            view(n) for n in _soonest(inputs.notices) if n.status == "maintenance_in_progress"
        ),
        upcoming_maintenances=tuple(view(n) for n in _soonest(inputs.notices) if n.status == "maintenance_scheduled"),
        past_days=tuple(past),
        uptime_mode=mode,
    )


def json_documents_status(inputs: CoreInputs) -> tuple[str, str]:
    unresolved = [n for n in inputs.notices if n.kind == "incident" and n.open]
    return statuspage.status_indicator(
        [facts.status for facts in leaves(inputs.rows)], (inputs.facts(n).impact for n in unresolved)
    )


def month_label(month: str) -> str:
    return datetime.strptime(month + "-01", "%Y-%m-%d").strftime("%B %Y")


def month_link(scope: Scope, month: str, count: int) -> MonthLink:
    return MonthLink(month=month, label=month_label(month), href=scope.href(f"/history/{month}"), count=count)


def history_days(scope: Scope, notices: Iterable[SiteNotice], views: Views) -> tuple[NoticeDay, ...]:
    zone = scope.page.zone
    by_day: dict[date, list[SiteNotice]] = {}
    for notice in notices:
        by_day.setdefault(notice.begun_at.astimezone(zone).date(), []).append(notice)
    return tuple(
        NoticeDay(
            day,
            day_text(day),
            tuple(views(n) for n in _newest(by_day[day], lambda n: n.begun_at)),
        )
        for day in sorted(by_day, reverse=True)
    )


def history_view(
    scope: Scope,
    month: str | None,
    notices: Sequence[SiteNotice],
    views: Views,
) -> HistoryView:
    """`/history` (`month` None: the latest months) or one month's page; both list every month in `months`."""
    months = scope.month_counts
    ordered = sorted(months, reverse=True)
    if month is None:
        return HistoryView(
            page=page_view(scope),
            months=tuple(month_link(scope, m, months[m]) for m in ordered),
            month=None,
            days=history_days(scope, notices, views),
        )
    older = [m for m in ordered if m < month]
    newer = [m for m in ordered if m > month]
    return HistoryView(
        page=page_view(scope),
        # Without their counts: a month page is re-rendered when a month appears or goes, not on every notice.
        months=tuple(month_link(scope, m, 0) for m in ordered),
        month=month_link(scope, month, months.get(month, 0)),
        days=history_days(scope, notices, views),
        previous=month_link(scope, older[0], months[older[0]]) if older else None,
        next=month_link(scope, newer[-1], months[newer[-1]]) if newer else None,
    )
