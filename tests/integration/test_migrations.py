import asyncio

import asyncpg

from infra.migrate import is_migrated, migrate


async def test_migrations_are_applied_once_even_when_two_processes_start_together(database_url: str) -> None:
    first, second = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        results = await asyncio.gather(migrate(first), migrate(second))
        assert list(results) == [[], []]  # the template already holds every migration
        assert await is_migrated(first)
    finally:
        await first.close()
        await second.close()


async def test_the_event_log_refuses_update_delete_and_truncate(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        for statement in (
            "UPDATE beacon_events SET topic = 'x'",
            "DELETE FROM beacon_events",
            "TRUNCATE beacon_events",
        ):
            await conn.execute(
                "SELECT * FROM beacon_append(gen_random_uuid(), 't', 0, ARRAY['x'], ARRAY['{}'::bytea],"
                " now(), '{}'::jsonb, NULL, NULL, NULL)"
            )
            try:
                await conn.execute(statement)
            except asyncpg.PostgresError as error:
                assert error.sqlstate == "B0001", statement
            else:
                raise AssertionError(f"{statement} was allowed")
    finally:
        await conn.close()
