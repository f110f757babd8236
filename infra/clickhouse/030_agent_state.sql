-- 030: `agent_state`, the merged CRDT state of every agent from claw.agent-state.v1 (emitted by
-- streams.state_merge), one row per agent after merges: ReplacingMergeTree(version) ORDER BY
-- agent_id keeps the highest snapshot version per agent. Versions never go backwards for an
-- agent (the merger bumps them only when the merged state grows, deterministically under
-- replay), and a re-emitted snapshot has the same version and content, so a redelivery or a
-- worker crash never shows an older state. Read with FINAL (final=1). agent_id '*' is the
-- fleet-wide rollup. `state` holds the full merged CRDTs (streams.crdt StateBundle, Avro).
CREATE TABLE IF NOT EXISTS agent_state
(
    event_id UUID,
    agent_id String,
    session_id String,
    trace_id String,
    parent_id Nullable(String),
    event_time DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    seq UInt64,
    producer LowCardinality(String),
    producer_version LowCardinality(String),
    version UInt64,
    replicas Array(String),
    actions_total Int64,
    error_budget Int64,
    current_task Nullable(String),
    status LowCardinality(Nullable(String)),
    ui_memory Map(String, Array(String)),
    settings Map(String, String),
    state String CODEC(ZSTD(3)),
    kafka_topic LowCardinality(String),
    kafka_partition UInt16,
    kafka_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY agent_id;
