"""Crafted records for the alerting tests (decoded form: ints for times, str for ids)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import procs

from clawstream.kafka.config import client_config
from clawstream.settings import PROJECT_ROOT

_seq = itertools.count()


def envelope(agent: str, t: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "agent_id": agent,
        "session_id": "s-" + agent,
        "trace_id": "t-" + agent,
        "parent_id": None,
        "event_time": t,
        "seq": next(_seq),
        "producer": {"name": "test", "version": "0"},
    }


def aggregate(
    t_end: int,
    *,
    agent: str = "a1",
    app: str = "calc",
    kind: str = "click",
    size_ms: int = 10_000,
    success: int = 0,
    failure: int = 0,
    lost: int = 0,
    p95: float | None = None,
    ocr: float | None = None,
    late: int = 0,
) -> dict[str, Any]:
    total = success + failure + lost
    return {
        "envelope": envelope(agent, t_end),
        "window_kind": "tumbling",
        "window_size_ms": size_ms,
        "window_step_ms": size_ms,
        "window_start": t_end - size_ms,
        "window_end": t_end,
        "scope_agent": agent,
        "scope_app": app,
        "scope_action_kind": kind,
        "counts": {"outcome": total, "late": late},
        "outcomes": {"success": success, "failure": failure, "lost": lost},
        "success_rate": (success / total) if total else None,
        "latency_p50_ms": None,
        "latency_p95_ms": p95,
        "latency_p99_ms": None,
        "latency_sketch": b"",
        "detections": 0,
        "frames": 0,
        "ocr_confidence_mean": ocr,
        "frame_change_ratio_mean": None,
        "active_agents": 1,
        "lost_outcomes": lost,
        "watermark": t_end,
    }


def outcome(
    t: int,
    status: str,
    *,
    agent: str = "a1",
    app: str = "calc",
    kind: str = "click",
    executor: str = "pyautogui",
) -> dict[str, Any]:
    return {
        "envelope": envelope(agent, t),
        "action_id": str(uuid.uuid4()),
        "app": app,
        "action_kind": kind,
        "status": status,
        "duration_ms": 12.0,
        "error": None if status == "success" else "boom",
        "error_kind": None,
        "verification": None,
        "executor": executor,
    }


def heartbeat(t: int, agent: str = "a1") -> dict[str, Any]:
    return {
        "envelope": envelope(agent, t),
        "status": "ok",
        "uptime_s": 1.0,
        "cpu_percent": None,
        "rss_bytes": None,
        "queue_depth": 0,
        "spool_depth": 0,
    }


# --- real-broker helpers ----------------------------------------------------------------------


def produce(settings: Any, items: list[tuple[str, dict[str, Any]]]) -> None:
    """Encode and produce (event_type, record) pairs, keyed by agent, and wait for acks."""
    from confluent_kafka import Producer

    from schemas.registry import contract
    from schemas.serde import Serde

    serde = Serde()
    p = Producer(client_config(settings, "tool", "producer", {"linger.ms": 5}))
    for etype, rec in items:
        topic = settings.topic(contract().get(etype).topic)
        p.produce(topic, key=rec["envelope"]["agent_id"].encode(), value=serde.encode(etype, rec))
    assert p.flush(30) == 0


def read_topic_records(
    settings: Any, logical_topic: str, timeout: float = 1.0, raw: bool = False
) -> list[Any]:
    """Every message on a topic from the beginning, decoded (the Message if not, or raw)."""
    from kafka_read import read_messages

    from schemas.serde import DecodeError, Serde

    serde = Serde()
    out: list[Any] = []
    for m in read_messages(settings.bootstrap_servers, [settings.topic(logical_topic)],
                           timeout=max(timeout, 10.0)):
        if raw:
            out.append(m)
            continue
        try:
            out.append(serde.decode(m.value()).record)
        except DecodeError:
            out.append(m)
    return out


def wait_for_alerts(settings: Any, predicate: Any, timeout: float = 60.0) -> list[dict]:
    """Poll claw.alerts.v1 until predicate(alerts) is true; return the alerts."""
    import time as _t

    deadline = _t.monotonic() + timeout
    alerts: list[dict] = []
    while _t.monotonic() < deadline:
        alerts = [a for a in read_topic_records(settings, "claw.alerts.v1", 0.2)
                  if isinstance(a, dict)]
        if predicate(alerts):
            return alerts
        _t.sleep(0.5)
    raise AssertionError(f"alerts never matched; got {[(a['rule'], a['state']) for a in alerts]}")


class AlertWorker:
    """`python -m streams.alerting` as a subprocess, output to a file."""

    def __init__(self, tmp_path: Path, rules_file: Path, name: str = "worker",
                 metrics_port: int = 0) -> None:
        self.tmp_path = tmp_path
        self.rules_file = rules_file
        self.name = name
        self.metrics_port = metrics_port
        self.proc: subprocess.Popen | None = None
        self.n = 0

    @property
    def log_path(self) -> Path:
        return self.tmp_path / f"{self.name}-{self.n}.log"

    def start(self) -> None:
        self.n += 1
        env = dict(os.environ, CLAWSTREAM_RULES_FILE=str(self.rules_file),
                   CLAWSTREAM_WORKER_METRICS_PORT=str(self.metrics_port),
                   CLAWSTREAM_LOG_LEVEL="INFO")
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "streams.alerting"],
                                         cwd=PROJECT_ROOT, env=env, stdout=out,
                                         stderr=subprocess.STDOUT)

    def kill9(self) -> None:
        assert self.proc is not None
        procs.kill9(self.proc)

    def stop(self) -> None:
        procs.stop(self.proc, 20)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            content = self.log()
            if text in content:
                return content
            time.sleep(0.3)
        raise AssertionError(f"{text!r} not in worker log:\n{self.log()[-3000:]}")

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Its /metrics samples, by (name, sorted labels); empty while it is not up."""
        import urllib.request

        from prometheus_client.parser import text_string_to_metric_families

        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
                text = resp.read().decode()
        except OSError:
            return {}
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for fam in text_string_to_metric_families(text) for s in fam.samples}
