"""`beacon subscribers …` as an operator runs them, the secret key a database-backed `beacon` needs, and
erasure end to end: after it the audit chain and the replay check still pass and the address is nowhere —
not in the log, any table, a `pg_dump`, the audit export or the mail folder."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from domain.base import CommandContext
from domain.status_page import create_status_page
from domain.subscriber import unsubscribe_subscriber
from infra.api_keys import ADMIN, create_key
from infra.clock import SystemClock
from infra.db import create_pool
from infra.embedded import embedded_binary
from infra.event_store import PostgresEventStore
from infra.ids import new_ulid, ulid_to_uuid
from infra.settings import Settings
from tests.support.builders import ALICE
from tests.support.live_server import BEACON, TEST_SECRET_KEY, operator_env

ADDRESS = "ann.erasable@example.com"


def beacon(database_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = operator_env(database_url, tmp_path)
    return subprocess.run([BEACON, *args], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)


def test_a_database_without_a_secret_key_is_a_clear_startup_error(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    done = subprocess.run([BEACON, "migrate"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("beacon: BEACON_SECRET_KEY is required when DATABASE_URL is set")
    assert "Traceback" not in done.stderr


async def make_page(database_url: str, slug: str = "acme") -> str:
    pool = await create_pool(database_url, Settings(database_url=database_url, secret_key=TEST_SECRET_KEY))
    try:
        context = CommandContext(now=SystemClock().now(), actor=ALICE)
        page_id = new_ulid(context.now)
        await create_status_page(
            PostgresEventStore(pool), page_id=ulid_to_uuid(page_id), name=slug.title(), slug=slug, context=context
        )
        return page_id
    finally:
        await pool.close()


async def test_import_is_idempotent_never_revives_an_unsubscribed_address_and_reports_what_it_skipped(
    database_url: str, tmp_path: Path
) -> None:
    await make_page(database_url)
    csv = tmp_path / "opted-in.csv"
    csv.write_text("name,email\nAnn,Ann@Example.com\nBob,bob@example.com\nAnn again,ann@example.com\nBad,nope\n,\n")

    first = beacon(database_url, tmp_path, "subscribers", "import", str(csv), "--page", "acme")
    assert first.returncode == 1, first.stderr  # one invalid row
    assert first.stdout.strip() == "imported 2, skipped 1 (already on the page, in any state), invalid 1"
    assert "line 5: email must be a single email address" in first.stderr
    assert "importing [" in first.stderr  # the progress bar, on stderr

    listed = beacon(database_url, tmp_path, "subscribers", "list", "--page", "acme")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["id", "channel", "state", "scope", "contact", "created_at"]
    assert sorted(row.split()[4] for row in rows) == ["ann@example.com", "bob@example.com"]
    assert {tuple(row.split()[1:4]) for row in rows} == {("email", "confirmed", "page")}

    # Bob unsubscribes; a second import leaves him unsubscribed and creates nobody.
    bob = next(row.split()[0] for row in rows if "bob@" in row)
    pool = await create_pool(database_url, Settings(database_url=database_url, secret_key=TEST_SECRET_KEY))
    try:
        context = CommandContext(now=SystemClock().now(), actor=ALICE)
        await unsubscribe_subscriber(PostgresEventStore(pool), subscriber_id=ulid_to_uuid(bob), context=context)
    finally:
        await pool.close()
    again = beacon(database_url, tmp_path, "subscribers", "import", str(csv), "--page", "acme")
    assert again.stdout.strip() == "imported 0, skipped 3 (already on the page, in any state), invalid 1"
    states = beacon(database_url, tmp_path, "subscribers", "list", "--page", "acme", "--state", "unsubscribed")
    assert [row.split()[0] for row in states.stdout.splitlines()[1:]] == [bob]

    erased = beacon(database_url, tmp_path, "subscribers", "erase", bob)
    assert (erased.returncode, erased.stdout.strip()) == (0, f"erased {bob}")
    after = beacon(database_url, tmp_path, "subscribers", "list", "--page", "acme", "--state", "erased")
    assert "(erased)" in after.stdout and "bob@" not in after.stdout

    unknown = beacon(database_url, tmp_path, "subscribers", "list", "--page", "nowhere")
    assert unknown.returncode == 2 and "no status page 'nowhere'" in unknown.stderr
    missing = beacon(database_url, tmp_path, "subscribers", "erase", "01KFZ0000000000000000NONE0")
    assert missing.returncode == 2


async def test_after_erasure_the_address_is_nowhere_and_the_audit_still_passes(
    database_url: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    settings = Settings(
        database_url=database_url, projection_poll_interval=0.05, secret_key=TEST_SECRET_KEY, data_dir=data_dir
    )
    conn = await asyncpg.connect(database_url)
    try:
        _, token = await create_key(conn, name="admin", scopes=(ADMIN,), now=SystemClock().now())
    finally:
        await conn.close()
    headers = {"Authorization": f"Bearer {token}"}
    app: Litestar = create_app(settings)
    async with AsyncTestClient(app=app) as client:
        page = await client.post("/v2/status_pages", json={"name": "Acme", "slug": "acme"}, headers=headers)
        page_id = page.json()["status_page"]["id"]
        made = await client.post(
            "/v2/status_page_subscribers",
            json={"status_page_id": page_id, "channel": "email", "email": ADDRESS, "confirmed": True},
            headers=headers,
        )
        subscriber_id = made.json()["status_page_subscriber"]["id"]
        stream = ulid_to_uuid(subscriber_id)
        # What delivery leaves behind (the dispatcher's own tables and files): an SMTP reply quoting the
        # recipient and the .eml written for it.
        mail = data_dir / "mail" / str(stream)
        mail.mkdir(parents=True)
        (mail / "message.eml").write_text(f"To: {ADDRESS}\n\nhello\n")
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "INSERT INTO beacon_notification_attempts (id, intent_id, subscriber_id, channel, attempt,"
                " attempted_at, outcome, smtp_reply) VALUES ($1, $2, $3, 'email', 1, now(), 'failed', $4)",
                uuid.uuid4(),
                uuid.uuid4(),
                stream,
                f"452 4.2.2 <{ADDRESS}> mailbox full",
            )
        finally:
            await conn.close()

        erased = await client.post(f"/v2/status_page_subscribers/{subscriber_id}/erase", headers=headers)
        assert erased.status_code == 200, erased.text

    assert not mail.exists()
    assert beacon(database_url, tmp_path, "audit", "verify").returncode == 0
    checked = beacon(database_url, tmp_path, "audit", "replay-check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    exported = beacon(database_url, tmp_path, "audit", "export")
    assert exported.returncode == 0 and "beacon.Subscriber.Erased" in exported.stdout

    # The embedded server's pg_dump (16): it dumps a 15 or 16 server alike, where the system's 15 refuses a 16 one
    # (the embedded default, when the tests run without DATABASE_URL) and a fresh machine may have none.
    pg_dump = str(embedded_binary("pg_dump"))
    dump = await asyncio.to_thread(
        subprocess.run, [pg_dump, "--no-owner", database_url], capture_output=True, text=True, timeout=120, check=True
    )
    for text in (dump.stdout, exported.stdout):
        assert ADDRESS not in text
        assert ADDRESS.encode().hex() not in text  # nor as bytea
    conn = await asyncpg.connect(database_url)
    try:  # the attempt itself stays (the deliveries list), without the reply that quoted the address
        replies = await conn.fetch(
            "SELECT smtp_reply FROM beacon_notification_attempts WHERE subscriber_id = $1", stream
        )
    finally:
        await conn.close()
    assert [row["smtp_reply"] for row in replies] == [None]
