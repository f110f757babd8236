-- 050: per-minute rollups, kept by materialized views, so dashboards and canned queries never
-- scan raw events. AggregatingMergeTree holds partial aggregate states (countState,
-- sumState, quantilesState, uniqState ...) per (minute, dimensions); readers merge them with
-- the -Merge combinators, e.g.
--   SELECT app, countMerge(outcomes) AS n, countMerge(successes) / n AS success_rate,
--          quantilesMerge(0.5, 0.9, 0.95, 0.99)(duration_q) AS q
--   FROM outcomes_1m WHERE minute >= now() - INTERVAL 1 HOUR GROUP BY app
--
-- Dedup guarantee (how the rollups agree with the raw tables): a materialized view sees each
-- INSERTED block, not the deduplicated table, so a row counts in a rollup once per time it is
-- inserted. The sink never inserts a Kafka offset twice in the normal crash/redelivery case:
-- on partition assignment it seeks past the highest offset already stored in ClickHouse
-- (consumers/sink.py, resume-from-ClickHouse; it covers a redelivery of up to
-- sink_batch_rows messages per partition, i.e. any crash between insert and commit). So a
-- redelivered batch is not counted twice, here or in the raw tables (tested in
-- tests/test_analytics_rollups.py). What the rollups do NOT absorb: the same event_id arriving
-- at a different Kafka offset (a producer-side duplicate) - the raw tables collapse it with
-- FINAL, the rollups count it twice. The per-event views (agent timeline, episode steps,
-- failing elements) read the raw tables with FINAL and are always exact.
--
-- Quantile states are reservoir samples (quantilesState: exact up to 8192 values per merged
-- group, a uniform sample beyond); uniqState is HyperLogLog-like (about 2% error).
-- Everything here is plain ClickHouse SQL that runs on chdb and on a server.

CREATE TABLE IF NOT EXISTS outcomes_1m
(
    minute DateTime('UTC'),
    app LowCardinality(String),
    action_kind LowCardinality(String),
    outcomes AggregateFunction(count),
    successes AggregateFunction(countIf, UInt8),
    failures AggregateFunction(countIf, UInt8),
    timeouts AggregateFunction(countIf, UInt8),
    lost AggregateFunction(countIf, UInt8),
    duration_sum AggregateFunction(sum, Float64),
    duration_max AggregateFunction(max, Float64),
    duration_q AggregateFunction(quantiles(0.5, 0.9, 0.95, 0.99), Float64),
    agents AggregateFunction(uniq, String)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, app, action_kind)
TTL minute + INTERVAL 400 DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS outcomes_1m_mv TO outcomes_1m AS
SELECT
    toStartOfMinute(event_time) AS minute,
    app,
    action_kind,
    countState() AS outcomes,
    countIfState(status = 'success') AS successes,
    countIfState(status != 'success' AND status != 'skipped') AS failures,
    countIfState(status = 'timeout') AS timeouts,
    countIfState(status = 'lost') AS lost,
    sumState(duration_ms) AS duration_sum,
    maxState(duration_ms) AS duration_max,
    quantilesState(0.5, 0.9, 0.95, 0.99)(duration_ms) AS duration_q,
    uniqState(toString(agent_id)) AS agents
FROM outcomes
GROUP BY minute, app, action_kind;

-- Events of every raw type per minute and app (throughput, active agents). Heartbeats and
-- state deltas carry no app: ''.
CREATE TABLE IF NOT EXISTS events_1m
(
    minute DateTime('UTC'),
    event_type LowCardinality(String),
    app LowCardinality(String),
    events AggregateFunction(count),
    agents AggregateFunction(uniq, String)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, event_type, app)
TTL minute + INTERVAL 400 DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS events_1m_frames_mv TO events_1m AS
SELECT toStartOfMinute(event_time) AS minute, 'frame' AS event_type, app,
       countState() AS events, uniqState(toString(agent_id)) AS agents
FROM frames GROUP BY minute, app;

CREATE MATERIALIZED VIEW IF NOT EXISTS events_1m_detections_mv TO events_1m AS
SELECT toStartOfMinute(event_time) AS minute, 'detection' AS event_type, app,
       countState() AS events, uniqState(toString(agent_id)) AS agents
FROM detection_frames GROUP BY minute, app;

CREATE MATERIALIZED VIEW IF NOT EXISTS events_1m_plans_mv TO events_1m AS
SELECT toStartOfMinute(event_time) AS minute, 'plan' AS event_type, app,
       countState() AS events, uniqState(toString(agent_id)) AS agents
FROM plans GROUP BY minute, app;

CREATE MATERIALIZED VIEW IF NOT EXISTS events_1m_actions_mv TO events_1m AS
SELECT toStartOfMinute(event_time) AS minute, 'action' AS event_type, app,
       countState() AS events, uniqState(toString(agent_id)) AS agents
FROM actions GROUP BY minute, app;

CREATE MATERIALIZED VIEW IF NOT EXISTS events_1m_outcomes_mv TO events_1m AS
SELECT toStartOfMinute(event_time) AS minute, 'outcome' AS event_type, app,
       countState() AS events, uniqState(toString(agent_id)) AS agents
FROM outcomes GROUP BY minute, app;

CREATE MATERIALIZED VIEW IF NOT EXISTS events_1m_heartbeats_mv TO events_1m AS
SELECT toStartOfMinute(event_time) AS minute, 'heartbeat' AS event_type, '' AS app,
       countState() AS events, uniqState(toString(agent_id)) AS agents
FROM heartbeats GROUP BY minute;

CREATE MATERIALIZED VIEW IF NOT EXISTS events_1m_state_deltas_mv TO events_1m AS
SELECT toStartOfMinute(event_time) AS minute, 'state_delta' AS event_type, '' AS app,
       countState() AS events, uniqState(toString(agent_id)) AS agents
FROM state_deltas GROUP BY minute;

-- Perception quality per minute, app and element kind (one row per detected UI element).
CREATE TABLE IF NOT EXISTS detections_1m
(
    minute DateTime('UTC'),
    app LowCardinality(String),
    element_kind LowCardinality(String),
    elements AggregateFunction(count),
    interactable AggregateFunction(countIf, UInt8),
    with_text AggregateFunction(countIf, UInt8),
    confidence_avg AggregateFunction(avg, Float32),
    ocr_confidence_avg AggregateFunction(avg, Nullable(Float32)),
    confidence_q AggregateFunction(quantiles(0.05, 0.5), Float32)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, app, element_kind)
TTL minute + INTERVAL 400 DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS detections_1m_mv TO detections_1m AS
SELECT
    toStartOfMinute(event_time) AS minute,
    app,
    element_kind,
    countState() AS elements,
    countIfState(toUInt8(interactable)) AS interactable,
    countIfState(toUInt8(ifNull(text, '') != '')) AS with_text,
    avgState(confidence) AS confidence_avg,
    avgState(ocr_confidence) AS ocr_confidence_avg,
    quantilesState(0.05, 0.5)(confidence) AS confidence_q
FROM detections
GROUP BY minute, app, element_kind;

-- Backfill: views only see inserts made after they exist. When a rollup is still empty and
-- the raw table is not (a database created before this migration), fill it once from the
-- deduplicated raw rows. Migrations run before the sink consumes, so nothing races this.
INSERT INTO outcomes_1m
SELECT toStartOfMinute(event_time) AS minute, app, action_kind, countState(),
       countIfState(status = 'success'), countIfState(status != 'success' AND status != 'skipped'),
       countIfState(status = 'timeout'), countIfState(status = 'lost'), sumState(duration_ms),
       maxState(duration_ms), quantilesState(0.5, 0.9, 0.95, 0.99)(duration_ms),
       uniqState(toString(agent_id))
FROM outcomes FINAL
WHERE (SELECT count() FROM outcomes_1m) = 0
GROUP BY minute, app, action_kind;

INSERT INTO detections_1m
SELECT toStartOfMinute(event_time) AS minute, app, element_kind, countState(),
       countIfState(toUInt8(interactable)), countIfState(toUInt8(ifNull(text, '') != '')),
       avgState(confidence), avgState(ocr_confidence), quantilesState(0.05, 0.5)(confidence)
FROM detections FINAL
WHERE (SELECT count() FROM detections_1m) = 0
GROUP BY minute, app, element_kind;

INSERT INTO events_1m
SELECT toStartOfMinute(event_time) AS minute, event_type, app, countState(),
       uniqState(toString(agent_id))
FROM
(
    SELECT event_time, 'frame' AS event_type, app, agent_id FROM frames FINAL
    UNION ALL SELECT event_time, 'detection', app, agent_id FROM detection_frames FINAL
    UNION ALL SELECT event_time, 'plan', app, agent_id FROM plans FINAL
    UNION ALL SELECT event_time, 'action', app, agent_id FROM actions FINAL
    UNION ALL SELECT event_time, 'outcome', app, agent_id FROM outcomes FINAL
    UNION ALL SELECT event_time, 'heartbeat', '', agent_id FROM heartbeats FINAL
    UNION ALL SELECT event_time, 'state_delta', '', agent_id FROM state_deltas FINAL
)
WHERE (SELECT count() FROM events_1m) = 0
GROUP BY minute, event_type, app;
