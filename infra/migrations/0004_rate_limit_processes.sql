-- The heartbeat table through which API processes share each key's rate limit
-- (docs/adr/0005-rate-limits-across-processes.md, api/rate_share.py). Every API process upserts its row every
-- few seconds with each busy key's demand at that process and reads the others'. The rows are worthless a few
-- seconds after they are written, so the table is UNLOGGED: no WAL per heartbeat, and after a crash or a
-- failover it starts empty and refills within one heartbeat.
CREATE UNLOGGED TABLE IF NOT EXISTS beacon_rate_limit_processes (
    process_id text PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at timestamptz NOT NULL,
    live_processes integer NOT NULL,  -- how many live processes its current shares were computed for
    demand jsonb NOT NULL             -- limit name -> API key id -> requests per second at this process
);
