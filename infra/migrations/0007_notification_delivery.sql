-- Delivery of notifications (process_managers/notification_dispatcher.py, docs/architecture.md#notification-delivery).
-- The intents themselves belong to the outbox projection; these tables are the dispatcher's operational data:
-- each attempt to send one, and the channels whose transport is paused. They are not events: a 100,000-subscriber
-- incident must not put 100,000 rows in the log, and an attempt is not a fact of the product.

CREATE TABLE IF NOT EXISTS beacon_notification_attempts (
    id uuid PRIMARY KEY,                -- a ULID of the attempt's time: the deliveries list's order and cursor
    intent_id uuid NOT NULL,
    subscriber_id uuid NOT NULL,        -- the deliveries list reads by subscriber; erasure clears smtp_reply by it
    channel text NOT NULL,
    attempt integer NOT NULL,           -- 1 for the first attempt at this intent
    attempted_at timestamptz NOT NULL,
    outcome text NOT NULL,              -- delivered | failed | cancelled | forbidden_address
    http_status integer,
    smtp_reply text,                    -- the relay's reply, the recipient's address replaced by <recipient>
    next_attempt_at timestamptz,        -- when the intent is tried again (a failure that will be retried)
    UNIQUE (intent_id, attempt)
);

CREATE INDEX IF NOT EXISTS beacon_notification_attempts_subscriber
    ON beacon_notification_attempts (subscriber_id, id DESC);

-- A failing transport (an SMTP relay that refuses us, not a recipient) pauses its whole channel: the intents
-- wait, none is exhausted or counted against its subscriber. `failures` picks the step of the retry schedule.
CREATE TABLE IF NOT EXISTS beacon_notification_channels (
    channel text PRIMARY KEY,           -- email | webhook
    paused_until timestamptz,           -- NULL: not paused; 'infinity': paused until configured
    reason text,
    failures integer NOT NULL DEFAULT 0,
    paused_since timestamptz
);
