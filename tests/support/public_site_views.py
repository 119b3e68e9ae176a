"""A realistic public-site view built by hand (a group with a component in partial outage, an ongoing
incident, a window in progress, one scheduled, past incidents): what the HTML tests render without a
projection, so a template change is tested by itself."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from projections.public_site_view import (
    Banner,
    ComponentView,
    DayCell,
    HistoryView,
    IndexView,
    Link,
    MonthLink,
    NoticeDay,
    NoticePageView,
    NoticeView,
    PageView,
    SiteLinks,
    UpdateView,
)

NOW = datetime(2026, 12, 2, 9, 12, tzinfo=UTC)
TODAY = date(2026, 12, 2)
ZONE_SUFFIX = "CET"


def links(base: str = "/acme") -> SiteLinks:
    return SiteLinks(
        home=base,
        history=f"{base}/history",
        feed_atom=f"{base}/history.atom",
        feed_rss=f"{base}/history.rss",
        summary_json=f"{base}/api/v2/summary.json",
        status_json=f"{base}/api/v2/status.json",
        subscribe_action=f"{base}/subscriptions",
        canonical=None,
    )


PAGE = PageView(
    id="01PAGE",
    name="Acme Cloud",
    description="Status of Acme Cloud services",
    time_zone="Europe/Berlin",
    links=links(),
    sub_pages=(Link("/acme/eu", "Europe"), Link("/acme/us", "United States")),
)


def local(at: datetime) -> str:
    return f"{(at + timedelta(hours=1)).strftime('%-d %b %Y, %H:%M')} {ZONE_SUFFIX}"


def days(bad: dict[int, str] | None = None, no_data: int = 5) -> tuple[DayCell, ...]:
    """Ninety cells ending today; `bad` maps a cell's index (0 = 89 days ago) to its status."""
    cells = []
    for index in range(90):
        day = TODAY - timedelta(days=89 - index)
        status = "no_data" if index < no_data else (bad or {}).get(index, "operational")
        words = {"no_data": "no data", "operational": "no incidents"}.get(status, status.replace("_", " "))
        cells.append(DayCell(day, status, f"{day.day} {day:%b %Y}: {words}"))
    return tuple(cells)


def component(
    key: str, name: str, status: str = "operational", text: str = "Operational", bad: dict[int, str] | None = None
) -> ComponentView:
    return ComponentView(
        id=f"01COMPONENT{key}",
        name=name,
        description=None,
        status=status,
        status_text=text,
        days=days(bad),
        uptime_percent="99.9821" if bad else "100.0000",
    )


def update(status: str, text: str, message: str, minutes_ago: int) -> UpdateView:
    at = NOW - timedelta(minutes=minutes_ago)
    return UpdateView(
        id=f"01UPDATE{status}", status=status, status_text=text, at=at, at_local=local(at), message=message
    )


def notice(
    key: str,
    kind: str,
    name: str,
    updates: tuple[UpdateView, ...],
    impact: str,
    components: tuple[str, ...],
    *,
    ended: bool = False,
    window: tuple[datetime, datetime] | None = None,
) -> NoticeView:
    started = updates[-1].at
    ended_at = updates[0].at if ended else None
    return NoticeView(
        id=key,
        kind=kind,
        name=name,
        status=updates[0].status,
        status_text=updates[0].status_text,
        impact=impact,
        href=f"/acme/{'maintenances' if kind == 'maintenance' else 'incidents'}/{key}",
        updates=updates,
        components=components,
        started_at=started,
        started_at_local=local(started),
        ended_at=ended_at,
        ended_at_local=local(ended_at) if ended_at else None,
        duration="1 h 20 min" if ended else None,
        scheduled_for=window[0] if window else None,
        scheduled_for_local=local(window[0]) if window else None,
        scheduled_until=window[1] if window else None,
        scheduled_until_local=local(window[1]) if window else None,
    )


INCIDENT = notice(
    "01INCIDENT",
    "incident",
    "Elevated error rates on the API",
    (
        update(
            "identified",
            "Identified",
            "We found a **faulty deploy** of the edge proxy and are rolling it back. "
            "See [the runbook](https://example.com/runbook).",
            0,
        ),
        update("investigating", "Investigating", "We are investigating elevated 5xx rates.", 25),
    ),
    "major",
    ("API", "Dashboard"),
)
IN_PROGRESS = notice(
    "01WINDOWNOW",
    "maintenance",
    "Database failover drill",
    (update("maintenance_in_progress", "In progress", "The drill has started. Writes may pause for 30 s.", 5),),
    "maintenance",
    ("Database",),
    window=(NOW - timedelta(minutes=5), NOW + timedelta(hours=1)),
)
SCHEDULED = notice(
    "01WINDOWNEXT",
    "maintenance",
    "Network upgrade in Frankfurt",
    (update("maintenance_scheduled", "Scheduled", "We will upgrade the core routers. No downtime expected.", 60),),
    "maintenance",
    ("API", "Web app"),
    window=(NOW + timedelta(days=2), NOW + timedelta(days=2, hours=2)),
)
RESOLVED = notice(
    "01INCIDENTOLD",
    "incident",
    "Login failures for some users",
    (
        update("resolved", "Resolved", "Fixed: a certificate had expired.", 2 * 24 * 60),
        update("investigating", "Investigating", "Some users cannot log in.", 2 * 24 * 60 + 80),
    ),
    "minor",
    ("Web app",),
    ended=True,
)

GROUP = ComponentView(
    id="01GROUP",
    name="Core platform",
    description=None,
    status="partial_outage",
    status_text="Partial outage",
    days=days({88: "partial_outage"}),
    uptime_percent="99.9500",
    children=(
        component("API", "API", "partial_outage", "Partial outage", {88: "partial_outage", 40: "full_outage"}),
        component("DASH", "Dashboard", "degraded_performance", "Degraded performance", {88: "degraded_performance"}),
    ),
)

PAST_DAYS = tuple(
    NoticeDay(
        TODAY - timedelta(days=back),
        f"{(TODAY - timedelta(days=back)).day} {TODAY - timedelta(days=back):%b %Y}",
        (INCIDENT,) if back == 0 else (RESOLVED,) if back == 2 else (),
    )
    for back in range(15)
)

INDEX = IndexView(
    page=PAGE,
    banner=Banner(indicator="major", maintenance=False, text="Partial System Outage"),
    components=(
        GROUP,
        component("WEB", "Web app", bad={87: "degraded_performance"}),
        component("DB", "Database", "under_maintenance", "Under maintenance"),
        component("HOOKS", "Webhooks"),
    ),
    ongoing_incidents=(INCIDENT,),
    in_progress_maintenances=(IN_PROGRESS,),
    upcoming_maintenances=(SCHEDULED,),
    past_days=PAST_DAYS,
    uptime_mode="chart_and_percentage",
)

DECEMBER = MonthLink("2026-12", "December 2026", "/acme/history/2026-12", 2)
NOVEMBER = MonthLink("2026-11", "November 2026", "/acme/history/2026-11", 1)
HISTORY = HistoryView(page=PAGE, months=(DECEMBER, NOVEMBER), month=None, days=(PAST_DAYS[0], PAST_DAYS[2]))
MONTH = HistoryView(page=PAGE, months=(DECEMBER, NOVEMBER), month=DECEMBER, days=(PAST_DAYS[0],), previous=NOVEMBER)
INCIDENT_PAGE = NoticePageView(page=PAGE, notice=INCIDENT)
