-- 021: `sessions`, one row per closed gap-based session (episode) of an agent from
-- claw.sessions.v1 (streams.sessions). event_id is uuid5 of (agent, session start), so a
-- re-emission after a worker crash collapses into one row (ReplacingMergeTree, final=1).
CREATE TABLE IF NOT EXISTS sessions
(
    event_id UUID,
    agent_id LowCardinality(String),
    session_id String,
    trace_id String,
    parent_id Nullable(String),
    event_time DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    seq UInt64,
    producer LowCardinality(String),
    producer_version LowCardinality(String),
    session_start DateTime64(3, 'UTC'),
    session_end DateTime64(3, 'UTC'),
    duration_ms UInt64,
    events UInt64,
    steps UInt64,
    successes UInt64,
    failures UInt64,
    success Bool,
    apps Array(String),
    kafka_topic LowCardinality(String),
    kafka_partition UInt16,
    kafka_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(session_start)
ORDER BY (agent_id, session_start, event_id)
TTL toDateTime(inserted_at) + INTERVAL 400 DAY
SETTINGS ttl_only_drop_parts = 1;
