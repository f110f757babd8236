-- 020: `window_aggregates`, one row per closed event-time window from claw.aggregates.v1
-- (streams.event_time). scope_* are '*' for fleet-wide rollups; scope_action_kind is ''
-- for events without an action kind (frames, detections, heartbeats, plans).
-- Each window is emitted once; at least once (the default guarantee), after a worker crash it
-- may be emitted again with the same deterministic event_id (uuid5 of the window key), its
-- figures the replay's (README: Processing guarantees). The sorting key IS the window key, so
-- ReplacingMergeTree keeps one row per window, the last copy (and collapses sink
-- redeliveries): read with FINAL (final=1).
-- latency_sketch is the DDSketch (1% relative error) in streams.windowing.sketch's encoding;
-- decode and merge it to get percentiles over several windows.
CREATE TABLE IF NOT EXISTS window_aggregates
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
    window_kind LowCardinality(String),
    window_size_ms UInt32,
    window_step_ms UInt32,
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    scope_agent LowCardinality(String),
    scope_app LowCardinality(String),
    scope_action_kind LowCardinality(String),
    counts Map(LowCardinality(String), UInt64),
    outcomes Map(LowCardinality(String), UInt64),
    total UInt64,
    success_rate Nullable(Float64),
    latency_p50_ms Nullable(Float64),
    latency_p95_ms Nullable(Float64),
    latency_p99_ms Nullable(Float64),
    latency_sketch String CODEC(ZSTD(1)),
    detections UInt64,
    frames UInt64,
    detection_events UInt64,
    detections_per_frame Nullable(Float64),
    ocr_confidence_mean Nullable(Float64),
    frame_change_ratio_mean Nullable(Float64),
    active_agents UInt32,
    lost_outcomes UInt64,
    watermark DateTime64(3, 'UTC'),
    kafka_topic LowCardinality(String),
    kafka_partition UInt16,
    kafka_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_size_ms, window_step_ms, scope_agent, scope_app, scope_action_kind, window_start)
TTL toDateTime(inserted_at) + INTERVAL 400 DAY
SETTINGS ttl_only_drop_parts = 1;
