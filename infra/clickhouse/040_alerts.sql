-- 040: `alerts`, one row per Alert lifecycle event from claw.alerts.v1 (pending, firing,
-- renotify, resolved, inactive, circuit-breaker transition). event_ids are deterministic
-- (uuid5 of fingerprint + incident + state), so a worker replay after a crash or a sink
-- redelivery collapses into one row: ReplacingMergeTree with event_id in the sorting key,
-- read with final=1. Ordered by fingerprint so an incident's history reads few granules.
CREATE TABLE IF NOT EXISTS alerts
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
    fingerprint String,
    incident_id String,
    rule LowCardinality(String),
    rule_kind LowCardinality(String),
    state LowCardinality(String),
    severity LowCardinality(String),
    labels Map(String, String),
    annotations Map(String, String),
    value Nullable(Float64),
    starts_at DateTime64(3, 'UTC'),
    ends_at Nullable(DateTime64(3, 'UTC')),
    transition LowCardinality(Nullable(String)),
    kafka_topic LowCardinality(String),
    kafka_partition UInt16,
    kafka_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_incident incident_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_state state TYPE set(16) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (fingerprint, event_time, event_id)
TTL toDateTime(inserted_at) + INTERVAL 365 DAY
SETTINGS ttl_only_drop_parts = 1;
