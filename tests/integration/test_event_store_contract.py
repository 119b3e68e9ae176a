"""The event store contract: every implementation (Postgres and in-memory) passes the same tests, so
handler tests on the in-memory store say something true about production."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest

from domain.base import SYSTEM, ConcurrencyConflict, IdempotencyKey, NotFound, load, save
from infra.event_store import event_hash
from tests.support.builders import OPERATOR, T0, context_at
from tests.support.tally import Tally, new_tally


async def test_an_appended_aggregate_loads_back_with_the_same_state_and_audit_columns(store: Any) -> None:
    tally = new_tally("deploys")
    tally.mark("first", at=T0, by=OPERATOR)
    pending = list(tally.collect_events())

    result = await store.append(pending, stream_type="tally", expected_version=0,
                                context=context_at(0, request_id="req-1"))

    assert result.stream_id == tally.id and not result.replayed
    assert len(result.positions) == 2 and result.positions[0] < result.positions[1]
    assert await store.load(tally.id) == pending
    loaded = await load(store, Tally, tally.id)
    assert (loaded.name, loaded.marks, loaded.version) == ("deploys", ["first"], 2)

    records = await store.read_stream_records(tally.id)
    assert [(r.position, r.version, r.stream_type, r.topic) for r in records] == [
        (result.positions[0], 1, "tally", "test.Tally.Created"),
        (result.positions[1], 2, "tally", "test.Tally.Marked"),
    ]
    assert all(r.recorded_at == T0 and r.request_id == "req-1" for r in records)
    assert all(r.actor == {"type": "api_key", "id": "01KEY", "name": "ops bot"} for r in records)
    assert [r.decode() for r in records] == pending


async def test_an_unknown_stream_loads_empty_and_is_not_found(store: Any) -> None:
    missing = uuid4()
    assert await store.load(missing) == []
    with pytest.raises(NotFound):
        await load(store, Tally, missing)


async def test_successive_appends_continue_the_versions(store: Any) -> None:
    tally = new_tally()
    await save(store, tally, context_at(0))
    for minute in range(1, 4):
        current = await load(store, Tally, tally.id)
        current.mark(f"m{minute}", at=T0 + timedelta(minutes=minute), by=OPERATOR)
        await save(store, current, context_at(minute))

    records = await store.read_stream_records(tally.id)
    assert [r.version for r in records] == [1, 2, 3, 4]
    assert [r.position for r in records] == sorted(r.position for r in records)
    assert (await load(store, Tally, tally.id)).marks == ["m1", "m2", "m3"]


async def test_an_append_at_a_stale_version_conflicts_and_writes_nothing(store: Any) -> None:
    tally = new_tally()
    await save(store, tally, context_at(0))
    first, second = await load(store, Tally, tally.id), await load(store, Tally, tally.id)
    first.mark("winner", at=T0, by=OPERATOR)
    await save(store, first, context_at(1))

    second.mark("loser", at=T0, by=OPERATOR)
    with pytest.raises(ConcurrencyConflict) as raised:
        await save(store, second, context_at(2))

    assert raised.value.stream_id == tally.id and raised.value.expected_version == 1
    assert (await load(store, Tally, tally.id)).marks == ["winner"]
    assert await store.max_position() == 2


async def test_a_conflicting_batch_writes_none_of_its_events(store: Any) -> None:
    tally = new_tally()
    await save(store, tally, context_at(0))
    stale = await load(store, Tally, tally.id)
    fresh = await load(store, Tally, tally.id)
    fresh.mark("kept", at=T0, by=OPERATOR)
    await save(store, fresh, context_at(1))

    for label in ("a", "b", "c"):
        stale.mark(label, at=T0, by=OPERATOR)
    with pytest.raises(ConcurrencyConflict):
        await save(store, stale, context_at(2))

    assert [r.version for r in await store.read_stream_records(tally.id)] == [1, 2]
    assert len(await store.read_all()) == 2


async def test_a_new_stream_cannot_be_created_twice(store: Any) -> None:
    tally = new_tally()
    await save(store, tally, context_at(0))
    with pytest.raises(ConcurrencyConflict):
        await save(store, new_tally("again", stream_id=tally.id), context_at(1))
    assert (await load(store, Tally, tally.id)).name == "tally"


async def test_a_used_idempotency_key_replays_the_first_stream_and_appends_nothing(store: Any) -> None:
    key = IdempotencyKey(kind="incident", status_page_id="01PAGE", key="create-1")
    first = new_tally("first")
    created = await save(store, first, context_at(0), idempotency=key)
    position = await store.max_position()

    repeat = await save(store, new_tally("second"), context_at(1), idempotency=key)

    assert repeat.replayed and repeat.stream_id == first.id and repeat.positions == ()
    assert not created.replayed
    assert await store.max_position() == position
    assert await store.find_idempotent(key) == first.id
    # Keys are scoped per status page and kind: the same key elsewhere creates a new stream.
    other_page = IdempotencyKey(kind="incident", status_page_id="01OTHER", key="create-1")
    assert await store.find_idempotent(other_page) is None
    elsewhere = await save(store, new_tally("third"), context_at(2), idempotency=other_page)
    assert not elsewhere.replayed and await store.max_position() == position + 1


async def test_read_all_returns_the_log_in_position_order_with_filters(store: Any) -> None:
    a, b = new_tally("a"), new_tally("b")
    await save(store, a, context_at(0))
    await save(store, b, context_at(1))
    for minute, tally_id in ((2, a.id), (3, b.id), (4, a.id)):
        current = await load(store, Tally, tally_id)
        current.mark(str(minute), at=T0 + timedelta(minutes=minute), by=SYSTEM)
        await save(store, current, context_at(minute, actor=SYSTEM))

    everything = await store.read_all()
    positions = [r.position for r in everything]
    assert len(everything) == 5 and positions == sorted(positions) and len(set(positions)) == 5
    assert [r.recorded_at for r in everything] == [T0 + timedelta(minutes=m) for m in range(5)]
    assert everything[-1].actor == {"type": "system"}
    assert await store.max_position() == positions[-1]

    assert await store.read_all(after=positions[1]) == everything[2:]
    assert await store.read_all(after=positions[1], limit=2) == everything[2:4]
    assert await store.read_all(after=positions[-1]) == []
    assert [r.version for r in await store.read_all(stream_id=a.id)] == [1, 2, 3]
    assert await store.read_all(stream_id=a.id, after=positions[0], limit=1) == [everything[2]]
    window = await store.read_all(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3))
    assert window == everything[1:3]  # since inclusive, until exclusive


async def test_load_stops_at_a_version_or_an_instant(store: Any) -> None:
    tally = new_tally()
    await save(store, tally, context_at(0))
    for minute in (10, 20):
        current = await load(store, Tally, tally.id)
        current.mark(f"at {minute}", at=T0 + timedelta(minutes=minute), by=OPERATOR)
        await save(store, current, context_at(minute))

    assert len(await store.load(tally.id, up_to_version=2)) == 2
    assert len(await store.load(tally.id, up_to_version=5)) == 3
    as_of_15 = await load(store, Tally, tally.id, as_of=T0 + timedelta(minutes=15))
    assert as_of_15.marks == ["at 10"]
    assert (await load(store, Tally, tally.id, as_of=T0 + timedelta(minutes=20))).marks == ["at 10", "at 20"]
    assert await store.load(tally.id, as_of=T0 - timedelta(seconds=1)) == []


async def test_every_event_carries_a_hash_chained_over_the_previous_one(store: Any) -> None:
    a = new_tally("a")
    a.mark("x", at=T0, by=OPERATOR)
    await save(store, a, context_at(0, request_id="r1"))
    await save(store, new_tally("b — ü"), context_at(1))

    previous: bytes | None = None
    for record in await store.read_all():
        assert len(record.hash) == 32
        assert record.hash == event_hash(previous, record)
        previous = record.hash



async def test_recorded_at_never_goes_backwards_in_log_order(store: Any) -> None:
    """Two writers read the clock before the append lock; the later commit must not look older, or
    "the log as of T" would not be a prefix of the log (audit time travel)."""
    await store.append(new_tally().collect_events(), stream_type="tally", expected_version=0, context=context_at(1))
    await store.append(new_tally().collect_events(), stream_type="tally", expected_version=0, context=context_at(0))
    first, second = await store.read_all()
    assert first.recorded_at == second.recorded_at == T0 + timedelta(minutes=1)
