"""The topic table: names, schemas, partitions, retention and cleanup policy, in one place.

Every topic is keyed by `agent_id` so per-agent order holds. `clawstream topics` creates
exactly this table; producers, processors and the sink look names up here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DAY_MS = 24 * 3600 * 1000
TIMESTAMP_TYPE = "message.timestamp.type"


@dataclass(frozen=True)
class TopicSpec:
    """One Kafka topic and the contract of what rides on it."""

    name: str
    schema: str | None  # full name of the Avro record carried, None for raw/forwarded bytes
    partitions: int = 6
    retention_ms: int = 7 * DAY_MS
    cleanup_policy: str = "delete"
    #: event (from agents) | derived (from processors) | dlq | side | control (the
    #: gateway's token registry)
    role: str = "event"
    extra_config: dict[str, str] = field(default_factory=dict)

    def config(self) -> dict[str, str]:
        """Broker-side topic configuration. Event topics take the broker's clock as the
        message timestamp (`LogAppendTime`): it is the arrival time agents' event times are
        checked against, and an agent's own clock is not to be trusted for it."""
        cfg = {"cleanup.policy": self.cleanup_policy, **self.extra_config}
        if self.role == "event":
            cfg[TIMESTAMP_TYPE] = "LogAppendTime"
        if self.cleanup_policy == "delete":
            cfg["retention.ms"] = str(self.retention_ms)
        return cfg


FRAMES = "claw.frames.v1"
DETECTIONS = "claw.detections.v1"
PLANS = "claw.plans.v1"
ACTIONS = "claw.actions.v1"
OUTCOMES = "claw.outcomes.v1"
STATE_DELTAS = "claw.state-deltas.v1"
HEARTBEATS = "claw.heartbeats.v1"
AGGREGATES = "claw.aggregates.v1"
AGENT_STATE = "claw.agent-state.v1"
ALERTS = "claw.alerts.v1"
SESSIONS = "claw.sessions.v1"
LATE = "claw.late.v1"
DLQ = "claw.dlq.v1"
#: the ingest gateway's tokens: one JSON record per token id (its hash and agent binding,
#: never the token), compacted, read whole by every gateway replica
GATEWAY_TOKENS = "claw.gateway-tokens.v1"

TOPICS: dict[str, TopicSpec] = {
    t.name: t
    for t in (
        TopicSpec(FRAMES, "clawstream.v1.ScreenFrame", retention_ms=1 * DAY_MS),
        TopicSpec(DETECTIONS, "clawstream.v1.Detection", retention_ms=1 * DAY_MS),
        TopicSpec(PLANS, "clawstream.v1.Plan"),
        TopicSpec(ACTIONS, "clawstream.v1.Action"),
        TopicSpec(OUTCOMES, "clawstream.v1.Outcome"),
        TopicSpec(STATE_DELTAS, "clawstream.v1.StateDelta"),
        TopicSpec(HEARTBEATS, "clawstream.v1.Heartbeat", retention_ms=1 * DAY_MS),
        TopicSpec(AGGREGATES, "clawstream.v1.WindowAggregate", role="derived"),
        TopicSpec(
            AGENT_STATE,
            "clawstream.v1.AgentState",
            cleanup_policy="compact",
            role="derived",
            extra_config={"min.cleanable.dirty.ratio": "0.1", "segment.ms": str(3600 * 1000)},
        ),
        TopicSpec(ALERTS, "clawstream.v1.Alert", retention_ms=30 * DAY_MS, role="derived"),
        TopicSpec(SESSIONS, "clawstream.v1.Session", role="derived"),
        TopicSpec(LATE, None, role="side"),
        TopicSpec(DLQ, None, retention_ms=30 * DAY_MS, role="dlq"),
        TopicSpec(GATEWAY_TOKENS, None, partitions=1, cleanup_policy="compact", role="control",
                  extra_config={"min.cleanable.dirty.ratio": "0.1"}),
    )
}

#: Topics agents write to (what the sink and the processors read as raw events).
EVENT_TOPICS: tuple[str, ...] = tuple(n for n, t in TOPICS.items() if t.role == "event")
#: Topics the stream processors write to.
DERIVED_TOPICS: tuple[str, ...] = tuple(n for n, t in TOPICS.items() if t.role == "derived")

#: Short event-type names, as stored in ClickHouse and used on the CLI.
EVENT_TYPE_BY_SCHEMA: dict[str, str] = {
    "clawstream.v1.ScreenFrame": "frame",
    "clawstream.v1.Detection": "detection",
    "clawstream.v1.Plan": "plan",
    "clawstream.v1.Action": "action",
    "clawstream.v1.Outcome": "outcome",
    "clawstream.v1.StateDelta": "state_delta",
    "clawstream.v1.Heartbeat": "heartbeat",
    "clawstream.v1.WindowAggregate": "aggregate",
    "clawstream.v1.AgentState": "agent_state",
    "clawstream.v1.Alert": "alert",
    "clawstream.v1.Session": "session",
}
TOPIC_BY_SCHEMA: dict[str, str] = {t.schema: n for n, t in TOPICS.items() if t.schema}


def partition_for(agent_id: str, partitions: int) -> int:
    """The partition of an agent's events: Kafka's murmur2 partitioner on the key, as the
    SDK (librdkafka `murmur2_random`) and faust place them. Pure, for reasoning about which
    agents share a partition (and so a watermark)."""
    data = agent_id.encode()
    m, h = 0x5BD1E995, (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    n4 = len(data) // 4
    for i in range(n4):
        k = (int.from_bytes(data[4 * i:4 * i + 4], "little") * m) & 0xFFFFFFFF
        k = ((k ^ (k >> 24)) * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[4 * n4:]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h = ((h ^ tail[0]) * m) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions
