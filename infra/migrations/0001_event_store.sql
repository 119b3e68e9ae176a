-- The event log. Columns originator_id .. notification_id are the `eventsourcing` library's own
-- application-recorder layout (table name `beacon_events` = an Application named "Beacon"), so an
-- auditor can read it with the library's PostgresApplicationRecorder
-- (docs/architecture.md#1-library-compatible-log). The rest is Beacon's.
CREATE TABLE IF NOT EXISTS beacon_events (
    originator_id      uuid        NOT NULL,
    originator_version bigint      NOT NULL,
    topic              text,
    state              bytea,
    notification_id    bigserial,
    stream_type        text        NOT NULL,
    recorded_at        timestamptz NOT NULL,
    actor              jsonb       NOT NULL,
    request_id         text,
    hash               bytea       NOT NULL,
    PRIMARY KEY (originator_id, originator_version)
);
CREATE UNIQUE INDEX IF NOT EXISTS beacon_events_notification_id_idx ON beacon_events (notification_id ASC);
CREATE INDEX IF NOT EXISTS beacon_events_recorded_at_idx ON beacon_events (recorded_at);

-- Append-only: the database itself refuses UPDATE, DELETE and TRUNCATE on the log (docs/architecture.md#audit).
CREATE OR REPLACE FUNCTION beacon_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'beacon_events is append-only: % refused', TG_OP USING ERRCODE = 'B0001';
END $$;
CREATE OR REPLACE TRIGGER beacon_events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON beacon_events FOR EACH ROW EXECUTE FUNCTION beacon_refuse_change();
CREATE OR REPLACE TRIGGER beacon_events_no_truncate
    BEFORE TRUNCATE ON beacon_events FOR EACH STATEMENT EXECUTE FUNCTION beacon_refuse_change();

-- Idempotency keys of creates, written in the same transaction as the events they guard.
CREATE TABLE IF NOT EXISTS beacon_idempotency_keys (
    scope      text        NOT NULL,
    key        text        NOT NULL,
    stream_id  uuid        NOT NULL,
    position   bigint      NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);

-- The hash of one event: sha256 over the previous event's hash and this event's canonical content.
-- Documented in README ("Tamper evidence") so an auditor can recompute it without Beacon's code.
CREATE OR REPLACE FUNCTION beacon_event_hash(
    prev_hash bytea, event_position bigint, originator_id uuid, originator_version bigint, topic text,
    state bytea, stream_type text, recorded_at timestamptz, actor jsonb, request_id text
) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT sha256(
        coalesce(prev_hash, ''::bytea)
        || convert_to(concat_ws(E'\n',
               event_position::text, originator_id::text, originator_version::text, topic, stream_type,
               to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               actor::text, coalesce(request_id, '')), 'UTF8')
        || coalesce(state, ''::bytea))
$$;

-- One append = one call = one round trip (docs/architecture.md#2-serialised-appends). The table lock
-- serialises appends, so positions become visible in exactly the order they were taken and readers
-- can trust "position > n". Inside the lock: the idempotency check, the expected-version check, the
-- inserts, the hash chain and the NOTIFY (delivered at commit).
CREATE OR REPLACE FUNCTION beacon_append(
    p_stream_id uuid, p_stream_type text, p_expected_version bigint,
    p_topics text[], p_states bytea[],
    p_recorded_at timestamptz, p_actor jsonb, p_request_id text,
    p_idempotency_scope text, p_idempotency_key text
) RETURNS TABLE (stream_id uuid, event_position bigint, replayed boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_current  bigint;
    v_prev     bytea;
    v_position bigint;
    v_existing uuid;
    v_recorded timestamptz;
    i          int;
BEGIN
    -- The checks below must see every append committed before the lock was granted. Under READ
    -- COMMITTED each statement takes a fresh snapshot; a REPEATABLE READ snapshot predates the lock
    -- and would fork the hash chain, so refuse it.
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'beacon_append needs READ COMMITTED, not %', current_setting('transaction_isolation')
            USING ERRCODE = 'B0002';
    END IF;
    LOCK TABLE beacon_events IN EXCLUSIVE MODE;

    IF p_idempotency_key IS NOT NULL THEN
        SELECT k.stream_id INTO v_existing FROM beacon_idempotency_keys k
         WHERE k.scope = p_idempotency_scope AND k.key = p_idempotency_key;
        IF FOUND THEN
            RETURN QUERY SELECT v_existing, NULL::bigint, true;
            RETURN;
        END IF;
    END IF;

    SELECT coalesce(max(e.originator_version), 0) INTO v_current
      FROM beacon_events e WHERE e.originator_id = p_stream_id;
    IF v_current <> p_expected_version THEN
        RAISE EXCEPTION 'stream % is at version %, expected %', p_stream_id, v_current, p_expected_version
            USING ERRCODE = 'B0409';
    END IF;

    -- recorded_at never goes backwards in log order (two writers' clocks are read before the lock),
    -- so "the log as of T" is always a prefix of the log and time travel matches what was served.
    SELECT e.hash, greatest(p_recorded_at, e.recorded_at) INTO v_prev, v_recorded
      FROM beacon_events e ORDER BY e.notification_id DESC LIMIT 1;
    v_recorded := coalesce(v_recorded, p_recorded_at);

    FOR i IN 1 .. coalesce(array_length(p_topics, 1), 0) LOOP
        v_position := nextval(pg_get_serial_sequence('beacon_events', 'notification_id'));
        v_prev := beacon_event_hash(v_prev, v_position, p_stream_id, p_expected_version + i,
                                    p_topics[i], p_states[i], p_stream_type, v_recorded,
                                    p_actor, p_request_id);
        INSERT INTO beacon_events (originator_id, originator_version, topic, state, notification_id,
                                   stream_type, recorded_at, actor, request_id, hash)
        VALUES (p_stream_id, p_expected_version + i, p_topics[i], p_states[i], v_position,
                p_stream_type, v_recorded, p_actor, p_request_id, v_prev);
        RETURN QUERY SELECT p_stream_id, v_position, false;
    END LOOP;

    IF p_idempotency_key IS NOT NULL THEN
        INSERT INTO beacon_idempotency_keys (scope, key, stream_id, position, created_at)
        VALUES (p_idempotency_scope, p_idempotency_key, p_stream_id, v_position, v_recorded);
    END IF;

    PERFORM pg_notify('beacon_events', v_position::text);
END $$;

-- API keys: only a hash of the token is kept (docs/architecture.md#api-keys).
CREATE TABLE IF NOT EXISTS beacon_api_keys (
    id         text        PRIMARY KEY,
    name       text        NOT NULL,
    scopes     text[]      NOT NULL,
    token_hash bytea       NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);
