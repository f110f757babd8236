"""Valid, realistic records of every event type, for tests, examples and benchmarks.

Pure and deterministic: the same `random.Random` state gives the same record. Without an rng,
a fresh unseeded one is used (unique ids, still valid). Envelope fields can be pinned with
keyword overrides: ``sample("outcome", rng, agent_id="agent-7", seq=3, parent_id=action_id)``.
"""

from __future__ import annotations

import copy
import hashlib
import random
import uuid
from collections.abc import Callable
from typing import Any

from schemas.registry import contract

#: 2026-01-01T00:00:00Z, the base of sample event times (plus up to an hour).
BASE_TIME_MS = 1_767_225_600_000

APPS = ("firefox", "libreoffice-calc", "gedit", "thunderbird", "settings", "terminal")
ACTION_KINDS = ("click", "double_click", "type", "hotkey", "scroll", "drag", "wait", "move")
ELEMENT_KINDS = ("button", "text_field", "checkbox", "text", "icon", "window", "other",
                 "radio", "combobox", "slider", "tab", "menu_item", "link")
LABELS = ("Submit", "Save", "Cancel", "OK", "Search", "File", "Edit", "Open", "Next", "Close")
GOALS = (
    "Submit the order form",
    "Save the spreadsheet as CSV",
    "Search for the release notes",
    "Archive yesterday's emails",
    "Turn on dark mode",
)
ERRORS = (
    ("element_not_found", "no element labelled {label!r} on screen"),
    ("timeout", "screen did not change within 2000 ms"),
    ("verification_failed", "expected text {label!r} not seen after the action"),
    ("permission_denied", "window refused input focus"),
)
ENVELOPE_FIELDS = (
    "event_id", "agent_id", "session_id", "trace_id", "parent_id", "event_time", "seq",
    "producer",
)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _hex(rng: random.Random, nbytes: int) -> str:
    return rng.getrandbits(nbytes * 8).to_bytes(nbytes, "big").hex()


def _bbox(rng: random.Random, max_w: int = 1280, max_h: int = 800) -> dict[str, int]:
    w, h = rng.randint(16, 240), rng.randint(12, 60)
    return {"x": rng.randint(0, max_w - w), "y": rng.randint(0, max_h - h), "w": w, "h": h}


def envelope(rng: random.Random, **overrides: Any) -> dict[str, Any]:
    """A plausible envelope; `overrides` replace envelope fields (unknown names are an error)."""
    unknown = set(overrides) - set(ENVELOPE_FIELDS)
    if unknown:
        raise TypeError(f"not envelope fields: {sorted(unknown)}; known: {ENVELOPE_FIELDS}")
    session = _uuid(rng)
    env = {
        "event_id": _uuid(rng),
        "agent_id": f"agent-{rng.randint(0, 999):03d}",
        "session_id": session,
        "trace_id": session,
        "parent_id": _uuid(rng) if rng.random() < 0.8 else None,
        "event_time": BASE_TIME_MS + rng.randint(0, 3_600_000),
        "seq": rng.randint(0, 100_000),
        "producer": {"name": "clawstream-sdk", "version": "0.1.0"},
    }
    env.update(overrides)
    return env


def _frame(rng: random.Random, env: dict[str, Any]) -> dict[str, Any]:
    thumb = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + rng.randbytes(rng.randint(200, 600)) + b"\xff\xd9"
    sha = hashlib.sha256(thumb + env["event_id"].encode()).hexdigest()
    return {
        "envelope": env,
        "app": rng.choice(APPS),
        "width": 1280,
        "height": 800,
        "phash": _hex(rng, 8),
        "change_ratio": round(rng.uniform(0.01, 0.6), 4),
        "changed_regions": [_bbox(rng) for _ in range(rng.randint(0, 3))],
        "thumbnail": thumb,
        "thumbnail_format": "jpeg",
        "thumb_width": 160,
        "thumb_height": 100,
        "image_uri": f"cas://sha256/{sha}",
        "image_sha256": sha,
        "redactions": rng.choice((0, 0, 0, 1, 2)),
    }


def _element(rng: random.Random, i: int) -> dict[str, Any]:
    kind = rng.choice(ELEMENT_KINDS)
    has_text = kind in ("button", "text", "text_field", "window") or rng.random() < 0.2
    ocr = round(rng.uniform(0.55, 0.99), 3) if has_text else None
    return {
        "element_id": f"el-{i}",
        "kind": kind,
        "bbox": _bbox(rng),
        "text": rng.choice(LABELS) if has_text else None,
        "confidence": round(rng.uniform(0.5, 0.99), 3),
        "ocr_confidence": ocr,
        "source": "opencv+ocr" if has_text else "opencv",
        "interactable": kind not in ("text", "window", "other"),
    }


def _detection(rng: random.Random, env: dict[str, Any]) -> dict[str, Any]:
    return {
        "envelope": env,
        "app": rng.choice(APPS),
        "frame_id": env["parent_id"] or _uuid(rng),
        "elements": [_element(rng, i) for i in range(rng.randint(1, 8))],
        "duration_ms": round(rng.uniform(20.0, 300.0), 2),
    }


def _params(rng: random.Random, kind: str) -> dict[str, str]:
    if kind == "type":
        return {"text": rng.choice(("hello", "report.csv", "release notes")), "interval": "0.01"}
    if kind == "hotkey":
        return {"keys": rng.choice(("ctrl+s", "ctrl+f", "alt+tab"))}
    if kind == "scroll":
        return {"clicks": str(rng.randint(-10, 10))}
    if kind == "wait":
        return {"seconds": f"{rng.uniform(0.1, 2.0):.2f}"}
    if kind == "drag":
        return {"to_x": str(rng.randint(0, 1279)), "to_y": str(rng.randint(0, 799))}
    return {}


def _plan(rng: random.Random, env: dict[str, Any]) -> dict[str, Any]:
    steps = []
    for i in range(rng.randint(1, 6)):
        kind = rng.choice(ACTION_KINDS)
        label = rng.choice(LABELS)
        steps.append({
            "index": i,
            "description": f"{kind} {label}",
            "action_kind": kind,
            "target": label if kind not in ("wait", "hotkey") else None,
            "params": _params(rng, kind),
        })
    return {
        "envelope": env,
        "app": rng.choice(APPS),
        "goal": rng.choice(GOALS),
        "planner": rng.choice(("rules", "llm")),
        "steps": steps,
    }


def _action(rng: random.Random, env: dict[str, Any]) -> dict[str, Any]:
    kind = rng.choice(ACTION_KINDS)
    box = _bbox(rng)
    pointed = kind not in ("wait", "hotkey", "type")
    return {
        "envelope": env,
        "app": rng.choice(APPS),
        "plan_id": env["parent_id"],
        "step_index": rng.randint(0, 5),
        "kind": kind,
        "target": {
            "label": rng.choice(LABELS) if pointed else None,
            "element_id": f"el-{rng.randint(0, 7)}" if pointed else None,
            "element_kind": rng.choice(ELEMENT_KINDS) if pointed else None,
            "x": box["x"] + box["w"] // 2 if pointed else None,
            "y": box["y"] + box["h"] // 2 if pointed else None,
            "bbox": box if pointed else None,
        },
        "params": _params(rng, kind),
        "executor": "pyautogui",
    }


def _outcome(rng: random.Random, env: dict[str, Any]) -> dict[str, Any]:
    roll = rng.random()
    status = "success" if roll < 0.85 else "failure" if roll < 0.95 else "timeout"
    label = rng.choice(LABELS)
    err_kind, err = (None, None)
    if status != "success":
        err_kind, template = rng.choice(ERRORS) if status == "failure" else ERRORS[1]
        err = template.format(label=label)
    method = rng.choice(("text_seen", "change_seen", "none"))
    return {
        "envelope": env,
        "action_id": env["parent_id"] or _uuid(rng),
        "app": rng.choice(APPS),
        "action_kind": rng.choice(ACTION_KINDS),
        "status": status,
        "duration_ms": round(rng.lognormvariate(5.0, 0.6), 3),  # median ~150 ms
        "error": err,
        "error_kind": err_kind,
        "verification": None if method == "none" else {
            "method": method,
            "expected": label if method == "text_seen" else None,
            "observed": label if status == "success" and method == "text_seen" else None,
            "passed": status == "success",
        },
        "executor": "pyautogui",
    }


def _heartbeat(rng: random.Random, env: dict[str, Any]) -> dict[str, Any]:
    return {
        "envelope": env,
        "status": rng.choice(("ok", "ok", "ok", "degraded")),
        "uptime_s": round(rng.uniform(1.0, 86_400.0), 3),
        "cpu_percent": round(rng.uniform(0.0, 100.0), 1),
        "rss_bytes": rng.randint(50, 800) * 1024 * 1024,
        "queue_depth": rng.randint(0, 500),
        "spool_depth": rng.choice((0, 0, 0, rng.randint(1, 10_000))),
    }


def _state_delta(rng: random.Random, env: dict[str, Any]) -> dict[str, Any]:
    crdt = rng.choice(("gcounter", "pncounter", "lww", "orset", "map"))
    return {
        "envelope": env,
        "replica_id": f"{env['agent_id']}/r{rng.randint(0, 2)}",
        "crdt_type": crdt,
        "key": rng.choice(("actions_total", "error_budget", "current_task", "ui_memory")),
        "payload": rng.randbytes(rng.randint(8, 64)),
        "full_state": rng.random() < 0.1,
    }


def _aggregate(rng: random.Random, env: dict[str, Any]) -> dict[str, Any]:
    size = rng.choice((10_000, 60_000))
    start = env["event_time"] - env["event_time"] % size
    ok, bad = rng.randint(0, 500), rng.randint(0, 50)
    total = ok + bad
    p50 = rng.uniform(80, 200)
    frames = rng.randint(0, 100)
    detections = frames * rng.randint(0, 8)
    return {
        "envelope": env,
        "window_kind": "tumbling",
        "window_size_ms": size,
        "window_step_ms": size,
        "window_start": start,
        "window_end": start + size,
        "scope_agent": rng.choice(("*", env["agent_id"])),
        "scope_app": rng.choice(("*", *APPS)),
        "scope_action_kind": rng.choice(("*", *ACTION_KINDS)),
        "counts": {"action": total, "outcome": total, "frame": rng.randint(0, 100)},
        "outcomes": {"success": ok, "failure": bad},
        "success_rate": ok / total if total else None,
        "latency_p50_ms": p50 if total else None,
        "latency_p95_ms": p50 * 2.5 if total else None,
        "latency_p99_ms": p50 * 4 if total else None,
        "latency_sketch": rng.randbytes(32),
        "detections": detections,
        "frames": frames,
        "ocr_confidence_mean": rng.uniform(0.6, 0.95),
        "frame_change_ratio_mean": rng.uniform(0.01, 0.3),
        "active_agents": rng.randint(1, 20),
        "lost_outcomes": rng.randint(0, 3),
        "watermark": start + size + 5_000,
        "detection_events": frames,
        "detections_per_frame": detections / frames if frames else None,
    }


def _agent_state(rng: random.Random, env: dict[str, Any]) -> dict[str, Any]:
    return {
        "envelope": env,
        "version": rng.randint(1, 10_000),
        "replicas": [f"{env['agent_id']}/r{i}" for i in range(rng.randint(1, 3))],
        "actions_total": rng.randint(0, 100_000),
        "error_budget": rng.randint(-10, 100),
        "current_task": rng.choice((None, *GOALS)),
        "status": rng.choice(("idle", "running", "blocked")),
        "ui_memory": {app: rng.sample(LABELS, 3) for app in rng.sample(APPS, 2)},
        "settings": {"max_retries": str(rng.randint(1, 5)), "theme": "dark"},
        "state": rng.randbytes(48),
    }


def _alert(rng: random.Random, env: dict[str, Any]) -> dict[str, Any]:
    state = rng.choice(("pending", "firing", "resolved"))
    labels = {"agent_id": env["agent_id"], "app": rng.choice(APPS)}
    rule = rng.choice(("high_failure_rate", "agent_silent", "failure_streak"))
    fp = hashlib.sha256(f"{rule}{sorted(labels.items())}".encode()).hexdigest()[:16]
    starts = env["event_time"] - rng.randint(0, 600_000)
    return {
        "envelope": env,
        "fingerprint": fp,
        "incident_id": f"{fp}-{starts}",
        "rule": rule,
        "rule_kind": {"high_failure_rate": "threshold", "agent_silent": "absence"}.get(
            rule, "streak"
        ),
        "state": state,
        "severity": rng.choice(("warning", "critical")),
        "labels": labels,
        "annotations": {"summary": f"{rule} on {env['agent_id']}"},
        "value": round(rng.uniform(0, 1), 4),
        "starts_at": starts,
        "ends_at": env["event_time"] if state == "resolved" else None,
    }


def _session(rng: random.Random, env: dict[str, Any]) -> dict[str, Any]:
    duration = rng.randint(5_000, 900_000)
    steps = rng.randint(1, 60)
    failures = rng.randint(0, steps // 4)
    return {
        "envelope": env,
        "session_start": env["event_time"] - duration,
        "session_end": env["event_time"],
        "duration_ms": duration,
        "events": steps * 4 + rng.randint(0, 50),
        "steps": steps,
        "successes": steps - failures,
        "failures": failures,
        "success": failures == 0,
        "apps": rng.sample(APPS, rng.randint(1, 3)),
    }


_BUILDERS: dict[str, Callable[[random.Random, dict[str, Any]], dict[str, Any]]] = {
    "frame": _frame,
    "detection": _detection,
    "plan": _plan,
    "action": _action,
    "outcome": _outcome,
    "heartbeat": _heartbeat,
    "state_delta": _state_delta,
    "aggregate": _aggregate,
    "agent_state": _agent_state,
    "alert": _alert,
    "session": _session,
}

#: Every event type of the contract, in contract order.
EVENT_TYPES: tuple[str, ...] = tuple(_BUILDERS)


def sample(
    event_type: str, rng: random.Random | None = None, **envelope_overrides: Any
) -> dict[str, Any]:
    """A valid record of `event_type` (short type, short or full schema name)."""
    schema = contract().get(event_type)
    rng = rng if rng is not None else random.Random()
    env = envelope(rng, **envelope_overrides)
    return _fit(_BUILDERS[schema.event_type](rng, env), schema.expanded)


def _fit(record: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Keep the record in step with the schema as others evolve it: fields the schema gained
    (optional, so they have defaults) get their default; fields it no longer has are dropped."""
    fields = {f["name"]: f for f in schema["fields"]}
    out = {k: v for k, v in record.items() if k in fields}
    for name, f in fields.items():
        if name not in out and "default" in f:
            default = copy.deepcopy(f["default"])
            if f["type"] == "bytes" and isinstance(default, str):
                default = default.encode("latin-1")  # JSON defaults of bytes are strings
            out[name] = default
    return out


def samples(
    event_type: str, n: int, rng: random.Random | None = None, **envelope_overrides: Any
) -> list[dict[str, Any]]:
    """`n` records of one type; with `seq=` given they get seq, seq+1, ..."""
    rng = rng if rng is not None else random.Random()
    out = []
    for i in range(n):
        overrides = dict(envelope_overrides)
        if "seq" in overrides:
            overrides["seq"] = envelope_overrides["seq"] + i
        out.append(sample(event_type, rng, **overrides))
    return out
