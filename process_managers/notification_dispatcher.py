"""The notification dispatcher: a process manager that delivers the outbox's intents
(docs/architecture.md#notification-delivery).

The outbox projection records one intent per (update, subscriber) in the transaction of its checkpoint; this
sends them. Every worker runs one, with no lock between them: each claims due intents with
`FOR UPDATE SKIP LOCKED` and reserves them for `claim_seconds` (`attempts + 1`, `next_attempt_at` pushed past
the send), so two workers never send the same attempt at once, and an intent whose worker died mid-send is
simply due again when its reservation runs out — delivery is at least once, with the intent id as the stable
`webhook-id` / `Message-ID` a receiver drops repeats by.

Rules, each at claim time or on the result:
- Order: an intent is claimed only when no earlier intent of the same (subscriber, notice) is still pending,
  so nobody reads "resolved" before "investigating" — a failing earlier update holds the later ones back.
- Eligibility: an update goes only to a subscriber still confirmed (email) or active (webhook), a confirmation
  only to one still pending, a "webhook disabled" notice only to a webhook still disabled; otherwise the
  intent is cancelled, and an ended subscriber's other pending updates are cancelled with it.
- Retries on `RetrySchedule` (jittered, `Retry-After` honoured up to the next step); a webhook that answers
  `410 Gone` or fails every attempt is disabled (`Subscriber.Disabled`), an address refused at `RCPT TO` with
  a `5.1.x` code is bounced (`Subscriber.Bounced`).
- A failing mail transport (connection, TLS, authentication, `MAIL FROM`, `DATA`) pauses the email channel:
  its intents wait with their attempt given back, nobody is bounced or exhausted, and the pause backs off on
  the same schedule; the first delivery after it ends the pause.

Concurrency is bounded per channel (`concurrency` deliveries in flight each), and a delivery holds only its
own slot: a receiver that times out delays no other receiver. Results are written in batches by one task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import asyncpg

from domain.base import SYSTEM, CommandContext
from domain.subscriber import bounce_subscriber, disable_subscriber
from infra import tokens
from infra.clock import Clock
from infra.contacts import Contact, decrypt
from infra.event_store import PostgresEventStore
from infra.follow import CONNECTION_ERRORS, Connect, Follower, Session
from infra.mail import Envelope, Links, MailTransport, compose
from infra.webhooks import WebhookSender
from projections.runner import PROJECTIONS_CHANNEL

log = logging.getLogger("beacon.notifications")

OUTBOX = "notification_outbox"
"""The outbox projection's name: its commits wake the dispatcher."""
CHANNELS = ("email", "webhook")
PREFETCH = 4
"""Intents a worker holds per channel, as a multiple of its concurrency: sent as slots free."""
NOT_CONFIGURED = "BEACON_SMTP_URL is not set"
"""The reason of the email channel's pause on a database without a mail transport."""

ELIGIBLE: Mapping[str, tuple[str, ...]] = {
    "update": ("confirmed", "active"),
    "confirmation": ("pending",),
    "webhook_disabled": ("disabled",),
}
"""Which subscriber states a message of each kind still goes to."""
ENDED = ("unsubscribed", "bounced", "disabled", "erased")
"""States after which none of a subscriber's pending updates is sent."""

Outcome = Literal["delivered", "failed", "cancelled", "forbidden_address"]


@dataclass(frozen=True)
class RetrySchedule:
    """Seconds before each retry: an intent gets `len(delays) + 1` attempts."""

    delays: tuple[float, ...]
    jitter: float = 0.2

    @property
    def attempts(self) -> int:
        return len(self.delays) + 1

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float | None:
        """Seconds from the failure of attempt `attempt` (1-based) to the next one; None after the last.

        ±`jitter` spreads the retries of many receivers that failed together. A `Retry-After` longer than the
        step is honoured up to the following step, so a receiver cannot stretch the schedule indefinitely."""
        if attempt < 1 or attempt > len(self.delays):
            return None
        base = self.delays[attempt - 1]
        delay = base * rng.uniform(1 - self.jitter, 1 + self.jitter)
        if retry_after is not None and retry_after > delay:
            cap = self.delays[attempt] if attempt < len(self.delays) else base
            delay = max(delay, min(retry_after, cap))
        return delay

    def pause(self, failures: int, rng: random.Random) -> float:
        """How long a channel stays paused after its `failures`-th transport failure in a row."""
        step = self.delays[min(max(failures, 1), len(self.delays)) - 1] if self.delays else 60.0
        return step * rng.uniform(1 - self.jitter, 1 + self.jitter)


@dataclass(frozen=True)
class Claimed:
    """An intent this worker reserved, with what sending it needs."""

    id: UUID
    subscriber_id: UUID
    channel: str
    notice_id: UUID | None
    attempt: int
    message_id: UUID
    kind: str
    created_at: datetime
    state: str | None
    """The subscriber's state as the outbox last folded it (None: unknown)."""
    reserved_until: datetime
    """Past this the intent may be claimed again by anyone: a delivery not started by then is dropped."""


@dataclass
class Result:
    """What became of one claimed attempt, written by the recorder."""

    claimed: Claimed
    at: datetime
    outcome: Outcome | None
    """None: nothing to record against the subscriber (the transport failed and the attempt is given back)."""
    state: str | None = None
    """The intent's new state; None while it will be retried."""
    next_attempt_at: datetime | None = None
    http_status: int | None = None
    smtp_reply: str | None = None
    event: tuple[Literal["bounce", "disable"], str] | None = None
    """A subscriber event to record first (bounce or disable, with its reason)."""
    pause: str | None = None
    """Why the email channel is paused (a transport failure)."""


@dataclass
class DispatcherStatus:
    """What this process's dispatcher has done, for tests and operators."""

    claimed: int = 0
    recorded: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    unrecorded: int = 0
    """Results dropped because they could not be recorded even on their own (their intents are claimed again)."""
    last_error: str | None = None


CLAIM_SQL = """
WITH due AS (
    SELECT d.id FROM unnest($1::text[], $3::int[]) AS w(channel, wanted)
    CROSS JOIN LATERAL (
        SELECT i.id FROM beacon_notification_intents AS i
        WHERE i.state = 'pending' AND i.channel = w.channel AND i.next_attempt_at <= $2
          AND NOT EXISTS (
              SELECT 1 FROM beacon_notification_channels AS p WHERE p.channel = w.channel AND p.paused_until > $2)
          AND NOT EXISTS (
              SELECT 1 FROM beacon_notification_intents AS e
              WHERE e.subscriber_id = i.subscriber_id AND e.notice_id = i.notice_id
                AND e.position < i.position AND e.state = 'pending')
        ORDER BY i.next_attempt_at, i.position
        LIMIT w.wanted
        FOR UPDATE OF i SKIP LOCKED
    ) AS d
), claimed AS (
    UPDATE beacon_notification_intents AS i
    SET attempts = i.attempts + 1, next_attempt_at = $4, updated_at = $2
    WHERE i.id = ANY(ARRAY(SELECT id FROM due))
    RETURNING i.id, i.subscriber_id, i.channel, i.notice_id, i.attempts, i.message_id
)
SELECT c.*, m.kind, m.created_at, s.state, k.key, k.contact
FROM claimed AS c
JOIN beacon_notification_messages AS m ON m.id = c.message_id
LEFT JOIN beacon_notify_subscribers AS s ON s.subscriber_id = c.subscriber_id
LEFT JOIN beacon_subscriber_keys AS k ON k.subscriber_id = c.subscriber_id
"""
"""Reserve due intents until $4: up to $3[n] of channel $1[n] for each n, none of a paused channel. One
statement, so one round trip for every channel, with each subscriber's sealed contact (key and ciphertext,
decrypted here; none once erased). The order rule is the second NOT EXISTS: an earlier update of the same
notice still pending (retrying, or reserved by another worker) holds this one back."""


Deliver = Callable[[Claimed, Mapping[str, Any], Contact | None], Awaitable[Result]]


class NotificationDispatcher:
    """Claims, sends and records notification intents in this process."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        store: PostgresEventStore,
        clock: Clock,
        *,
        mail: MailTransport | None,
        webhooks: WebhookSender,
        secret_key: bytes,
        schedule: RetrySchedule,
        mail_from: str | None = None,
        fallback_url: str = "http://localhost",
        concurrency: int = 16,
        claim_seconds: float = 120.0,
        poll_interval: float = 0.5,
        connect: Connect | None = None,
        rng: random.Random | None = None,
        on_outcome: Callable[[str, str], None] | None = None,
    ) -> None:
        """`mail` None: the email channel stays paused (`NOT_CONFIGURED`). `fallback_url` stands in for a page's
        public URL while none is known (links in mail need one). `on_outcome(channel, outcome)` counts each
        recorded attempt (metrics)."""
        self.pool = pool
        self.store = store
        self.clock = clock
        self.mail = mail
        self.webhooks = webhooks
        self.secret_key = secret_key
        self.schedule = schedule
        self.mail_from = mail_from
        self.fallback_url = fallback_url.rstrip("/")
        self.concurrency = concurrency
        self.claim_seconds = claim_seconds
        self.poll_interval = poll_interval
        self.connect = connect
        """Opens the dispatcher's own connection (`infra.follow.dedicated`); None borrows a pool connection."""
        self.rng = rng or random.Random()
        self.on_outcome = on_outcome
        self.status = DispatcherStatus()
        self._in_flight: dict[str, int] = dict.fromkeys(CHANNELS, 0)
        """Claimed and not yet finished, per channel: up to twice `concurrency` (the rest wait for a slot)."""
        self._slots = {channel: asyncio.Semaphore(concurrency) for channel in CHANNELS}
        self._tasks: set[asyncio.Task[None]] = set()
        self._results: list[Result] = []
        self._results_ready = asyncio.Event()
        self._contents: dict[UUID, dict[str, Any]] = {}
        self._drained: dict[str, float] = {}
        """Channels whose last claim found fewer intents than it asked for, and when (`time.monotonic`): passes
        this dispatcher wakes itself for (a batch recorded, slots freed) skip them until `poll_interval` has
        passed, the outbox commits, or an attempt of theirs is recorded (which may free the next update of its
        notice); otherwise every recorded batch of one channel cost an empty claim of the other."""
        self._follower: Follower | None = None
        self._recorder: asyncio.Task[None] | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.configure_channels()
        self._recorder = asyncio.create_task(self._record_forever(), name="notification-recorder")
        self._follower = Follower(
            "notification-dispatcher",
            self.connect or self.pool.acquire,
            channels=[PROJECTIONS_CHANNEL],
            on_notify=lambda _channel, payload: self._outbox_committed(payload),
            poll_interval=self.poll_interval,
            retry_interval=max(self.poll_interval, 0.1),
        )
        await self._follower.start(self._step)

    async def stop(self) -> None:
        """Stop claiming, let the deliveries in flight finish (bounded by their timeouts) and record them."""
        if self._follower is not None:
            await self._follower.stop()
            self._follower = None
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.claim_seconds / 2)
            for task in self._tasks:
                task.cancel()
        if self._recorder is not None:
            self._recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recorder
            self._recorder = None
        with contextlib.suppress(*CONNECTION_ERRORS):
            await self._flush()
        if self.mail is not None:
            await self.mail.close()
        await self.webhooks.close()

    def wake(self) -> None:
        if self._follower is not None:
            self._follower.wake()

    def _outbox_committed(self, payload: str) -> bool:
        """Whether a projection's commit wakes the dispatcher: the outbox's does, and may bring intents of any
        channel."""
        if not payload.startswith(OUTBOX + ":"):
            return False
        self._drained.clear()
        return True

    async def run_once(self) -> int:
        """One pass without the background loop: claim what is due, send it all, record it. Returns how many
        were claimed (tests drive the dispatcher this way)."""
        self._drained.clear()
        async with self.pool.acquire() as conn:
            started = await self.dispatch_due(conn)
        while self._tasks:
            await asyncio.gather(*list(self._tasks))
        await self._flush()
        return started

    async def drain(self) -> int:
        """`run_once` until nothing is due (an update freed by its predecessor's delivery included)."""
        total = 0
        while started := await self.run_once():
            total += started
        return total

    async def configure_channels(self) -> None:
        """Pause the email channel while no transport is configured; lift that pause once one is."""
        if self.mail is None:
            await self.pool.execute(
                "INSERT INTO beacon_notification_channels (channel, paused_until, reason, paused_since)"
                " VALUES ('email', 'infinity', $1, $2) ON CONFLICT (channel) DO UPDATE"
                " SET paused_until = 'infinity', reason = $1,"
                " paused_since = COALESCE(beacon_notification_channels.paused_since, $2)",
                NOT_CONFIGURED,
                self.clock.now(),
            )
            log.warning("the email channel is paused: %s (notification mail waits until it is)", NOT_CONFIGURED)
        else:
            await self.pool.execute(
                "UPDATE beacon_notification_channels SET paused_until = NULL, reason = NULL, failures = 0,"
                " paused_since = NULL WHERE channel = 'email' AND reason = $1",
                NOT_CONFIGURED,
            )
            log.info("notification mail goes to %s", self.mail.description)

    # --- claiming -----------------------------------------------------------------------------------------------

    async def _step(self, session: Session) -> None:
        try:
            await self.dispatch_due(session.conn)
        except CONNECTION_ERRORS:
            raise
        except Exception as error:
            # Intents must still go out after whatever this was: logged loudly, tried again next pass.
            self.status.last_error = f"dispatch pass failed: {error!r}"
            log.exception("notification dispatch pass failed; retrying")

    async def dispatch_due(self, conn: asyncpg.Connection) -> int:
        """Claim what is due for every channel with room and start sending it; returns how many.

        A channel is topped up to `PREFETCH` times its concurrency once fewer than twice its concurrency of
        its intents are in hand: claims come in batches (a claim and a record per delivery would cost more
        round trips than the sending), and the next batch is ready before the slots run dry. One statement
        for every channel (`CLAIM_SQL`, contacts included); a paused channel claims nothing."""
        now = self.clock.now()
        reserved_until = now + timedelta(seconds=self.claim_seconds)
        moment = time.monotonic()
        wanted = {
            channel: PREFETCH * self.concurrency - self._in_flight[channel]
            for channel in CHANNELS
            if self._in_flight[channel] < 2 * self.concurrency
            and moment - self._drained.get(channel, -math.inf) >= self.poll_interval
        }
        if not wanted:
            return 0
        rows = await conn.fetch(CLAIM_SQL, list(wanted), now, list(wanted.values()), reserved_until)
        for channel, limit in wanted.items():
            if sum(row["channel"] == channel for row in rows) < limit:
                self._drained[channel] = moment
            else:
                self._drained.pop(channel, None)
        self.status.claimed += len(rows)
        claimed = [
            Claimed(
                id=row["id"],
                subscriber_id=row["subscriber_id"],
                channel=row["channel"],
                notice_id=row["notice_id"],
                attempt=row["attempts"],
                message_id=row["message_id"],
                kind=row["kind"],
                created_at=row["created_at"],
                state=row["state"],
                reserved_until=reserved_until,
            )
            for row in rows
        ]
        if claimed:
            contacts = {
                row["subscriber_id"]: decrypt(row["key"], row["contact"]) if row["contact"] is not None else None
                for row in rows
            }
            await self._start(conn, claimed, contacts)
        return len(claimed)

    async def _start(
        self, conn: asyncpg.Connection, claimed: list[Claimed], contacts: Mapping[UUID, Contact | None]
    ) -> None:
        missing = list({c.message_id for c in claimed if c.message_id not in self._contents})
        if missing:
            for row in await conn.fetch(
                "SELECT id, content FROM beacon_notification_messages WHERE id = ANY($1::uuid[])", missing
            ):
                content = row["content"]
                self._contents[row["id"]] = json.loads(content) if isinstance(content, str) else content
            if len(self._contents) > 1000:  # messages are per update: only the newest few are being sent
                for key in list(self._contents)[: len(self._contents) - 1000]:
                    del self._contents[key]
        for item in claimed:
            self._in_flight[item.channel] += 1
            task = asyncio.create_task(
                self._run(item, self._contents[item.message_id], contacts.get(item.subscriber_id))
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, claimed: Claimed, content: Mapping[str, Any], contact: Contact | None) -> None:
        try:
            async with self._slots[claimed.channel]:
                if self.clock.now() >= claimed.reserved_until:
                    # Waited past its reservation (slow receivers ahead of it): it may be another worker's
                    # attempt now; sending it too would be two sends of one attempt. It comes back when due.
                    log.warning("intent %s not sent: its reservation ran out while it waited", claimed.id)
                    return
                result = await self.deliver(claimed, content, contact)
        except Exception as error:
            # A bug in one delivery must not lose the intent: it is retried like any failure.
            log.exception("delivery of intent %s failed unexpectedly", claimed.id)
            result = self._failed(claimed, self.clock.now(), "failed", detail=repr(error))
        finally:
            self._in_flight[claimed.channel] -= 1
            if self._in_flight[claimed.channel] == 2 * self.concurrency - 1:
                self.wake()  # room for the next batch: claimed now, so it is ready before the slots run dry
        self._results.append(result)
        self._results_ready.set()

    # --- delivering ---------------------------------------------------------------------------------------------

    async def deliver(self, claimed: Claimed, content: Mapping[str, Any], contact: Contact | None) -> Result:
        """Send one claimed intent and say what became of it (nothing is written here)."""
        now = self.clock.now()
        if claimed.state not in ELIGIBLE.get(claimed.kind, ()) or contact is None:
            return Result(claimed, now, "cancelled", state="cancelled")
        if claimed.channel == "webhook" and claimed.kind == "update":
            return await self._deliver_webhook(claimed, content, contact, now)
        if contact.email is None:  # a webhook without a contact address gets no "disabled" notice
            return Result(claimed, now, "cancelled", state="cancelled")
        return await self._deliver_mail(claimed, content, contact.email, now)

    def page_url(self, content: Mapping[str, Any]) -> str:
        page = content.get("page") or {}
        url = page.get("url")
        return str(url).rstrip("/") if url else f"{self.fallback_url}/{page.get('slug', '')}".rstrip("/")

    def links(self, claimed: Claimed, content: Mapping[str, Any]) -> Links:
        """The subscriber's own links: unsubscribe and manage never expire; a confirmation's link expires seven
        days after the request (fixed by the message, so a retry carries the same link)."""
        base = self.page_url(content)
        subscriber = claimed.subscriber_id

        def link(purpose: tokens.Purpose, expires_at: datetime | None = None) -> str:
            token = tokens.sign(self.secret_key, purpose, subscriber, expires_at)
            return f"{base}/subscriptions/{purpose}?token={token}"

        if claimed.kind == "confirmation":
            return Links(
                unsubscribe=link("unsubscribe"),
                confirm=link("confirm", claimed.created_at + tokens.CONFIRM_VALIDITY),
            )
        if claimed.kind == "webhook_disabled":
            return Links(unsubscribe=None, manage=None)
        return Links(unsubscribe=link("unsubscribe"), manage=link("manage"))

    def host(self, content: Mapping[str, Any]) -> str:
        from urllib.parse import urlsplit

        return urlsplit(self.page_url(content)).hostname or "localhost"

    def mail_bytes(self, claimed: Claimed, content: Mapping[str, Any], recipient: str) -> tuple[str, bytes]:
        """The sender and the exact bytes of one subscriber's mail (the same on every retry)."""
        host = self.host(content)
        sender = self.mail_from or f"status@{host}"
        update = content.get("update") or {}
        published = update.get("published_at")
        sent_at = datetime.fromisoformat(published.replace("Z", "+00:00")) if published else claimed.created_at
        message = compose(
            content,
            intent_id=claimed.id,
            subscriber_id=claimed.subscriber_id,
            sender=sender,
            recipient=recipient,
            host=host,
            links=self.links(claimed, content),
            sent_at=sent_at.astimezone(UTC),
        )
        return sender, message

    def webhook_body(self, claimed: Claimed, content: Mapping[str, Any]) -> bytes:
        """Statuspage's body with this subscriber's unsubscribe link in `meta`."""
        body = dict(content["webhook"])
        body["meta"] = {"unsubscribe": self.links(claimed, content).unsubscribe, **(body.get("meta") or {})}
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    async def _deliver_mail(
        self, claimed: Claimed, content: Mapping[str, Any], recipient: str, now: datetime
    ) -> Result:
        if self.mail is None:
            return Result(claimed, now, None, pause=NOT_CONFIGURED)
        sender, message = self.mail_bytes(claimed, content, recipient)
        outcome = await self.mail.send(Envelope(sender, recipient, message, claimed.subscriber_id, claimed.id))
        now = self.clock.now()
        if outcome.kind == "delivered":
            return Result(claimed, now, "delivered", state="delivered", smtp_reply=outcome.reply)
        if outcome.kind == "transport_failed":
            return Result(claimed, now, None, pause=outcome.reply or "the mail transport failed")
        if outcome.kind == "bounced":
            reason = f"the relay refused the address: {outcome.reply}"
            return Result(claimed, now, "failed", state="failed", smtp_reply=outcome.reply, event=("bounce", reason))
        return self._failed(claimed, now, "failed", smtp_reply=outcome.reply)

    async def _deliver_webhook(
        self, claimed: Claimed, content: Mapping[str, Any], contact: Contact, now: datetime
    ) -> Result:
        if contact.url is None or contact.secret is None:
            return Result(claimed, now, "cancelled", state="cancelled")
        secrets = [contact.secret]
        if contact.previous_secret and contact.previous_valid_until and contact.previous_valid_until > now:
            secrets.append(contact.previous_secret)
        outcome = await self.webhooks.deliver(
            contact.url,
            message_id=str(claimed.id),
            body=self.webhook_body(claimed, content),
            secrets=secrets,
            now=now,
        )
        now = self.clock.now()
        if outcome.kind == "delivered":
            return Result(claimed, now, "delivered", state="delivered", http_status=outcome.http_status)
        if outcome.kind == "gone":
            return Result(
                claimed,
                now,
                "failed",
                state="failed",
                http_status=outcome.http_status,
                event=("disable", "the receiver answered 410 Gone"),
            )
        kind: Outcome = "forbidden_address" if outcome.kind == "forbidden_address" else "failed"
        return self._failed(claimed, now, kind, http_status=outcome.http_status, retry_after=outcome.retry_after)

    def _failed(
        self,
        claimed: Claimed,
        now: datetime,
        outcome: Outcome,
        *,
        http_status: int | None = None,
        smtp_reply: str | None = None,
        retry_after: float | None = None,
        detail: str | None = None,
    ) -> Result:
        """A failed attempt: retried on the schedule, or the intent's end (and a webhook's) after the last."""
        delay = self.schedule.delay(claimed.attempt, self.rng, retry_after)
        if delay is not None:
            return Result(
                claimed,
                now,
                outcome,
                next_attempt_at=now + timedelta(seconds=delay),
                http_status=http_status,
                smtp_reply=smtp_reply,
            )
        event: tuple[Literal["bounce", "disable"], str] | None = None
        if claimed.channel == "webhook" and claimed.kind == "update":
            event = ("disable", f"every one of {self.schedule.attempts} attempts failed")
        return Result(
            claimed, now, outcome, state="failed", http_status=http_status, smtp_reply=smtp_reply, event=event
        )

    # --- recording ----------------------------------------------------------------------------------------------

    async def _record_forever(self) -> None:
        """Write results in batches as they come; during a database outage keep them and try again."""
        delay = 0.05
        while True:
            await self._results_ready.wait()
            if len(self._results) < self.concurrency:
                await asyncio.sleep(0.01)  # let the deliveries finishing now join this batch
            try:
                await self._flush()
                delay = 0.05
            except CONNECTION_ERRORS as error:
                log.warning("cannot record notification attempts (%r); trying again", error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            except Exception as error:
                self.status.last_error = f"recording attempts failed: {error!r}"
                log.exception("recording notification attempts failed; recording them one at a time")
                await self._isolate()

    async def _isolate(self) -> None:
        """Record the pending results one at a time, so one that cannot be recorded (a bug, not an outage) does
        not hold up every later one while their reservations run out and they are sent again. A result that fails
        on its own is dropped, loudly: its intent stays pending and is claimed again when its reservation ends,
        so its subscriber is told at least once (the receiver deduplicates by the stable id)."""
        for result in list(self._results):
            try:
                await self._flush([result])
            except CONNECTION_ERRORS:
                raise
            except Exception as error:
                self._results.remove(result)
                self.status.unrecorded += 1
                self.status.last_error = f"recording an attempt failed: {error!r}"
                log.exception("cannot record the attempt of intent %s; it will be claimed again", result.claimed.id)
        if not self._results:
            self._results_ready.clear()

    async def _flush(self, only: list[Result] | None = None) -> None:
        if not self._results:
            self._results_ready.clear()
            return
        batch = list(self._results) if only is None else only
        # Events first: if they cannot be recorded the attempts are not either, and the whole batch is retried
        # (bouncing or disabling twice records nothing the second time).
        for result in batch:
            if result.event is not None:
                await self._subscriber_event(result.claimed.subscriber_id, *result.event, result.at)
        async with self.pool.acquire() as conn:
            if routine(batch):  # one statement, atomic on its own: no BEGIN and COMMIT round trips around it
                await record(conn, batch, self._pause_seconds)
            else:
                async with conn.transaction():
                    await record(conn, batch, self._pause_seconds)
        if only is None:
            del self._results[: len(batch)]  # results that came in meanwhile stay, behind it
        else:
            for result in only:
                self._results.remove(result)
        if not self._results:
            self._results_ready.clear()
        self.status.recorded += len(batch)
        for result in batch:
            self._drained.pop(result.claimed.channel, None)
            outcome = result.outcome or "paused"
            self.status.outcomes[outcome] = self.status.outcomes.get(outcome, 0) + 1
            if self.on_outcome is not None:
                self.on_outcome(result.claimed.channel, outcome)
        self.wake()  # a delivered update may free the next one of its notice

    def _pause_seconds(self, failures: int) -> float:
        return self.schedule.pause(failures, self.rng)

    async def _subscriber_event(self, subscriber_id: UUID, kind: str, reason: str, at: datetime) -> None:
        context = CommandContext(now=at, actor=SYSTEM, request_id=None)
        verdict = bounce_subscriber if kind == "bounce" else disable_subscriber
        await verdict(self.store, subscriber_id=subscriber_id, reason=reason, context=context)
        log.info("subscriber %s %s: %s", subscriber_id, "bounced" if kind == "bounce" else "disabled", reason)


RECORD_SQL = """
WITH batch AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::int[], $6::timestamptz[], $7::text[],
                         $8::int[], $9::text[], $10::timestamptz[], $11::text[])
        AS b(id, intent_id, subscriber_id, channel, attempt, attempted_at, outcome, http_status, smtp_reply,
             next_attempt_at, state)
), attempts AS (
    INSERT INTO beacon_notification_attempts (id, intent_id, subscriber_id, channel, attempt, attempted_at, outcome,
                                              http_status, smtp_reply, next_attempt_at)
    SELECT id, intent_id, subscriber_id, channel, attempt, attempted_at, outcome, http_status, smtp_reply,
           next_attempt_at
    FROM batch
    ON CONFLICT (intent_id, attempt) DO NOTHING
), intents AS (
    UPDATE beacon_notification_intents AS i
    SET state = COALESCE(b.state, i.state), next_attempt_at = COALESCE(b.next_attempt_at, i.next_attempt_at),
        updated_at = b.attempted_at
    FROM batch AS b
    WHERE i.id = b.intent_id AND i.attempts = b.attempt AND i.state = 'pending'
)
UPDATE beacon_notification_channels SET paused_until = NULL, reason = NULL, failures = 0, paused_since = NULL
WHERE channel = 'email' AND failures > 0 AND reason IS DISTINCT FROM $12
  AND EXISTS (SELECT 1 FROM batch WHERE channel = 'email' AND outcome = 'delivered')
"""
"""A batch of attempts in one statement: each attempt's row, its intent's new state (only if the intent still
holds the attempt this worker claimed: a reservation that ran out and was claimed again belongs to the newer
attempt), and the end of the email channel's pause once a mail went through (unless no transport is
configured)."""


def _ended(batch: list[Result]) -> dict[UUID, datetime]:
    """Subscribers whose other pending updates are cancelled with this batch: bounced or disabled by it, or
    found ended when one of their updates was claimed."""
    return {
        r.claimed.subscriber_id: r.at
        for r in batch
        if r.event is not None or (r.state == "cancelled" and r.claimed.state in ENDED and r.claimed.kind == "update")
    }


def routine(batch: list[Result]) -> bool:
    """Whether `record` writes this batch with `RECORD_SQL` alone: every attempt counted, nobody ended."""
    return all(r.outcome is not None for r in batch) and not _ended(batch)


async def record(conn: asyncpg.Connection, batch: list[Result], pause_seconds: Callable[[int], float]) -> None:
    """Write a batch of results: the attempts and the intents' new state (`RECORD_SQL`), the cancellation of an
    ended subscriber's other updates, and the email channel's pause (for `pause_seconds(failures in a row)`) or
    recovery. More than one statement unless the batch is `routine`: the caller wraps those in a transaction."""
    from infra.ids import new_ulid, ulid_to_uuid

    attempts = [r for r in batch if r.outcome is not None]
    if attempts:
        await conn.execute(
            RECORD_SQL,
            [ulid_to_uuid(new_ulid(r.at)) for r in attempts],
            [r.claimed.id for r in attempts],
            [r.claimed.subscriber_id for r in attempts],
            [r.claimed.channel for r in attempts],
            [r.claimed.attempt for r in attempts],
            [r.at for r in attempts],
            [r.outcome for r in attempts],
            [r.http_status for r in attempts],
            [r.smtp_reply for r in attempts],
            [r.next_attempt_at for r in attempts],
            [r.state for r in attempts],
            NOT_CONFIGURED,
        )
    given_back = [r for r in batch if r.outcome is None]
    if given_back:
        # The transport failed, not the subscriber: the attempt does not count and the intent waits for the channel.
        await conn.executemany(
            "UPDATE beacon_notification_intents SET attempts = attempts - 1, next_attempt_at = $3, updated_at = $3"
            " WHERE id = $1 AND attempts = $2 AND state = 'pending'",
            [(r.claimed.id, r.claimed.attempt, r.at) for r in given_back],
        )
    ended = _ended(batch)
    if ended:
        await cancel_pending(conn, list(ended), max(ended.values()))
    pauses = [r for r in given_back if r.pause is not None]
    if pauses:
        await pause_channel(conn, "email", pauses[-1].pause or "", pauses[-1].at, pause_seconds)
        if any(r.claimed.channel == "email" and r.outcome == "delivered" for r in batch):
            # A mail of this batch went through after all: the relay works, as RECORD_SQL alone would conclude.
            await conn.execute(
                "UPDATE beacon_notification_channels SET paused_until = NULL, reason = NULL, failures = 0,"
                " paused_since = NULL WHERE channel = 'email' AND failures > 0 AND reason IS DISTINCT FROM $1",
                NOT_CONFIGURED,
            )


async def pause_channel(
    conn: asyncpg.Connection, channel: str, reason: str, at: datetime, pause_seconds: Callable[[int], float]
) -> None:
    """Pause a channel after a transport failure, for the schedule's next step. Failures reported while it is
    already paused (deliveries that were in flight) do not move the step on."""
    await conn.execute(
        "INSERT INTO beacon_notification_channels (channel, paused_until, reason, failures, paused_since)"
        " VALUES ($1, NULL, $2, 0, $3) ON CONFLICT (channel) DO NOTHING",
        channel,
        reason,
        at,
    )
    row = await conn.fetchrow(
        "SELECT failures, COALESCE(paused_until > $2, false) AS paused FROM beacon_notification_channels"
        " WHERE channel = $1 FOR UPDATE",
        channel,
        at,
    )
    if row["paused"]:
        return
    failures = row["failures"] + 1
    seconds = pause_seconds(failures)
    await conn.execute(
        "UPDATE beacon_notification_channels SET failures = $2, paused_until = $3, reason = $4,"
        " paused_since = COALESCE(paused_since, $5) WHERE channel = $1",
        channel,
        failures,
        at + timedelta(seconds=seconds),
        reason,
        at,
    )
    log.warning("the %s channel is paused for %.0f s: %s", channel, seconds, reason)


async def cancel_pending(conn: asyncpg.Connection, subscriber_ids: list[UUID], at: datetime) -> int:
    """Cancel every pending update of these subscribers, set-based, with an attempt row each saying so."""
    rows = await conn.fetch(
        "UPDATE beacon_notification_intents AS i SET state = 'cancelled', attempts = i.attempts + 1, updated_at = $2"
        " FROM beacon_notification_messages AS m"
        " WHERE i.message_id = m.id AND m.kind = 'update' AND i.state = 'pending'"
        " AND i.subscriber_id = ANY($1::uuid[])"
        " RETURNING i.id, i.subscriber_id, i.channel, i.attempts",
        subscriber_ids,
        at,
    )
    if rows:
        from infra.ids import new_ulid, ulid_to_uuid

        await conn.executemany(
            "INSERT INTO beacon_notification_attempts (id, intent_id, subscriber_id, channel, attempt, attempted_at,"
            " outcome) VALUES ($1, $2, $3, $4, $5, $6, 'cancelled') ON CONFLICT (intent_id, attempt) DO NOTHING",
            [(ulid_to_uuid(new_ulid(at)), r["id"], r["subscriber_id"], r["channel"], r["attempts"], at) for r in rows],
        )
    return len(rows)
