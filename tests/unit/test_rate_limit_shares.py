"""How API processes split a key's limit (docs/architecture.md#rate-limits): the share computation, and the
buckets it drives, simulated on a fake clock with a heartbeat every second, against one bucket holding the
whole limit."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from api.rate_limit import TokenBuckets
from api.rate_share import IDLE_FLOOR, cautious_shares, shares

RATE, BURST = 20.0, 1200  # the default 1,200 a minute
SECONDS, PER_SECOND = 180, 48  # a client asking 2.4 times its limit for three minutes


@pytest.mark.parametrize(
    "demands",
    [
        [{"k": 5.0}, {"k": 5.0}],
        [{"k": 40.0}, {}, {}, {}],
        [{"k": 1.0, "j": 3.0}, {"k": 2.0}, {"j": 0.5}],
        [{}, {}, {}],
    ],
)
def test_the_shares_of_every_key_add_up_to_the_whole_limit(demands: list[dict[str, float]]) -> None:
    split = [shares(demands, mine) for mine in range(len(demands))]
    for key in {"k", "j", "never reported"}:
        assert sum(own.get(key, even) for own, even in split) == pytest.approx(1.0), key


def test_a_key_nobody_has_reported_is_split_evenly() -> None:
    own, even = shares([{"k": 1.0}, {}, {}, {}], 1)
    assert "unknown" not in own and even == 0.25


def test_the_process_a_keys_traffic_reaches_gets_nearly_all_of_its_limit_and_the_others_a_floor() -> None:
    demands: list[dict[str, float]] = [{}, {"k": 40.0}, {}, {}]
    assert shares(demands, 1)[0]["k"] == pytest.approx(1 - IDLE_FLOOR + IDLE_FLOOR / 4)
    assert shares(demands, 0)[0]["k"] == pytest.approx(IDLE_FLOOR / 4)


def test_a_key_far_below_its_limit_is_not_starved_where_its_traffic_has_not_been_yet() -> None:
    """A client made a few calls on one connection (process 0), then opens others that reach process 1: at
    2 requests/s of a 20/s limit, nine tenths are unused, and process 1 gets half of them, not the floor."""
    demands: list[dict[str, float]] = [{"k": 2.0}, {}]
    assert shares(demands, 1, rate=RATE)[0]["k"] == pytest.approx(0.9 / 2)
    assert shares(demands, 0, rate=RATE)[0]["k"] == pytest.approx(1 - IDLE_FLOOR + IDLE_FLOOR / 2)
    # At or over its limit nothing is unused: the floor again, and the shares add up to one.
    saturated: list[dict[str, float]] = [{"k": RATE}, {}]
    assert shares(saturated, 1, rate=RATE)[0]["k"] == pytest.approx(IDLE_FLOOR / 2)
    assert sum(shares(saturated, mine, rate=RATE)[0]["k"] for mine in (0, 1)) == pytest.approx(1.0)


def test_a_bucket_keeps_how_full_it_is_when_its_share_changes() -> None:
    buckets = TokenBuckets(rate=1.0, burst=100)
    buckets.apply_shares({}, 0.5, now=0.0)
    for _ in range(25):
        assert buckets.take("k", now=0.0) == 0
    assert buckets.remaining("k") == 25  # half of a 50-token share

    buckets.apply_shares({"k": 1.0}, 0.5, now=0.0)
    assert buckets.remaining("k") == 50  # still half full, of the whole limit

    buckets.apply_shares({}, 1.0, now=0.0)  # the database is gone: the whole limit, here
    assert buckets.share("k") == 1.0


def test_a_limit_smaller_than_the_number_of_processes_still_lets_a_request_through() -> None:
    buckets = TokenBuckets(rate=0.01, burst=1)
    buckets.apply_shares({}, 0.25, now=0.0)
    assert buckets.take("k", now=0.0) == 0
    assert buckets.take("k", now=0.0) > 0


def test_demand_counts_rejected_requests_and_fades_when_the_traffic_stops() -> None:
    buckets = TokenBuckets(rate=1.0, burst=2)
    for _ in range(10):
        buckets.take("k", now=0.0)  # 2 let through, 8 refused: all 10 are demand
    assert buckets.demand(1.0) == {"k": pytest.approx(5.0)}  # smoothed: half of this second's 10/s
    faded = [buckets.demand(1.0).get("k", 0.0) for _ in range(12)]
    assert faded[0] == pytest.approx(2.5) and faded[-1] == 0.0


def simulate(processes: int, route: Callable[[int], int]) -> int:
    """Requests let through when `route(n)` picks the process of the n-th request. Each process beats once a
    second, each at its own moment (as real ones do), from the others' latest reports."""
    buckets = [TokenBuckets(rate=RATE, burst=BURST) for _ in range(processes)]
    for own in buckets:  # all of them running for a while already, the key idle
        own.apply_shares({}, 1 / processes, now=0.0)
    reported: list[dict[str, float]] = [{} for _ in range(processes)]
    accepted = 0
    for n in range(SECONDS * PER_SECOND):
        now = n / PER_SECOND
        if n % (PER_SECOND // processes) == 0:
            mine = n // (PER_SECOND // processes) % processes
            fresh = buckets[mine].demand(1.0)
            others = reported[:mine] + reported[mine + 1 :]
            ours = cautious_shares(fresh, reported[mine], others, buckets[mine].shares(), rate=RATE)
            buckets[mine].apply_shares(*ours, now=now)
            reported[mine] = fresh
        accepted += buckets[route(n)].take("key", now=now) == 0
    return accepted


@pytest.mark.parametrize(
    ("how", "route"),
    [
        ("round robin over four", lambda n: n % 4),
        ("all to one of four", lambda n: 2),
        ("one of four, then another", lambda n: 0 if n < SECONDS * PER_SECOND // 2 else 3),
        ("three quarters to one", lambda n: 0 if n % 4 else 1 + n % 3),
        ("at random", lambda n: random.Random(n).randrange(4)),
    ],
)
def test_four_processes_let_through_what_one_does_within_ten_percent(how: str, route: Callable[[int], int]) -> None:
    alone = simulate(1, lambda n: 0)
    assert alone == pytest.approx(BURST + RATE * SECONDS, abs=2)
    shared = simulate(4, route)
    assert abs(shared - alone) <= 0.1 * alone, (how, shared, alone)


def test_processes_whose_traffic_grows_together_do_not_each_take_the_whole_limit() -> None:
    """Each process beats at its own moment, so when a key's traffic reaches all of them at once each first
    sees only its own demand: taken at face value, each would make itself the busy one."""
    grown: list[dict[str, float]] = [{"k": 100.0}, {"k": 100.0}, {"k": 100.0}]
    nothing: list[dict[str, float]] = [{}, {}, {}]
    for mine in range(3):
        others = nothing[:mine] + nothing[mine + 1 :]
        assert shares([grown[mine], *others], 0)[0]["k"] > 0.9  # what each would take
        own, even = cautious_shares(grown[mine], nothing[mine], others, ({}, 1 / 3))
        assert own.get("k", even) == pytest.approx(1 / 3)  # what each takes: no more than it held
