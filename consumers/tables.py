# ruff: noqa: RUF005  (envelope + typed tuple concatenation keeps the column order readable)
"""Event type -> ClickHouse table(s): columns and a pure row function per table.

Pure (no I/O). The sink calls `row(record, topic, partition, offset)` once per decoded message
and appends the result to a per-table list, then inserts column-oriented; row functions build
one flat tuple each (or a list of tuples for `multi` specs, e.g. one row per UI element), in
the order of `columns`. Timestamps stay epoch-millis ints (DateTime64(3) ticks) and event_id
is passed as its 128-bit int, which clickhouse-connect writes without parsing again.

Adding a derived type (aggregate, agent_state, alert, session): write its migration
`infra/clickhouse/NNN_<name>.sql` with the envelope columns (`ENVELOPE_DDL` below), your typed
columns and `KAFKA_DDL`, write a row function starting with `envelope_values(record)` and
ending with `(topic, partition, offset)`, and `register(TableSpec(...), event_type="...")`
at the bottom of this file. The sink picks up every registered type's topic automatically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from schemas.headers import (
    LATE_ARRIVAL,
    LATE_REASON,
    LATE_WATERMARK,
    SOURCE_TOPIC,
    late_windows,
    parse_late_headers,
)

Record = dict[str, Any]
Row = tuple[Any, ...]
RowFunction = Callable[[Record, str, int, int], Any]

ENVELOPE_COLUMNS: tuple[str, ...] = (
    "event_id", "agent_id", "session_id", "trace_id", "parent_id", "event_time", "seq",
    "producer", "producer_version",
)
KAFKA_COLUMNS: tuple[str, ...] = ("kafka_topic", "kafka_partition", "kafka_offset")

#: DDL fragments for migrations of new tables (keep in step with the columns above).
ENVELOPE_DDL = """    event_id UUID,
    agent_id LowCardinality(String),
    session_id String,
    trace_id String,
    parent_id Nullable(String),
    event_time DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    seq UInt64,
    producer LowCardinality(String),
    producer_version LowCardinality(String),"""
KAFKA_DDL = """    kafka_topic LowCardinality(String),
    kafka_partition UInt16,
    kafka_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)"""


class RowError(ValueError):
    """A decoded record that cannot become a row (goes to the DLQ as invalid-record)."""


@dataclass(frozen=True)
class TableSpec:
    """One ClickHouse table fed by one event type.

    `primary` tables hold exactly one row per message; the sink reads their max Kafka offset
    per partition to resume after a crash. `multi` row functions return a list of rows.
    """

    table: str
    columns: tuple[str, ...]
    row: RowFunction
    multi: bool = False
    primary: bool = True
    #: optional fast path (consumers/avroblock.py): one SQL expression per column over the
    #: Avro record as ClickHouse reads it, `{topic}` standing for the topic literal
    select: tuple[str, ...] | None = None
    array_join: str = ""

    def __post_init__(self) -> None:
        if self.select is not None and len(self.select) != len(self.columns):
            raise ValueError(f"{self.table}: {len(self.select)} select expressions for "
                             f"{len(self.columns)} columns")


def event_id_int(event_id: str) -> int:
    """The UUID as a 128-bit int; rejects what ClickHouse's UUID column would reject."""
    if len(event_id) != 36:
        raise RowError(f"event_id {event_id[:60]!r} is not a UUID")
    try:
        return int(event_id.replace("-", ""), 16)
    except ValueError:
        raise RowError(f"event_id {event_id!r} is not a UUID") from None


def envelope_values(record: Record) -> Row:
    """The envelope columns of a record, in `ENVELOPE_COLUMNS` order."""
    e = record["envelope"]
    p = e["producer"]
    return (
        event_id_int(e["event_id"]), e["agent_id"], e["session_id"], e["trace_id"],
        e["parent_id"], e["event_time"], e["seq"], p["name"], p["version"],
    )


def _cols(*typed: str) -> tuple[str, ...]:
    return ENVELOPE_COLUMNS + typed + KAFKA_COLUMNS


#: fast-path expressions for the envelope and Kafka columns (see `TableSpec.select`)
ENVELOPE_SELECT: tuple[str, ...] = (
    "toUUID(envelope.event_id)", "envelope.agent_id", "envelope.session_id",
    "envelope.trace_id", "envelope.parent_id",
    "fromUnixTimestamp64Milli(envelope.event_time, 'UTC')", "toUInt64(envelope.seq)",
    "envelope.producer.name", "envelope.producer.version",
)
KAFKA_SELECT: tuple[str, ...] = ("{topic}", "{partition}", "{offset}")


def _select(*typed: str) -> tuple[str, ...]:
    return ENVELOPE_SELECT + typed + KAFKA_SELECT


# --- raw event types ------------------------------------------------------------------------------


def frame_row(r: Record, topic: str, partition: int, offset: int) -> Row:
    return envelope_values(r) + (
        r["app"], r["width"], r["height"], r["phash"], r["change_ratio"],
        [(b["x"], b["y"], b["w"], b["h"]) for b in r["changed_regions"]],
        r["thumbnail"], r["thumbnail_format"], r["thumb_width"], r["thumb_height"],
        r["image_uri"], r["image_sha256"], r["redactions"],
        topic, partition, offset,
    )


FRAMES = TableSpec("frames", _cols(
    "app", "width", "height", "phash", "change_ratio", "changed_regions", "thumbnail",
    "thumbnail_format", "thumb_width", "thumb_height", "image_uri", "image_sha256", "redactions",
), frame_row, select=_select(
    "app", "width", "height", "phash", "change_ratio", "changed_regions", "thumbnail",
    "thumbnail_format", "thumb_width", "thumb_height", "image_uri", "image_sha256", "redactions",
))


def detection_frame_row(r: Record, topic: str, partition: int, offset: int) -> Row:
    elements = r["elements"]
    return envelope_values(r) + (
        r["app"], r["frame_id"], len(elements), sum(1 for el in elements if el["interactable"]),
        r["duration_ms"], topic, partition, offset,
    )


DETECTION_FRAMES = TableSpec("detection_frames", _cols(
    "app", "frame_id", "elements", "interactable_elements", "duration_ms",
), detection_frame_row, select=_select(
    "app", "frame_id", "toUInt32(length(elements))",
    "toUInt32(arrayCount(e -> e.interactable, elements))", "duration_ms",
))


def detection_rows(r: Record, topic: str, partition: int, offset: int) -> list[Row]:
    env = envelope_values(r)
    app, frame_id = r["app"], r["frame_id"]
    rows = []
    for i, el in enumerate(r["elements"]):
        b = el["bbox"]
        rows.append(env + (
            app, frame_id, i, el["element_id"], el["kind"], b["x"], b["y"], b["w"], b["h"],
            el["text"], el["confidence"], el["ocr_confidence"], el["source"],
            el["interactable"], topic, partition, offset,
        ))
    return rows


DETECTIONS = TableSpec("detections", _cols(
    "app", "frame_id", "element_index", "element_id", "element_kind", "x", "y", "w", "h",
    "text", "confidence", "ocr_confidence", "source", "interactable",
), detection_rows, multi=True, primary=False, select=_select(
    "app", "frame_id", "toUInt16(el_n - 1)", "el.element_id", "el.kind", "el.bbox.x",
    "el.bbox.y", "el.bbox.w", "el.bbox.h", "el.text", "el.confidence", "el.ocr_confidence",
    "el.source", "el.interactable",
), array_join="ARRAY JOIN elements AS el, arrayEnumerate(elements) AS el_n")


def plan_row(r: Record, topic: str, partition: int, offset: int) -> Row:
    steps = r["steps"]
    return envelope_values(r) + (
        r["app"], r["goal"], r["planner"], len(steps),
        [s["index"] for s in steps], [s["description"] for s in steps],
        [s["action_kind"] for s in steps], [s["target"] for s in steps],
        topic, partition, offset,
    )


PLANS = TableSpec("plans", _cols(
    "app", "goal", "planner", "step_count", "step_index", "step_description",
    "step_action_kind", "step_target",
), plan_row, select=_select(
    "app", "goal", "planner", "toUInt16(length(steps))", "arrayMap(s -> s.index, steps)",
    "arrayMap(s -> s.description, steps)", "arrayMap(s -> s.action_kind, steps)",
    "arrayMap(s -> s.target, steps)",
))


def action_row(r: Record, topic: str, partition: int, offset: int) -> Row:
    t = r["target"]
    b = t["bbox"]
    if b is None:
        bx = by = bw = bh = None
    else:
        bx, by, bw, bh = b["x"], b["y"], b["w"], b["h"]
    return envelope_values(r) + (
        r["app"], r["plan_id"], r["step_index"], r["kind"], t["label"], t["element_id"],
        t["element_kind"], t["x"], t["y"], bx, by, bw, bh, r["params"], r["executor"],
        topic, partition, offset,
    )


ACTIONS = TableSpec("actions", _cols(
    "app", "plan_id", "step_index", "kind", "target_label", "target_element_id",
    "target_element_kind", "target_x", "target_y", "target_bbox_x", "target_bbox_y",
    "target_bbox_w", "target_bbox_h", "params", "executor",
), action_row, select=_select(
    "app", "plan_id", "step_index", "kind", "target.label", "target.element_id",
    "target.element_kind", "target.x", "target.y", "target.bbox.x", "target.bbox.y",
    "target.bbox.w", "target.bbox.h", "params", "executor",
))


def outcome_row(r: Record, topic: str, partition: int, offset: int) -> Row:
    v = r["verification"]
    if v is None:
        vm = ve = vo = vp = None
    else:
        vm, ve, vo, vp = v["method"], v["expected"], v["observed"], v["passed"]
    return envelope_values(r) + (
        r["action_id"], r["app"], r["action_kind"], r["status"], r["duration_ms"], r["error"],
        r["error_kind"], vm, ve, vo, vp, r["executor"], topic, partition, offset,
    )


OUTCOMES = TableSpec("outcomes", _cols(
    "action_id", "app", "action_kind", "status", "duration_ms", "error", "error_kind",
    "verification_method", "verification_expected", "verification_observed",
    "verification_passed", "executor",
), outcome_row, select=_select(
    "action_id", "app", "action_kind", "status", "duration_ms", "error", "error_kind",
    "verification.method", "verification.expected", "verification.observed",
    "verification.passed", "executor",
))


def heartbeat_row(r: Record, topic: str, partition: int, offset: int) -> Row:
    return envelope_values(r) + (
        r["status"], r["uptime_s"], r["cpu_percent"], r["rss_bytes"], r["queue_depth"],
        r["spool_depth"], topic, partition, offset,
    )


HEARTBEATS = TableSpec("heartbeats", _cols(
    "status", "uptime_s", "cpu_percent", "rss_bytes", "queue_depth", "spool_depth",
), heartbeat_row, select=_select(
    "status", "uptime_s", "cpu_percent", "rss_bytes", "queue_depth", "spool_depth",
))


def state_delta_row(r: Record, topic: str, partition: int, offset: int) -> Row:
    return envelope_values(r) + (
        r["replica_id"], r["crdt_type"], r["key"], r["payload"], r["full_state"],
        topic, partition, offset,
    )


STATE_DELTAS = TableSpec("state_deltas", _cols(
    "replica_id", "crdt_type", "key", "payload", "full_state",
), state_delta_row, select=_select(
    "replica_id", "crdt_type", "key", "payload", "full_state",
))


# --- the registry -------------------------------------------------------------------------------

#: event type -> its tables. Multi-row (secondary) tables come first: the sink inserts in
#: this order, so once a primary table holds a message, every table does.
TABLES: dict[str, tuple[TableSpec, ...]] = {
    "frame": (FRAMES,),
    "detection": (DETECTIONS, DETECTION_FRAMES),
    "plan": (PLANS,),
    "action": (ACTIONS,),
    "outcome": (OUTCOMES,),
    "heartbeat": (HEARTBEATS,),
    "state_delta": (STATE_DELTAS,),
}


def register(*specs: TableSpec, event_type: str) -> None:
    """Add (or replace) the tables of an event type; primary specs go last."""
    TABLES[event_type] = tuple(sorted(specs, key=lambda s: s.primary))


def specs_for(event_type: str) -> tuple[TableSpec, ...]:
    return TABLES.get(event_type, ())


def all_specs() -> Iterable[TableSpec]:
    for specs in TABLES.values():
        yield from specs


def primary_spec(event_type: str) -> TableSpec | None:
    for spec in TABLES.get(event_type, ()):
        if spec.primary:
            return spec
    return None


def to_columns(rows: list[Row], width: int) -> list[tuple[Any, ...]]:
    """Transpose rows into columns for a column-oriented insert (zip runs in C)."""
    if not rows:
        return [() for _ in range(width)]
    return list(zip(*rows, strict=True))


# --- alerts (alerting engineer; migration infra/clickhouse/040_alerts.sql) ----------------------


def alert_row(r: Record, topic: str, partition: int, offset: int) -> Row:
    return envelope_values(r) + (
        r["fingerprint"], r["incident_id"], r["rule"], r["rule_kind"], r["state"],
        r["severity"], r["labels"], r["annotations"], r["value"], r["starts_at"],
        r["ends_at"], r.get("transition"), topic, partition, offset,
    )


ALERTS = TableSpec("alerts", _cols(
    "fingerprint", "incident_id", "rule", "rule_kind", "state", "severity", "labels",
    "annotations", "value", "starts_at", "ends_at", "transition",
), alert_row)
register(ALERTS, event_type="alert")


# --- agent state (CRDT engineer; migration infra/clickhouse/030_agent_state.sql) ---------------


def agent_state_row(r: Record, topic: str, partition: int, offset: int) -> Row:
    return envelope_values(r) + (
        r["version"], r["replicas"], r["actions_total"], r["error_budget"], r["current_task"],
        r["status"], r["ui_memory"], r["settings"], r["state"], topic, partition, offset,
    )


AGENT_STATE = TableSpec("agent_state", _cols(
    "version", "replicas", "actions_total", "error_budget", "current_task", "status",
    "ui_memory", "settings", "state",
), agent_state_row)
register(AGENT_STATE, event_type="agent_state")


# --- windows, sessions, late events (stream-processing engineer; migrations 020-023) -----------


def aggregate_row(r: Record, topic: str, partition: int, offset: int) -> Row:
    counts = r["counts"]
    return envelope_values(r) + (
        r["window_kind"], r["window_size_ms"], r["window_step_ms"], r["window_start"],
        r["window_end"], r["scope_agent"], r["scope_app"], r["scope_action_kind"],
        counts, r["outcomes"], sum(counts.values()), r["success_rate"], r["latency_p50_ms"],
        r["latency_p95_ms"], r["latency_p99_ms"], r["latency_sketch"], r["detections"],
        r["frames"], r["detection_events"], r["detections_per_frame"],
        r["ocr_confidence_mean"], r["frame_change_ratio_mean"], r["active_agents"],
        r["lost_outcomes"], r["watermark"], r.get("late_events") or 0,
        r.get("clock_skew_events") or 0, topic, partition, offset,
    )


WINDOW_AGGREGATES = TableSpec("window_aggregates", _cols(
    "window_kind", "window_size_ms", "window_step_ms", "window_start", "window_end",
    "scope_agent", "scope_app", "scope_action_kind", "counts", "outcomes", "total",
    "success_rate", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_sketch",
    "detections", "frames", "detection_events", "detections_per_frame", "ocr_confidence_mean",
    "frame_change_ratio_mean", "active_agents", "lost_outcomes", "watermark", "late_events",
    "clock_skew_events",
), aggregate_row)
register(WINDOW_AGGREGATES, event_type="aggregate")


def session_row(r: Record, topic: str, partition: int, offset: int) -> Row:
    return envelope_values(r) + (
        r["session_start"], r["session_end"], r["duration_ms"], r["events"], r["steps"],
        r["successes"], r["failures"], r["success"], r["apps"], topic, partition, offset,
    )


SESSIONS = TableSpec("sessions", _cols(
    "session_start", "session_end", "duration_ms", "events", "steps", "successes", "failures",
    "success", "apps",
), session_row)
register(SESSIONS, event_type="session")

#: claw.late.v1 carries the ORIGINAL event bytes (any type) with why it is there (late for
#: some windows, or refused for its agent's clock) in headers (`schemas.headers`), so it does
#: not fit the one-type-per-topic routing: a reader decodes the value and calls
#: `late_row(record, event_type, headers, topic, partition, offset)`.
LATE_EVENTS_COLUMNS: tuple[str, ...] = (
    "event_id", "agent_id", "event_type", "event_time", "watermark", "lateness_ms",
    "missed_windows", "missed_window_starts", "missed_window_ends", "source_topic", "reason",
    "arrival_time",
) + KAFKA_COLUMNS


def late_row(r: Record, event_type: str, headers: Iterable[tuple[str, bytes | None]] | None,
             topic: str, partition: int, offset: int) -> Row:
    h = parse_late_headers(headers)
    e = r["envelope"]
    missed = late_windows(h)
    wm = int(h.get(LATE_WATERMARK) or 0)
    arrival = h.get(LATE_ARRIVAL)
    return (
        event_id_int(e["event_id"]), e["agent_id"], event_type, e["event_time"], wm,
        wm - e["event_time"], [f"{w[0]}|{w[1]}" for w in missed], [w[1] for w in missed],
        [w[2] for w in missed], h.get(SOURCE_TOPIC, ""), h[LATE_REASON],
        int(arrival) if arrival else None, topic, partition, offset,
    )


#: The late_events table (022). Not in `TABLES`: its topic carries events of every type, so
#: the sink routes claw.late.v1 itself and calls `late_row` with the decoded type and headers.
LATE_EVENTS = TableSpec("late_events", LATE_EVENTS_COLUMNS, late_row)  # type: ignore[arg-type]
