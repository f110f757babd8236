# ruff: noqa: RUF005  (envelope + typed tuple concatenation keeps the column order readable)
"""The tables of derived types the stream processors write (migrations infra/clickhouse/
020-040): alerts, agent state, window aggregates, sessions, and late events."""

from __future__ import annotations

from collections.abc import Iterable

from consumers.tables.spec import (
    KAFKA_COLUMNS,
    Record,
    Row,
    TableSpec,
    columns_of,
    envelope_values,
    event_id_int,
)
from schemas.headers import (
    LATE_ARRIVAL,
    LATE_REASON,
    LATE_WATERMARK,
    SOURCE_TOPIC,
    late_windows,
    parse_late_headers,
)

# --- alerts (alerting engineer; migration infra/clickhouse/040_alerts.sql) ----------------------


def alert_row(r: Record, topic: str, partition: int, offset: int) -> Row:
    return envelope_values(r) + (
        r["fingerprint"], r["incident_id"], r["rule"], r["rule_kind"], r["state"],
        r["severity"], r["labels"], r["annotations"], r["value"], r["starts_at"],
        r["ends_at"], r.get("transition"), topic, partition, offset,
    )


ALERTS = TableSpec("alerts", columns_of(
    "fingerprint", "incident_id", "rule", "rule_kind", "state", "severity", "labels",
    "annotations", "value", "starts_at", "ends_at", "transition",
), alert_row)


# --- agent state (CRDT engineer; migration infra/clickhouse/030_agent_state.sql) ---------------


def agent_state_row(r: Record, topic: str, partition: int, offset: int) -> Row:
    return envelope_values(r) + (
        r["version"], r["replicas"], r["actions_total"], r["error_budget"], r["current_task"],
        r["status"], r["ui_memory"], r["settings"], r["state"], topic, partition, offset,
    )


AGENT_STATE = TableSpec("agent_state", columns_of(
    "version", "replicas", "actions_total", "error_budget", "current_task", "status",
    "ui_memory", "settings", "state",
), agent_state_row)


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


WINDOW_AGGREGATES = TableSpec("window_aggregates", columns_of(
    "window_kind", "window_size_ms", "window_step_ms", "window_start", "window_end",
    "scope_agent", "scope_app", "scope_action_kind", "counts", "outcomes", "total",
    "success_rate", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_sketch",
    "detections", "frames", "detection_events", "detections_per_frame", "ocr_confidence_mean",
    "frame_change_ratio_mean", "active_agents", "lost_outcomes", "watermark", "late_events",
    "clock_skew_events",
), aggregate_row)


def session_row(r: Record, topic: str, partition: int, offset: int) -> Row:
    return envelope_values(r) + (
        r["session_start"], r["session_end"], r["duration_ms"], r["events"], r["steps"],
        r["successes"], r["failures"], r["success"], r["apps"], topic, partition, offset,
    )


SESSIONS = TableSpec("sessions", columns_of(
    "session_start", "session_end", "duration_ms", "events", "steps", "successes", "failures",
    "success", "apps",
), session_row)

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


def _late_row_needs_headers(r: Record, topic: str, partition: int, offset: int) -> Row:
    """A late event's row needs its event type and the message's headers, which a table's
    `row` is not given: the sink calls `late_row` for claw.late.v1 instead."""
    raise TypeError("late_events rows are built by late_row(record, event_type, headers, ...)")


#: The late_events table (022). Not in `TABLES`: its topic carries events of every type, so
#: the sink routes claw.late.v1 itself and calls `late_row` with the decoded type and headers.
LATE_EVENTS = TableSpec("late_events", LATE_EVENTS_COLUMNS, _late_row_needs_headers)

#: derived event type -> its tables
DERIVED_TABLES: dict[str, tuple[TableSpec, ...]] = {
    "alert": (ALERTS,),
    "agent_state": (AGENT_STATE,),
    "aggregate": (WINDOW_AGGREGATES,),
    "session": (SESSIONS,),
}
