-- 060: `principal` on every raw event table: who sent the event. The ingest gateway stamps
-- its token's principal (`token:<id>`) on each record it writes (header
-- `clawstream.principal`, schemas/headers.py); the sink keeps it here, an audit trail of who
-- sent what. Empty for events written straight to Kafka.
-- The `events` view gets it too (CREATE OR REPLACE: same columns as 002, plus principal).
ALTER TABLE frames ADD COLUMN IF NOT EXISTS principal LowCardinality(String) DEFAULT '';
ALTER TABLE detection_frames ADD COLUMN IF NOT EXISTS principal LowCardinality(String) DEFAULT '';
ALTER TABLE detections ADD COLUMN IF NOT EXISTS principal LowCardinality(String) DEFAULT '';
ALTER TABLE plans ADD COLUMN IF NOT EXISTS principal LowCardinality(String) DEFAULT '';
ALTER TABLE actions ADD COLUMN IF NOT EXISTS principal LowCardinality(String) DEFAULT '';
ALTER TABLE outcomes ADD COLUMN IF NOT EXISTS principal LowCardinality(String) DEFAULT '';
ALTER TABLE heartbeats ADD COLUMN IF NOT EXISTS principal LowCardinality(String) DEFAULT '';
ALTER TABLE state_deltas ADD COLUMN IF NOT EXISTS principal LowCardinality(String) DEFAULT '';

CREATE OR REPLACE VIEW events AS
SELECT 'frame' AS event_type, event_id, agent_id, session_id, trace_id, parent_id, event_time,
       seq, producer, kafka_topic, kafka_partition, kafka_offset, inserted_at, principal
FROM frames FINAL
UNION ALL
SELECT 'detection', event_id, agent_id, session_id, trace_id, parent_id, event_time,
       seq, producer, kafka_topic, kafka_partition, kafka_offset, inserted_at, principal
FROM detection_frames FINAL
UNION ALL
SELECT 'plan', event_id, agent_id, session_id, trace_id, parent_id, event_time,
       seq, producer, kafka_topic, kafka_partition, kafka_offset, inserted_at, principal
FROM plans FINAL
UNION ALL
SELECT 'action', event_id, agent_id, session_id, trace_id, parent_id, event_time,
       seq, producer, kafka_topic, kafka_partition, kafka_offset, inserted_at, principal
FROM actions FINAL
UNION ALL
SELECT 'outcome', event_id, agent_id, session_id, trace_id, parent_id, event_time,
       seq, producer, kafka_topic, kafka_partition, kafka_offset, inserted_at, principal
FROM outcomes FINAL
UNION ALL
SELECT 'heartbeat', event_id, agent_id, session_id, trace_id, parent_id, event_time,
       seq, producer, kafka_topic, kafka_partition, kafka_offset, inserted_at, principal
FROM heartbeats FINAL
UNION ALL
SELECT 'state_delta', event_id, agent_id, session_id, trace_id, parent_id, event_time,
       seq, producer, kafka_topic, kafka_partition, kafka_offset, inserted_at, principal
FROM state_deltas FINAL;
