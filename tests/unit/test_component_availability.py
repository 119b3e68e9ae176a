"""Component availability (docs/architecture.md#availability). `availability_percent` is floored to 4
decimals, never rounded up, so downtime never disappears into a "100": each expected string in the first
test is worked out by hand and differs from what rounding would give. A component's data begins at the
earlier of its creation and its earliest impact on the page, found in one index probe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from projections.component_availability import (
    EARLIEST_IMPACT_SQL,
    TABLE,
    ComponentAvailability,
    availability_percent,
    data_available_since,
)
from projections.runner import ensure_tables

DAY = timedelta(days=1)
YEAR = timedelta(days=366)


@pytest.mark.parametrize(
    ("covered", "down", "expected"),
    [
        # 1 s down in a 366-day year: 1 − 1/31,622,400 = 99.99999683…% (rounding: "100").
        (YEAR, timedelta(seconds=1), "99.9999"),
        # 1 µs down in a year: still not 100.
        (YEAR, timedelta(microseconds=1), "99.9999"),
        # 6 of 7 hours up: 85.71428571…% (rounding: 85.7143).
        (7 * timedelta(hours=1), timedelta(hours=1), "85.7142"),
        # 2 of 3 minutes up: 66.66666…% (rounding: 66.6667).
        (timedelta(minutes=3), timedelta(minutes=1), "66.6666"),
        # 1 min down in a day: 1439 / 1440 = 99.93055…% (rounding: 99.9306).
        (DAY, timedelta(minutes=1), "99.9305"),
    ],
)
def test_availability_is_floored_to_four_decimals(covered: timedelta, down: timedelta, expected: str) -> None:
    assert availability_percent(covered, down) == expected


@pytest.mark.parametrize(
    ("covered", "down", "expected"),
    [
        (DAY, timedelta(), "100"),
        (DAY, DAY, "0"),
        (DAY, 3 * timedelta(hours=1), "87.5"),  # exact values keep no trailing zeros, as the SDK's "99.94"
        (timedelta(hours=100), timedelta(minutes=6), "99.9"),
        (YEAR, YEAR - timedelta(seconds=1), "0"),  # 1 s up in a year: 0.00000316…%
    ],
)
def test_exact_values_are_written_without_trailing_zeros(covered: timedelta, down: timedelta, expected: str) -> None:
    assert availability_percent(covered, down) == expected


def test_nothing_covered_is_unknown_not_a_percentage() -> None:
    assert availability_percent(timedelta(), timedelta()) is None


# Where the data begins: the earlier of creation and the earliest impact on the page, in one index probe.

T = datetime(2025, 1, 10, 9, 0, tzinfo=UTC)


async def _impacts(pool: asyncpg.Pool, rows: list[tuple[str, str, str, datetime]]) -> None:
    """Rows of the read model as the projection writes them: (page, component, status, start)."""
    async with pool.acquire() as conn:
        await ensure_tables(conn, [ComponentAvailability()])
        await conn.executemany(
            f"INSERT INTO {TABLE} (incident_id, seq, status_page_id, component_id, component_status, start_at,"
            " end_at) VALUES ($1, 0, $2, $3, $4, $5::timestamptz, $5::timestamptz + interval '1 hour')",
            [(f"incident-{n}", *row) for n, row in enumerate(rows)],
        )


async def test_data_begins_at_the_earlier_of_creation_and_the_earliest_impact_on_the_page(pool: asyncpg.Pool) -> None:
    await _impacts(
        pool,
        [
            ("page", "api", "partial_outage", T - timedelta(days=30)),
            ("page", "api", "degraded_performance", T - timedelta(days=200)),  # any status counts
            ("page", "db", "full_outage", T + timedelta(days=3)),  # after its creation
            ("other", "db", "full_outage", T - timedelta(days=900)),  # another page's history
        ],
    )
    assert await data_available_since(pool, "page", "api", T) == T - timedelta(days=200)
    assert await data_available_since(pool, "page", "db", T) == T
    assert await data_available_since(pool, "other", "db", T) == T - timedelta(days=900)
    assert await data_available_since(pool, "other", "api", T) == T  # no impacts there
    assert await data_available_since(pool, "page", "web", T) == T


async def test_where_data_begins_is_read_from_the_index_not_by_filtering_rows(pool: asyncpg.Pool) -> None:
    # A component on two pages: finding its earliest impact on the page without any must not walk
    # through its impacts on the other (as an index on (component_id, start_at) alone made it).
    await _impacts(pool, [("other", "api", "partial_outage", T - timedelta(minutes=n)) for n in range(200)])
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")  # a tiny table: make the planner show its index use
        plan = "\n".join(row[0] for row in await conn.fetch(f"EXPLAIN {EARLIEST_IMPACT_SQL}", "page", "api"))
    assert f"Index Only Scan using {TABLE}_page_component" in plan, plan
    assert "status_page_id = 'page'" in plan and "component_id = 'api'" in plan and "Filter" not in plan, plan
