-- Indexes that make reads of one stream, and reads from an instant, cost what they return rather than
-- what the log weighs (docs/adr/0004-time-travel-index-and-snapshots.md):
--
-- * (originator_id, notification_id): one stream's events in commit order. The audit feed's `stream_id`
--   filter walks it in keyset pages, and time travel reads a component's name as of a position with it.
--   The primary key (originator_id, originator_version) orders a stream by version, which the planner
--   cannot use for `ORDER BY notification_id`.
-- * (recorded_at, notification_id): the last position recorded at or before an instant in one probe
--   (`ORDER BY recorded_at DESC, notification_id DESC LIMIT 1`), which turns `as_of`, `since` and
--   `until` into position bounds. recorded_at never goes backwards in log order (beacon_append), so a
--   time range is a position range.
CREATE INDEX IF NOT EXISTS beacon_events_stream_position_idx ON beacon_events (originator_id, notification_id);
CREATE INDEX IF NOT EXISTS beacon_events_recorded_position_idx ON beacon_events (recorded_at, notification_id);
