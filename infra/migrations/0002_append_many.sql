-- Group commit (ADR 0003). `beacon_append_many` appends a batch of independent appends in one
-- transaction under the same table lock as before (docs/architecture.md#2-serialised-appends), so the
-- lock is held through one WAL flush per batch instead of one per append. Each item gets exactly
-- `beacon_append`'s semantics in turn: idempotency check, expected-version check, non-decreasing
-- recorded_at, the hash chain continued from the previous item, the inserts and the idempotency row. A
-- version conflict or an idempotent replay is an outcome of its item, not an error, so it never aborts
-- the others.
--
-- Items are given as parallel arrays (one element per item); their events are flattened into
-- p_topics/p_states in item order, p_event_counts[i] of them for item i (Postgres arrays cannot be
-- ragged). One row per inserted event, one row per replayed or conflicting item.
CREATE OR REPLACE FUNCTION beacon_append_many(
    p_stream_ids uuid[], p_stream_types text[], p_expected_versions bigint[], p_event_counts int[],
    p_topics text[], p_states bytea[],
    p_recorded_ats timestamptz[], p_actors jsonb[], p_request_ids text[],
    p_idempotency_scopes text[], p_idempotency_keys text[]
) RETURNS TABLE (item int, stream_id uuid, event_position bigint, replayed boolean, conflict boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_items    int := coalesce(array_length(p_stream_ids, 1), 0);
    v_sequence regclass := pg_get_serial_sequence('beacon_events', 'notification_id');
    v_prev     bytea;
    v_latest   timestamptz;  -- recorded_at of the last event in the log, this batch's included
    v_recorded timestamptz;
    v_current  bigint;
    v_existing uuid;
    v_version  bigint;
    v_type     text;
    v_actor    jsonb;
    v_request  text;
    v_key      text;
    v_last     bigint;       -- the last position inserted, for the NOTIFY
    v_first    int := 0;     -- offset of item i's first event in p_topics/p_states
    i          int;
    j          int;
BEGIN
    -- The checks below must see every append committed before the lock was granted. Under READ
    -- COMMITTED each statement takes a fresh snapshot; a REPEATABLE READ snapshot predates the lock
    -- and would fork the hash chain, so refuse it.
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'beacon_append needs READ COMMITTED, not %', current_setting('transaction_isolation')
            USING ERRCODE = 'B0002';
    END IF;
    -- Plain expressions only (no queries): this runs once per batch, on the hot path.
    IF v_items = 0
       OR coalesce(array_length(p_stream_types, 1), 0) <> v_items
       OR coalesce(array_length(p_expected_versions, 1), 0) <> v_items
       OR coalesce(array_length(p_event_counts, 1), 0) <> v_items
       OR coalesce(array_length(p_recorded_ats, 1), 0) <> v_items
       OR coalesce(array_length(p_actors, 1), 0) <> v_items
       OR coalesce(array_length(p_request_ids, 1), 0) <> v_items
       OR coalesce(array_length(p_idempotency_scopes, 1), 0) <> v_items
       OR coalesce(array_length(p_idempotency_keys, 1), 0) <> v_items
       OR coalesce(array_length(p_states, 1), 0) <> coalesce(array_length(p_topics, 1), 0)
    THEN
        RAISE EXCEPTION 'beacon_append_many needs one element per append in each per-append array'
            USING ERRCODE = '22023';
    END IF;
    LOCK TABLE beacon_events IN EXCLUSIVE MODE;

    SELECT e.hash, e.recorded_at INTO v_prev, v_latest
      FROM beacon_events e ORDER BY e.notification_id DESC LIMIT 1;

    FOR i IN 1 .. v_items LOOP
        IF i > 1 THEN
            v_first := v_first + p_event_counts[i - 1];
        END IF;
        IF p_event_counts[i] IS NULL OR p_event_counts[i] < 1
           OR v_first + p_event_counts[i] > coalesce(array_length(p_topics, 1), 0) THEN
            RAISE EXCEPTION 'beacon_append_many: append % needs at least one event, within p_topics', i
                USING ERRCODE = '22023';
        END IF;

        -- Outcome columns are assigned and sent with RETURN NEXT (cheaper than a query per row).
        item := i;
        stream_id := p_stream_ids[i];
        event_position := NULL;
        replayed := false;
        conflict := false;
        v_key := p_idempotency_keys[i];

        IF v_key IS NOT NULL THEN
            SELECT k.stream_id INTO v_existing FROM beacon_idempotency_keys k
             WHERE k.scope = p_idempotency_scopes[i] AND k.key = v_key;
            IF FOUND THEN
                stream_id := v_existing;
                replayed := true;
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;

        -- Sees this batch's own earlier inserts, so two appends to one stream can share a batch.
        v_version := p_expected_versions[i];
        SELECT coalesce(max(e.originator_version), 0) INTO v_current
          FROM beacon_events e WHERE e.originator_id = stream_id;
        IF v_current <> v_version THEN
            conflict := true;
            RETURN NEXT;
            CONTINUE;
        END IF;

        -- recorded_at never goes backwards in log order (writers' clocks are read before the lock),
        -- so "the log as of T" is always a prefix of the log and time travel matches what was served.
        -- greatest() ignores the NULL of an empty log.
        v_recorded := greatest(p_recorded_ats[i], v_latest);
        v_type := p_stream_types[i];
        v_actor := p_actors[i];
        v_request := p_request_ids[i];
        FOR j IN v_first + 1 .. v_first + p_event_counts[i] LOOP
            v_version := v_version + 1;
            event_position := nextval(v_sequence);
            v_prev := beacon_event_hash(v_prev, event_position, stream_id, v_version, p_topics[j],
                                        p_states[j], v_type, v_recorded, v_actor, v_request);
            INSERT INTO beacon_events (originator_id, originator_version, topic, state, notification_id,
                                       stream_type, recorded_at, actor, request_id, hash)
            VALUES (stream_id, v_version, p_topics[j], p_states[j], event_position, v_type, v_recorded,
                    v_actor, v_request, v_prev);
            RETURN NEXT;
        END LOOP;
        v_latest := v_recorded;
        v_last := event_position;

        IF v_key IS NOT NULL THEN
            INSERT INTO beacon_idempotency_keys (scope, key, stream_id, position, created_at)
            VALUES (p_idempotency_scopes[i], v_key, stream_id, event_position, v_recorded);
        END IF;
    END LOOP;

    IF v_first + p_event_counts[v_items] <> coalesce(array_length(p_topics, 1), 0) THEN
        RAISE EXCEPTION 'beacon_append_many: p_topics holds more events than p_event_counts adds up to'
            USING ERRCODE = '22023';
    END IF;
    IF v_last IS NOT NULL THEN
        PERFORM pg_notify('beacon_events', v_last::text);  -- delivered at commit
    END IF;
END $$;

-- The single append of 0001, kept for SQL callers and the docs: a batch of one, with a version
-- conflict raised as error B0409 as before. One code path for both.
CREATE OR REPLACE FUNCTION beacon_append(
    p_stream_id uuid, p_stream_type text, p_expected_version bigint,
    p_topics text[], p_states bytea[],
    p_recorded_at timestamptz, p_actor jsonb, p_request_id text,
    p_idempotency_scope text, p_idempotency_key text
) RETURNS TABLE (stream_id uuid, event_position bigint, replayed boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_outcome record;
BEGIN
    FOR v_outcome IN
        SELECT * FROM beacon_append_many(
            ARRAY[p_stream_id], ARRAY[p_stream_type], ARRAY[p_expected_version],
            ARRAY[coalesce(array_length(p_topics, 1), 0)], p_topics, p_states,
            ARRAY[p_recorded_at], ARRAY[p_actor], ARRAY[p_request_id],
            ARRAY[p_idempotency_scope], ARRAY[p_idempotency_key])
    LOOP
        IF v_outcome.conflict THEN
            RAISE EXCEPTION 'stream % is at version %, expected %', p_stream_id,
                (SELECT coalesce(max(e.originator_version), 0) FROM beacon_events e
                  WHERE e.originator_id = p_stream_id),
                p_expected_version
                USING ERRCODE = 'B0409';
        END IF;
        RETURN QUERY SELECT v_outcome.stream_id, v_outcome.event_position, v_outcome.replayed;
    END LOOP;
END $$;
