"""The public site's index from its state, without a database: the 90-day bars by local day across a DST
change, days before a component's data, the uptime percentage, a row without a bar."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from projections.public_site_render import CoreInputs, Scope, index_view, notice_view, rows_of
from projections.public_site_state import SiteComponent, SiteNotice, SitePage, SiteUpdate
from projections.public_site_view import ComponentView

C, D = "01C0000000000000000000000C", "01D0000000000000000000000D"
CREATED = datetime(2026, 3, 1, 12, tzinfo=UTC)
INSTANT = datetime(2026, 3, 30, 10, tzinfo=UTC)
"""Paris moved to summer time on 29 March 2026: that local day is 23 hours long."""


def page() -> SitePage:
    return SitePage(
        id="01P00000000000000000000000",
        name="Acme",
        slug="acme",
        description=None,
        public_url=None,
        created_at=CREATED,
        updated_at=INSTANT,
        time_zone="Europe/Paris",
        items=[
            {"component": {"component_id": C, "hidden": False, "display_uptime": True}},
            {"component": {"component_id": D, "hidden": False, "display_uptime": False}},
        ],
    )


def incident(start: datetime, end: datetime) -> SiteNotice:
    return SiteNotice(
        id="01I00000000000000000000000",
        kind="incident",
        status_page_id="01P00000000000000000000000",
        name="Login failing",
        status="resolved",
        created_at=start,
        updated_at=end,
        updates=[
            SiteUpdate("U1", start, "down", "investigating", [(C, "partial_outage")], True),
            SiteUpdate("U2", end, "fixed", "resolved", [(C, "operational")], False),
        ],
        statuses={C: "operational"},
    )


def view(notices: list[SiteNotice]) -> tuple[dict[date, str], str | None, ComponentView]:
    scope = Scope(page(), None, None)
    components = {cid: SiteComponent(cid, name, None, CREATED) for cid, name in ((C, "API"), (D, "Web"))}
    index = index_view(CoreInputs(scope, rows_of(scope, components), notices, components))
    api, web = index.components
    assert api.days is not None
    return {cell.day: cell.status for cell in api.days}, api.uptime_percent, web


def test_bar_cells_are_local_days_and_the_uptime_counts_the_outage() -> None:
    # 23:30 local on 28 March to 00:30 local on 29 March: the outage shows on both days.
    cells, percent, web = view(
        [incident(datetime(2026, 3, 28, 22, 30, tzinfo=UTC), datetime(2026, 3, 28, 23, 30, tzinfo=UTC))]
    )

    assert list(cells)[-1] == date(2026, 3, 30) and len(cells) == 90
    assert cells[date(2026, 3, 27)] == "operational"
    assert cells[date(2026, 3, 28)] == "partial_outage"
    assert cells[date(2026, 3, 29)] == "partial_outage"
    assert cells[date(2026, 3, 30)] == "operational"
    assert cells[date(2026, 2, 28)] == "no_data"  # before the component existed
    assert cells[date(2026, 3, 1)] == "operational"  # created at noon UTC that day
    covered = INSTANT - CREATED
    expected = (covered - timedelta(hours=1)) / covered * 100
    assert percent is not None and abs(float(percent) - expected) < 0.0001 and float(percent) <= expected
    assert web.days is None  # display_uptime off: no bar


def test_an_outage_after_midnight_in_summer_time_falls_on_its_local_day() -> None:
    # 22:30 UTC on 29 March is 00:30 on the 30th in Paris (UTC+2 since that morning).
    cells, _, _ = view([incident(datetime(2026, 3, 29, 22, 30, tzinfo=UTC), datetime(2026, 3, 29, 23, 0, tzinfo=UTC))])
    assert cells[date(2026, 3, 29)] == "operational"
    assert cells[date(2026, 3, 30)] == "partial_outage"


def test_a_windows_page_says_it_began_when_it_went_in_progress() -> None:
    """Announced a day ahead, in progress for 30 minutes: it began at its start, and lasted 30 minutes."""
    announced, started, done = CREATED, CREATED + timedelta(days=1), CREATED + timedelta(days=1, minutes=30)
    window = SiteNotice(
        id="01M00000000000000000000000",
        kind="maintenance",
        status_page_id="01P00000000000000000000000",
        name="DB upgrade",
        status="maintenance_complete",
        created_at=announced,
        updated_at=done,
        updates=[
            SiteUpdate("U1", announced, "planned", "maintenance_scheduled", [], True),
            SiteUpdate("U2", started, "started", "maintenance_in_progress", [(C, "under_maintenance")], True),
            SiteUpdate("U3", done, "done", "maintenance_complete", [(C, "operational")], True),
        ],
        start_at=started,
        end_at=started + timedelta(hours=1),
        statuses={C: "operational"},
    )
    components = {C: SiteComponent(C, "API", None, CREATED)}
    shown = notice_view(Scope(page(), None, None), window, components, {C})
    assert (shown.started_at, shown.ended_at, shown.duration) == (started, done, "30 min")
