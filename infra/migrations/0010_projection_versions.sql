-- Projection versions (docs/adr/0006-projection-versions.md, projections/versions.py, projections/blue_green.py).
--
-- beacon_projection_versions: every version of a projection that exists whole in the database, with the schema
-- and tables it lives in. A version in `public` (version 1, the layout before versions) is recorded by each
-- process that runs its code; a later version is recorded in the transaction that moves its shadow build in,
-- so a row means "complete". A process of later code, which knows only the new version, drops an old one
-- from this row once no live process reads it.
CREATE TABLE IF NOT EXISTS beacon_projection_versions (
    key         text        PRIMARY KEY,  -- checkpoint name: the projection's name, or name@vN for N >= 2
    name        text        NOT NULL,
    version     integer     NOT NULL,
    schema_name text        NOT NULL,
    tables      text[]      NOT NULL,
    built_at    timestamptz NOT NULL DEFAULT now()
);

-- beacon_projection_readers: one heartbeat per running process (HTTP process or worker), naming the projection
-- versions its code reads. Logged (unlike the rate-limit heartbeats): after a crash an empty table would let a
-- worker drop a version that processes still read before their next heartbeat.
CREATE TABLE IF NOT EXISTS beacon_projection_readers (
    process   text        PRIMARY KEY,
    keys      text[]      NOT NULL,
    last_seen timestamptz NOT NULL DEFAULT now()
);
