"""What the public site's HTML shows (docs/architecture.md#public-site), as plain data: the `public_site`
projection builds these views from its state, and the templates (projections/public_site_html.py) turn a
view into bytes. Everything a template needs is here, already decided — texts, links, times in the page's
zone — so the templates hold no rules and the projection no markup.

The renderer's functions, one per kind of HTML document, each returning the whole document as `bytes`:

    render_index(view: IndexView) -> bytes
    render_history(view: HistoryView) -> bytes
    render_notice(view: NoticePageView) -> bytes
    unavailable_page() -> bytes          # the static 503 page while a cold document cannot be read

Times: every `datetime` here is aware UTC (for `<time datetime="…Z">`); the matching `*_local` string is
the same instant in the page's time zone, with the zone named, ready to print.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True)
class Link:
    """A link the page shows or puts in its `<head>`."""

    href: str
    """A path on Beacon's own host (`/acme/history`), or an absolute URL when the page has a canonical one."""
    label: str
    """The visible text (or `title` of a `<link>`)."""


@dataclass(frozen=True)
class SiteLinks:
    """Where the page's own documents are, for its navigation and `<head>`."""

    home: str
    """The page's index (`/acme`, `/acme/eu` for a sub-page)."""
    history: str
    """The latest months (`/acme/history`)."""
    feed_atom: str
    """`/acme/history.atom`, for `<link rel="alternate" type="application/atom+xml">`."""
    feed_rss: str
    """`/acme/history.rss`, for `<link rel="alternate" type="application/rss+xml">`."""
    summary_json: str
    """`/acme/api/v2/summary.json`."""
    status_json: str
    """`/acme/api/v2/status.json`."""
    subscribe_action: str
    """Where the subscribe form posts (`/acme/subscriptions`): email (and webhook URL) fields, no script."""
    canonical: str | None
    """The page's canonical URL (`<link rel="canonical">`), None when it has none."""


@dataclass(frozen=True)
class PageView:
    """The page (or sub-page, as a page of its own) every document is about."""

    id: str
    """ULID of the page, or of the sub-page."""
    name: str
    """What the `<title>` and header say: the page's name, or "{page} — {sub-page}"."""
    description: str | None
    """The page's description (plain text), None when unset."""
    time_zone: str
    """IANA name every local time is shown in (`UTC` by default)."""
    links: SiteLinks
    sub_pages: tuple[Link, ...] = ()
    """The page's sub-pages (empty on a sub-page): a navigation list."""
    parent: Link | None = None
    """On a sub-page, the page it belongs to."""


@dataclass(frozen=True)
class Banner:
    """The overall status at the top of the index."""

    indicator: str
    """`none|minor|major|critical`, as `status.json` says (picks the icon and the colour)."""
    maintenance: bool
    """True while a window is in progress and nothing is worse (a maintenance icon next to the text)."""
    text: str
    """`All Systems Operational`, `Partial System Outage`, … — never colour alone."""


@dataclass(frozen=True)
class DayCell:
    """One local day of a component's 90-day bar."""

    day: date
    """The day in the page's time zone (DST days are 23 or 25 hours long)."""
    status: str
    """The worst incident status of the day: `operational`, `degraded_performance`, `partial_outage`,
    `full_outage`; `no_data` before the component's data begins. Maintenance does not count."""
    text: str
    """The cell's text alternative: "3 Mar 2026: partial outage (Login failing)" or "2 Mar 2026: no
    incidents"."""


@dataclass(frozen=True)
class ComponentView:
    """A component row, or a group with its children."""

    id: str
    name: str
    description: str | None
    status: str
    """Statuspage's word: `operational|degraded_performance|partial_outage|major_outage|under_maintenance`
    (a group: its worst visible child's)."""
    status_text: str
    """`Operational`, `Degraded performance`, `Partial outage`, `Full outage`, `Under maintenance`."""
    days: tuple[DayCell, ...] | None
    """The 90-day bar, oldest first, ending today; None when the page's `display_uptime_mode` is `nothing`
    or the component's `display_uptime` (a group's `display_aggregated_uptime`) is off."""
    uptime_percent: str | None
    """`99.9821` over the bar's days up to now (floored to 4 decimals), None when the bar is hidden or the
    mode is `chart_only`."""
    children: tuple[ComponentView, ...] = ()
    """A group's visible components, in structure order (empty for a component)."""

    @property
    def is_group(self) -> bool:
        return bool(self.children)


@dataclass(frozen=True)
class UpdateView:
    """One update of a notice's timeline."""

    id: str
    status: str
    """Beacon status after the update (`investigating`, `maintenance_in_progress`, …)."""
    status_text: str
    """`Investigating`, `Identified`, `Monitoring`, `Resolved`, `Scheduled`, `In progress`, `Completed`."""
    at: datetime
    at_local: str
    """`3 Mar 2026, 14:05 CET`."""
    message: str
    """Markdown source; the template renders it without raw HTML and sanitises it."""
    components: tuple[str, ...] = ()
    """"{name}: {status text}" for each component the update changed."""


@dataclass(frozen=True)
class NoticeView:
    """An incident or a maintenance window: on the index (latest update only used), in history, on its page."""

    id: str
    kind: str
    """`incident` or `maintenance`."""
    name: str
    status: str
    """Beacon status."""
    status_text: str
    impact: str
    """Statuspage impact: `minor|major|critical` for incidents (worst reached), `maintenance` for windows."""
    href: str
    """Its page: `/acme/incidents/{id}` or `/acme/maintenances/{id}`."""
    updates: tuple[UpdateView, ...]
    """Newest first; `updates[0]` is the latest."""
    components: tuple[str, ...]
    """Names of the visible components it affected, in the order first named."""
    started_at: datetime
    """Its first update's publication."""
    started_at_local: str
    ended_at: datetime | None
    """When it was resolved or completed; None while open."""
    ended_at_local: str | None
    duration: str | None
    """"2 h 14 min" from start to end; None while open."""
    scheduled_for: datetime | None = None
    """A window's planned start."""
    scheduled_for_local: str | None = None
    scheduled_until: datetime | None = None
    """A window's planned end."""
    scheduled_until_local: str | None = None


@dataclass(frozen=True)
class NoticeDay:
    """The notices of one local day ("Past incidents", a history month)."""

    day: date
    label: str
    """`3 Mar 2026`."""
    notices: tuple[NoticeView, ...]
    """Newest first; empty says "No incidents reported"."""


@dataclass(frozen=True)
class IndexView:
    """`GET /{slug}` (and `/{slug}/{sub_page}`)."""

    page: PageView
    banner: Banner
    components: tuple[ComponentView, ...]
    """Top-level rows in structure order (a sub-page's groups and components as at top level)."""
    ongoing_incidents: tuple[NoticeView, ...]
    """Unresolved incidents, latest update first."""
    in_progress_maintenances: tuple[NoticeView, ...]
    upcoming_maintenances: tuple[NoticeView, ...]
    """Windows still `maintenance_scheduled`, soonest first."""
    past_days: tuple[NoticeDay, ...]
    """The last 15 local days, today first: incidents and completed windows by the day they began."""
    uptime_mode: str
    """`chart_and_percentage`, `chart_only` or `nothing` (the page's `display_uptime_mode`)."""


@dataclass(frozen=True)
class MonthLink:
    month: str
    """`2026-03`."""
    label: str
    """`March 2026`."""
    href: str
    """`/acme/history/2026-03`."""
    count: int
    """Notices begun that month."""


@dataclass(frozen=True)
class HistoryView:
    """`GET /{slug}/history` (the latest months, `month` None) or `/{slug}/history/{YYYY-MM}` (one month)."""

    page: PageView
    months: tuple[MonthLink, ...]
    """Every month with a notice, newest first (navigation; counts only on `/history`)."""
    month: MonthLink | None
    """The month shown; None on `/history`."""
    days: tuple[NoticeDay, ...]
    """Days with notices, newest first (the latest months' on `/history`)."""
    previous: MonthLink | None = None
    """The month before `month` that has notices (an older page)."""
    next: MonthLink | None = None
    """The month after `month` that has notices."""


@dataclass(frozen=True)
class NoticePageView:
    """`GET /{slug}/incidents/{id}` and `/{slug}/maintenances/{id}`: the full timeline."""

    page: PageView
    notice: NoticeView
