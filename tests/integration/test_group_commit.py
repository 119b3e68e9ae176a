"""Group commit (ADR 0003): concurrent appends share one `beacon_append_many` call and one transaction,
yet each caller gets exactly the outcome a lone append would have had, and no caller is ever left
waiting, whatever the batch or the flusher runs into."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, cast

import asyncpg
import pytest

from domain.base import AppendResult, CommandContext, ConcurrencyConflict, IdempotencyKey, save
from infra.audit import verify_chain
from infra.event_store import MAX_BATCH, PostgresEventStore
from tests.support.builders import OPERATOR, T0, context_at
from tests.support.tally import Tally, new_tally


class SpyPool:
    """Stands in for the store's pool: records the size of every batch the store sends, and can hold
    a batch at a gate or fail it; reads and everything else go straight to the real pool."""

    def __init__(self, pool: asyncpg.Pool, *, gated: bool = False) -> None:
        self.pool = pool
        self.batches: list[int] = []
        self.sent = asyncio.Event()
        self.gate: asyncio.Event | None = asyncio.Event() if gated else None
        self.failure: BaseException | None = None
        self.answer: list[Any] | None = None

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        if "beacon_append_many" in query:
            self.batches.append(len(args[0]))
            self.sent.set()
            if self.gate is not None:
                await self.gate.wait()
            if self.failure is not None:
                raise self.failure
            if self.answer is not None:
                await self.pool.fetch(query, *args)  # the appends commit
                return self.answer
        return cast(list[asyncpg.Record], await self.pool.fetch(query, *args))

    def release(self) -> None:
        """Let the batch held at the gate, and every later one, through."""
        if self.gate is not None:
            self.gate.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pool, name)

    def store(self) -> PostgresEventStore:
        return PostgresEventStore(cast(asyncpg.Pool, self))


async def settled(*tasks: asyncio.Task[Any]) -> None:
    """Wait for every task to finish. A caller left waiting fails the test instead of hanging it; the
    tasks' states are then asserted directly (a timeout's own cancellation must not pass for theirs)."""
    _, pending = await asyncio.wait(tasks, timeout=10)
    for task in pending:
        task.cancel()
    assert not pending, "a caller was left waiting"


async def append_new(
    store: PostgresEventStore, tally: Tally, context: CommandContext | None = None, **kwargs: Any
) -> AppendResult:
    """Append a tally's pending events, expecting the version it had before them."""
    events = list(tally.collect_events())
    return await store.append(
        events,
        stream_type="tally",
        expected_version=events[0].originator_version - 1,
        context=context or context_at(0),
        **kwargs,
    )


async def appends_per_transaction(pool: asyncpg.Pool) -> list[int]:
    """How many appends (distinct streams' first events) each committed transaction holds, by xmin."""
    rows = await pool.fetch(
        "SELECT xmin::text AS xid, count(*) AS n FROM beacon_events WHERE originator_version = 1 GROUP BY xmin::text"
    )
    return sorted(row["n"] for row in rows)


async def test_concurrent_appends_share_a_transaction_and_keep_positions_and_chain_intact(
    pool: asyncpg.Pool,
) -> None:
    store = PostgresEventStore(pool)
    tallies = [new_tally(f"t{n}") for n in range(40)]
    for tally in tallies:
        tally.mark("opened", at=T0, by=OPERATOR)  # two events per append

    results = await asyncio.gather(*(append_new(store, tally) for tally in tallies))

    positions = [p for result in results for p in result.positions]
    assert all(len(result.positions) == 2 for result in results)
    assert sorted(positions) == list(range(1, 81))  # contiguous, nothing lost or doubled
    log = await store.read_all(limit=1000)
    assert [(r.position, r.stream_id) for r in log] == sorted(
        (p, result.stream_id) for result in results for p in result.positions
    )
    report = await verify_chain(pool)
    assert report.ok and report.checked == 80
    transactions = await appends_per_transaction(pool)
    assert len(transactions) < len(tallies)  # coalesced: some commit carried several callers' appends


async def test_a_batch_holds_at_most_max_batch_appends(pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pool)

    results = await asyncio.gather(*(append_new(store, new_tally(f"t{n}")) for n in range(MAX_BATCH + 40)))

    assert sorted(r.positions[0] for r in results) == list(range(1, MAX_BATCH + 41))
    transactions = await appends_per_transaction(pool)
    assert len(transactions) >= 2 and max(transactions) <= MAX_BATCH
    assert (await verify_chain(pool)).ok


async def test_each_caller_in_a_mixed_batch_gets_its_own_outcome(pool: asyncpg.Pool) -> None:
    spy = SpyPool(pool)
    store = spy.store()
    moved_on = new_tally("moved on")
    await save(store, moved_on, context_at(0))
    used_key = IdempotencyKey(kind="incident", status_page_id="01PAGE", key="used")
    first_use = await save(store, new_tally("first use"), context_at(0), idempotency=used_key)
    fresh_key = IdempotencyKey(kind="incident", status_page_id="01PAGE", key="fresh")
    two_steps = new_tally("two steps")
    created = list(two_steps.collect_events())
    two_steps.mark("second", at=T0, by=OPERATOR)
    marked = list(two_steps.collect_events())
    stale = new_tally("stale", stream_id=moved_on.id)  # a create on a stream that already exists
    moved_on.mark("current", at=T0, by=OPERATOR)
    plain, same_key_a, same_key_b = new_tally("plain"), new_tally("same key a"), new_tally("same key b")
    spy.batches.clear()

    outcomes = await asyncio.gather(
        append_new(store, stale),
        append_new(store, moved_on),
        append_new(store, new_tally("replay"), idempotency=used_key),
        append_new(store, same_key_a, idempotency=fresh_key),
        append_new(store, same_key_b, idempotency=fresh_key),
        store.append(created, stream_type="tally", expected_version=0, context=context_at(1)),
        store.append(marked, stream_type="tally", expected_version=1, context=context_at(1)),
        append_new(store, plain),
        return_exceptions=True,
    )

    assert spy.batches == [8]  # one call: every outcome below came out of the same batch
    conflict, current, replay, key_a, key_b, step_one, step_two, fine = outcomes
    assert isinstance(conflict, ConcurrencyConflict)
    assert (conflict.stream_id, conflict.expected_version) == (moved_on.id, 0)
    assert isinstance(current, AppendResult) and current.stream_id == moved_on.id and len(current.positions) == 1
    assert replay == AppendResult(stream_id=first_use.stream_id, replayed=True)
    assert isinstance(key_a, AppendResult) and key_a.stream_id == same_key_a.id
    assert key_a.positions and not key_a.replayed
    assert key_b == AppendResult(stream_id=same_key_a.id, replayed=True)  # the first of the batch won
    assert isinstance(step_one, AppendResult) and isinstance(step_two, AppendResult)
    assert isinstance(fine, AppendResult) and fine.stream_id == plain.id and fine.positions

    assert [r.version for r in await store.read_stream_records(moved_on.id)] == [1, 2]
    assert [r.version for r in await store.read_stream_records(two_steps.id)] == [1, 2]
    assert await store.read_stream_records(same_key_b.id) == []
    assert await store.find_idempotent(fresh_key) == same_key_a.id
    assert (await verify_chain(pool)).ok


async def test_recorded_at_never_goes_backwards_inside_a_batch(pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pool)
    later, earlier = new_tally("later"), new_tally("earlier")

    await asyncio.gather(append_new(store, later, context_at(5)), append_new(store, earlier, context_at(2)))

    log = await store.read_all()
    assert [(r.stream_id, r.recorded_at) for r in log] == [
        (later.id, T0 + timedelta(minutes=5)),
        (earlier.id, T0 + timedelta(minutes=5)),  # clamped, so "the log as of T" stays a prefix
    ]


async def test_a_batch_that_fails_on_one_append_is_resent_one_by_one(pool: asyncpg.Pool) -> None:
    spy = SpyPool(pool)
    store = spy.store()
    good = [new_tally(f"good {n}") for n in range(5)]
    bad = new_tally("bad")
    # Postgres text cannot hold NUL, so this append's request id fails the whole call server-side.
    poison = CommandContext(now=T0, actor=OPERATOR, request_id="req\x00")

    outcomes = await asyncio.gather(
        *(append_new(store, tally) for tally in good[:2]),
        append_new(store, bad, poison),
        *(append_new(store, tally) for tally in good[2:]),
        return_exceptions=True,
    )

    assert spy.batches == [6, 1, 1, 1, 1, 1, 1]  # the batch, then each append alone
    failed = outcomes[2]
    assert isinstance(failed, asyncpg.PostgresError) and failed.sqlstate == "22021"
    landed = [outcomes[n] for n in (0, 1, 3, 4, 5)]
    assert [cast(AppendResult, result).stream_id for result in landed] == [tally.id for tally in good]
    assert {r.stream_id for r in await store.read_all()} == {tally.id for tally in good}
    assert (await verify_chain(pool)).ok


@pytest.mark.parametrize(
    "failure",
    [
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
        RuntimeError("a bug in the flusher"),
    ],
    ids=["connection lost", "statement timeout", "not a database error"],
)
async def test_a_failure_not_caused_by_one_append_goes_to_every_caller_of_the_batch(
    pool: asyncpg.Pool, failure: Exception
) -> None:
    spy = SpyPool(pool)
    store = spy.store()
    spy.failure = failure

    tasks = [asyncio.create_task(append_new(store, new_tally(f"t{n}"))) for n in range(4)]
    await settled(*tasks)
    outcomes = [task.exception() for task in tasks]

    assert spy.batches == [4]  # not re-sent one by one: that would only repeat the failure
    assert all(outcome is failure for outcome in outcomes)
    spy.failure = None
    assert (await append_new(store, new_tally("after"))).positions  # the store still appends


async def test_a_fault_in_the_flusher_itself_still_answers_every_caller_of_the_batch(pool: asyncpg.Pool) -> None:
    spy = SpyPool(pool)
    store = spy.store()
    spy.answer = [{"not": "an outcome row"}]  # reading the answer fails after the call succeeded

    tasks = [asyncio.create_task(append_new(store, new_tally(f"t{n}"))) for n in range(3)]
    await settled(*tasks)

    assert all(isinstance(task.exception(), KeyError) for task in tasks)
    spy.answer = None
    assert (await append_new(store, new_tally("after"))).positions  # the flusher goes on with the next batch


async def test_appends_queued_during_a_flush_go_in_the_next_batch_and_a_cancelled_caller_is_skipped(
    pool: asyncpg.Pool,
) -> None:
    spy = SpyPool(pool, gated=True)
    store = spy.store()
    first = asyncio.create_task(append_new(store, new_tally("first")))
    await spy.sent.wait()  # the first batch is in flight, held at the gate
    queued = [new_tally(f"queued {n}") for n in range(3)]
    waiting = [asyncio.create_task(append_new(store, tally)) for tally in queued]
    await asyncio.sleep(0)  # let them queue
    waiting[1].cancel()
    spy.release()

    await settled(first, *waiting)
    assert first.result().positions
    assert waiting[0].result().positions and waiting[2].result().positions
    assert waiting[1].cancelled()
    assert spy.batches == [1, 2]  # a lone append went at once; the others waited for it and went together
    landed = {r.stream_id for r in await store.read_all()}
    assert landed == {first.result().stream_id, queued[0].id, queued[2].id}  # the cancelled one was never sent


async def test_a_caller_cancelled_while_its_batch_is_in_flight_does_not_break_the_flusher(
    pool: asyncpg.Pool,
) -> None:
    spy = SpyPool(pool, gated=True)
    store = spy.store()
    cancelled, kept = new_tally("cancelled"), new_tally("kept")
    tasks = [asyncio.create_task(append_new(store, cancelled)), asyncio.create_task(append_new(store, kept))]
    await spy.sent.wait()
    tasks[0].cancel()
    spy.release()

    await settled(*tasks)
    assert tasks[0].cancelled()
    assert tasks[1].result().positions
    later = asyncio.create_task(append_new(store, new_tally("later")))
    await settled(later)
    assert later.result().positions
    # The batch was already on its way: its fate is the batch's, as with any unacknowledged write.
    assert [r.stream_id for r in await store.read_all()][:2] == [cancelled.id, kept.id]


async def test_callers_are_not_left_waiting_when_the_flusher_is_cancelled(pool: asyncpg.Pool) -> None:
    spy = SpyPool(pool, gated=True)
    store = spy.store()
    in_flight = asyncio.create_task(append_new(store, new_tally("in flight")))
    await spy.sent.wait()
    queued = asyncio.create_task(append_new(store, new_tally("queued")))
    await asyncio.sleep(0)
    (flusher,) = [task for task in asyncio.all_tasks() if task.get_name() == "beacon-append-flusher"]

    flusher.cancel()

    await settled(in_flight, queued)
    assert in_flight.cancelled() and queued.cancelled()
    spy.release()
    assert (await append_new(store, new_tally("after"))).positions  # a new flusher takes over


async def test_beacon_append_many_refuses_arrays_that_do_not_line_up(pool: asyncpg.Pool) -> None:
    tally = new_tally()
    stream_id, topic = tally.id, "test.Tally.Created"
    one = ([stream_id], ["tally"], [0])
    rest = ([T0], ['{"type": "system"}'], [None], [None], [None])
    for counts, topics, states in (
        ([2], [topic], [b"{}"]),  # counts promise more events than there are
        ([1], [topic, topic], [b"{}", b"{}"]),  # events no append claims
        ([0], [], []),  # an append with no event
        ([1], [topic], [b"{}", b"{}"]),  # topics and states disagree
    ):
        with pytest.raises(asyncpg.PostgresError) as raised:
            await pool.fetch(
                "SELECT * FROM beacon_append_many($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                *one,
                counts,
                topics,
                states,
                *rest,
            )
        assert raised.value.sqlstate == "22023", counts
    assert await PostgresEventStore(pool).read_all() == []
