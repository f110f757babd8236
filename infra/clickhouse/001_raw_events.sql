-- 001: raw event tables, one per event type (detections: one row per UI element plus one
-- row per detection event in detection_frames).
--
-- Every table starts with the shared envelope, then the typed columns, then ingest metadata
-- (Kafka topic/partition/offset and insert time). Choices, after the OTel Collector's
-- ClickHouse exporter and Langfuse's migrations:
-- * ReplacingMergeTree(inserted_at) with event_id last in the sorting key: a redelivered event
--   (crash between insert and offset commit, producer retry) collapses into one row. Readers
--   query with the setting final=1 (consumers.clickhouse.query does) or write FINAL.
-- * PARTITION BY day of event time, so FINAL works per partition and old days drop cheaply.
-- * TTL on inserted_at (ingest time), whole parts only: retention counts from when we stored
--   an event, so replaying old events (or test fixtures with old timestamps) never vanishes
--   on arrival. Frames, detections and heartbeats keep 30 days, the rest 180.
-- * ORDER BY (agent_id, event_time, event_id): agent timelines and time ranges read few
--   granules; skip indexes serve session (episode) and app filters.
-- * kafka_topic/kafka_partition/kafka_offset let the sink resume exactly where the last
--   insert stopped, even if it crashed before committing its offsets.
-- Idempotent: every statement is IF NOT EXISTS, so a re-run is harmless.

CREATE TABLE IF NOT EXISTS frames
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
    app LowCardinality(String),
    width Int32,
    height Int32,
    phash String,
    change_ratio Float32,
    changed_regions Array(Tuple(x Int32, y Int32, w Int32, h Int32)),
    thumbnail String CODEC(ZSTD(3)),
    thumbnail_format LowCardinality(String),
    thumb_width Int32,
    thumb_height Int32,
    image_uri Nullable(String),
    image_sha256 Nullable(String),
    redactions Int32,
    kafka_topic LowCardinality(String),
    kafka_partition UInt16,
    kafka_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_session session_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_app app TYPE set(256) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toDate(event_time)
ORDER BY (agent_id, event_time, event_id)
TTL toDateTime(inserted_at) + INTERVAL 30 DAY
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS detection_frames
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
    app LowCardinality(String),
    frame_id String,
    elements UInt32,
    interactable_elements UInt32,
    duration_ms Float32,
    kafka_topic LowCardinality(String),
    kafka_partition UInt16,
    kafka_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_session session_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_frame frame_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toDate(event_time)
ORDER BY (agent_id, event_time, event_id)
TTL toDateTime(inserted_at) + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS detections
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
    app LowCardinality(String),
    frame_id String,
    element_index UInt16,
    element_id String,
    element_kind LowCardinality(String),
    x Int32,
    y Int32,
    w Int32,
    h Int32,
    text Nullable(String),
    confidence Float32,
    ocr_confidence Nullable(Float32),
    source LowCardinality(String),
    interactable Bool,
    kafka_topic LowCardinality(String),
    kafka_partition UInt16,
    kafka_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_session session_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_frame frame_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_app app TYPE set(256) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toDate(event_time)
ORDER BY (agent_id, event_time, event_id, element_index)
TTL toDateTime(inserted_at) + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS plans
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
    app LowCardinality(String),
    goal String,
    planner LowCardinality(String),
    step_count UInt16,
    step_index Array(Int32),
    step_description Array(String),
    step_action_kind Array(LowCardinality(String)),
    step_target Array(Nullable(String)),
    kafka_topic LowCardinality(String),
    kafka_partition UInt16,
    kafka_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_session session_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_app app TYPE set(256) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toDate(event_time)
ORDER BY (agent_id, event_time, event_id)
TTL toDateTime(inserted_at) + INTERVAL 180 DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS actions
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
    app LowCardinality(String),
    plan_id Nullable(String),
    step_index Nullable(Int32),
    kind LowCardinality(String),
    target_label Nullable(String),
    target_element_id Nullable(String),
    target_element_kind LowCardinality(Nullable(String)),
    target_x Nullable(Int32),
    target_y Nullable(Int32),
    target_bbox_x Nullable(Int32),
    target_bbox_y Nullable(Int32),
    target_bbox_w Nullable(Int32),
    target_bbox_h Nullable(Int32),
    params Map(String, String),
    executor LowCardinality(String),
    kafka_topic LowCardinality(String),
    kafka_partition UInt16,
    kafka_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_session session_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_app app TYPE set(256) GRANULARITY 4,
    INDEX idx_kind kind TYPE set(64) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toDate(event_time)
ORDER BY (agent_id, event_time, event_id)
TTL toDateTime(inserted_at) + INTERVAL 180 DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS outcomes
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
    action_id String,
    app LowCardinality(String),
    action_kind LowCardinality(String),
    status LowCardinality(String),
    duration_ms Float64,
    error Nullable(String),
    error_kind LowCardinality(Nullable(String)),
    verification_method LowCardinality(Nullable(String)),
    verification_expected Nullable(String),
    verification_observed Nullable(String),
    verification_passed Nullable(Bool),
    executor LowCardinality(String),
    kafka_topic LowCardinality(String),
    kafka_partition UInt16,
    kafka_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_session session_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_action action_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_app app TYPE set(256) GRANULARITY 4,
    INDEX idx_status status TYPE set(16) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toDate(event_time)
ORDER BY (agent_id, event_time, event_id)
TTL toDateTime(inserted_at) + INTERVAL 180 DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS heartbeats
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
    status LowCardinality(String),
    uptime_s Float64,
    cpu_percent Nullable(Float32),
    rss_bytes Nullable(Int64),
    queue_depth Int32,
    spool_depth Int64,
    kafka_topic LowCardinality(String),
    kafka_partition UInt16,
    kafka_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toDate(event_time)
ORDER BY (agent_id, event_time, event_id)
TTL toDateTime(inserted_at) + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS state_deltas
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
    replica_id LowCardinality(String),
    crdt_type LowCardinality(String),
    key LowCardinality(String),
    payload String CODEC(ZSTD(3)),
    full_state Bool,
    kafka_topic LowCardinality(String),
    kafka_partition UInt16,
    kafka_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toDate(event_time)
ORDER BY (agent_id, event_time, event_id)
TTL toDateTime(inserted_at) + INTERVAL 180 DAY
SETTINGS ttl_only_drop_parts = 1;
