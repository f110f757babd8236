# ruff: noqa: RUF005  (envelope + typed tuple concatenation keeps the column order readable)
"""The tables of the raw event types agents send (migration infra/clickhouse/001): one row
function per table, and the fast path's SQL expressions for the same columns. Each ends with
`principal` (migration 060), which the sink fills from the message's header."""

from __future__ import annotations

from consumers.tables.spec import (
    Record,
    Row,
    TableSpec,
    audited,
    columns_of,
    envelope_values,
    select_of,
)


def frame_row(r: Record, topic: str, partition: int, offset: int) -> Row:
    return envelope_values(r) + (
        r["app"], r["width"], r["height"], r["phash"], r["change_ratio"],
        [(b["x"], b["y"], b["w"], b["h"]) for b in r["changed_regions"]],
        r["thumbnail"], r["thumbnail_format"], r["thumb_width"], r["thumb_height"],
        r["image_uri"], r["image_sha256"], r["redactions"],
        topic, partition, offset,
    )


FRAMES = TableSpec("frames", columns_of(
    "app", "width", "height", "phash", "change_ratio", "changed_regions", "thumbnail",
    "thumbnail_format", "thumb_width", "thumb_height", "image_uri", "image_sha256", "redactions",
), frame_row, select=select_of(
    "app", "width", "height", "phash", "change_ratio", "changed_regions", "thumbnail",
    "thumbnail_format", "thumb_width", "thumb_height", "image_uri", "image_sha256", "redactions",
))


def detection_frame_row(r: Record, topic: str, partition: int, offset: int) -> Row:
    elements = r["elements"]
    return envelope_values(r) + (
        r["app"], r["frame_id"], len(elements), sum(1 for el in elements if el["interactable"]),
        r["duration_ms"], topic, partition, offset,
    )


DETECTION_FRAMES = TableSpec("detection_frames", columns_of(
    "app", "frame_id", "elements", "interactable_elements", "duration_ms",
), detection_frame_row, select=select_of(
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


DETECTIONS = TableSpec("detections", columns_of(
    "app", "frame_id", "element_index", "element_id", "element_kind", "x", "y", "w", "h",
    "text", "confidence", "ocr_confidence", "source", "interactable",
), detection_rows, multi=True, primary=False, select=select_of(
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


PLANS = TableSpec("plans", columns_of(
    "app", "goal", "planner", "step_count", "step_index", "step_description",
    "step_action_kind", "step_target",
), plan_row, select=select_of(
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


ACTIONS = TableSpec("actions", columns_of(
    "app", "plan_id", "step_index", "kind", "target_label", "target_element_id",
    "target_element_kind", "target_x", "target_y", "target_bbox_x", "target_bbox_y",
    "target_bbox_w", "target_bbox_h", "params", "executor",
), action_row, select=select_of(
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


OUTCOMES = TableSpec("outcomes", columns_of(
    "action_id", "app", "action_kind", "status", "duration_ms", "error", "error_kind",
    "verification_method", "verification_expected", "verification_observed",
    "verification_passed", "executor",
), outcome_row, select=select_of(
    "action_id", "app", "action_kind", "status", "duration_ms", "error", "error_kind",
    "verification.method", "verification.expected", "verification.observed",
    "verification.passed", "executor",
))


def heartbeat_row(r: Record, topic: str, partition: int, offset: int) -> Row:
    return envelope_values(r) + (
        r["status"], r["uptime_s"], r["cpu_percent"], r["rss_bytes"], r["queue_depth"],
        r["spool_depth"], topic, partition, offset,
    )


HEARTBEATS = TableSpec("heartbeats", columns_of(
    "status", "uptime_s", "cpu_percent", "rss_bytes", "queue_depth", "spool_depth",
), heartbeat_row, select=select_of(
    "status", "uptime_s", "cpu_percent", "rss_bytes", "queue_depth", "spool_depth",
))


def state_delta_row(r: Record, topic: str, partition: int, offset: int) -> Row:
    return envelope_values(r) + (
        r["replica_id"], r["crdt_type"], r["key"], r["payload"], r["full_state"],
        topic, partition, offset,
    )


STATE_DELTAS = TableSpec("state_deltas", columns_of(
    "replica_id", "crdt_type", "key", "payload", "full_state",
), state_delta_row, select=select_of(
    "replica_id", "crdt_type", "key", "payload", "full_state",
))


# every raw table records who sent each event (the `principal` column, migration 060)
FRAMES, DETECTION_FRAMES, DETECTIONS, PLANS, ACTIONS, OUTCOMES, HEARTBEATS, STATE_DELTAS = (
    audited(spec) for spec in (FRAMES, DETECTION_FRAMES, DETECTIONS, PLANS, ACTIONS, OUTCOMES,
                               HEARTBEATS, STATE_DELTAS))

#: event type -> its tables. Multi-row (secondary) tables come first: the sink inserts in
#: this order, so once a primary table holds a message, every table does.
RAW_TABLES: dict[str, tuple[TableSpec, ...]] = {
    "frame": (FRAMES,),
    "detection": (DETECTIONS, DETECTION_FRAMES),
    "plan": (PLANS,),
    "action": (ACTIONS,),
    "outcome": (OUTCOMES,),
    "heartbeat": (HEARTBEATS,),
    "state_delta": (STATE_DELTAS,),
}
