-- Subscribers' contacts, outside the append-only log (docs/architecture.md#subscribers, infra/contacts.py).
--
-- * beacon_subscriber_keys: one AES-256-GCM key per subscriber, and the current contact ciphertext (the same
--   bytes the log's last Created/SecretRotated event carries), so a sender reads contacts without replaying
--   streams. Erasure deletes the row: the ciphertext left in the log becomes noise (crypto-shredding).
-- * beacon_subscriber_lookup: the blind index — an HMAC of the normalised address under BEACON_SECRET_KEY —
--   of the live subscriber holding each (page, channel, contact), so duplicates and imports are found
--   without decrypting anything. It never holds the address itself.
-- * a partial index on the log's erasures, so every process can re-delete the keys of every erased
--   subscriber at start (a restored backup stays erased) without reading the whole log.
CREATE TABLE IF NOT EXISTS beacon_subscriber_keys (
    subscriber_id uuid PRIMARY KEY,
    key bytea NOT NULL,
    contact text
);
CREATE TABLE IF NOT EXISTS beacon_subscriber_lookup (
    status_page_id uuid NOT NULL,
    channel text NOT NULL,
    blind_index bytea NOT NULL,
    subscriber_id uuid NOT NULL,
    PRIMARY KEY (status_page_id, channel, blind_index)
);
CREATE INDEX IF NOT EXISTS beacon_subscriber_lookup_subscriber_idx ON beacon_subscriber_lookup (subscriber_id);
CREATE INDEX IF NOT EXISTS beacon_events_subscriber_erased_idx ON beacon_events (originator_id)
    WHERE topic = 'beacon.Subscriber.Erased';
