-- 022: `late_events`, one row per event that reached the worker after the watermark had
-- closed at least one of its windows (claw.late.v1: the original event bytes, with the missed
-- windows in the headers clawstream.late.*). Late counts per window:
--   SELECT window, count() FROM late_events ARRAY JOIN missed_windows AS window GROUP BY window
-- event_id is the original event's id, so a re-sent late event collapses into one row.
CREATE TABLE IF NOT EXISTS late_events
(
    event_id UUID,
    agent_id LowCardinality(String),
    event_type LowCardinality(String),
    event_time DateTime64(3, 'UTC'),
    watermark DateTime64(3, 'UTC'),
    lateness_ms Int64,
    missed_windows Array(String),
    missed_window_starts Array(DateTime64(3, 'UTC')),
    missed_window_ends Array(DateTime64(3, 'UTC')),
    source_topic LowCardinality(String),
    kafka_topic LowCardinality(String),
    kafka_partition UInt16,
    kafka_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (agent_id, event_time, event_id)
TTL toDateTime(inserted_at) + INTERVAL 90 DAY
SETTINGS ttl_only_drop_parts = 1;
