-- 002: `events`, the envelope of every raw event with its type ("events per type", agent
-- timelines across types). FINAL inside, so it never counts a redelivered event twice.
-- Derived types (aggregate, agent_state, alert, session) live in their own tables, added by
-- later migrations; a later migration may CREATE OR REPLACE this view to add them.
CREATE VIEW IF NOT EXISTS events AS
SELECT 'frame' AS event_type, event_id, agent_id, session_id, trace_id, parent_id, event_time,
       seq, producer, kafka_topic, kafka_partition, kafka_offset, inserted_at
FROM frames FINAL
UNION ALL
SELECT 'detection', event_id, agent_id, session_id, trace_id, parent_id, event_time,
       seq, producer, kafka_topic, kafka_partition, kafka_offset, inserted_at
FROM detection_frames FINAL
UNION ALL
SELECT 'plan', event_id, agent_id, session_id, trace_id, parent_id, event_time,
       seq, producer, kafka_topic, kafka_partition, kafka_offset, inserted_at
FROM plans FINAL
UNION ALL
SELECT 'action', event_id, agent_id, session_id, trace_id, parent_id, event_time,
       seq, producer, kafka_topic, kafka_partition, kafka_offset, inserted_at
FROM actions FINAL
UNION ALL
SELECT 'outcome', event_id, agent_id, session_id, trace_id, parent_id, event_time,
       seq, producer, kafka_topic, kafka_partition, kafka_offset, inserted_at
FROM outcomes FINAL
UNION ALL
SELECT 'heartbeat', event_id, agent_id, session_id, trace_id, parent_id, event_time,
       seq, producer, kafka_topic, kafka_partition, kafka_offset, inserted_at
FROM heartbeats FINAL
UNION ALL
SELECT 'state_delta', event_id, agent_id, session_id, trace_id, parent_id, event_time,
       seq, producer, kafka_topic, kafka_partition, kafka_offset, inserted_at
FROM state_deltas FINAL;
