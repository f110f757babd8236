"""Helpers for the stream-processing integration tests: crafted events, a worker process,
and readers of the derived topics. Real broker only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from kafka_read import end_offset, read_messages

from clawstream.settings import Settings
from schemas.envelope import new_envelope
from schemas.serde import Serde

ROOT = Path(__file__).resolve().parent.parent
SERDE = Serde()


def body(event_type: str, **kw: Any) -> dict[str, Any]:
    """A valid body of `event_type` (fields overridable)."""
    base: dict[str, Any] = {
        "frame": {"app": "mail", "width": 100, "height": 80, "phash": "00", "change_ratio": 0.25,
                  "changed_regions": [], "thumbnail": b"", "thumbnail_format": "jpeg"},
        "detection": {"app": "mail", "frame_id": "f", "elements": [], "duration_ms": 1.0},
        "plan": {"app": "mail", "goal": "g", "planner": "rules", "steps": []},
        "action": {"app": "mail", "plan_id": None, "step_index": None, "kind": "click",
                   "target": {"label": "OK"}, "params": {}},
        "outcome": {"action_id": "", "app": "mail", "action_kind": "click",
                    "status": "success", "duration_ms": 10.0},
        "heartbeat": {"status": "ok"},
    }[event_type]
    return {**base, **kw}


def element(conf: float | None = 0.9) -> dict[str, Any]:
    return {"element_id": str(uuid.uuid4()), "kind": "button",
            "bbox": {"x": 1, "y": 2, "w": 3, "h": 4}, "text": "OK", "confidence": 0.8,
            "ocr_confidence": conf, "source": "synthetic", "interactable": True}


class Emitter:
    """Produces crafted events keyed by agent (murmur2, like the SDK and faust)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.failures: list[str] = []  # delivery errors: what did not reach Kafka, and why
        self.producer = Producer({"bootstrap.servers": settings.bootstrap_servers,
                                  "partitioner": "murmur2_random", "linger.ms": 5,
                                  "enable.idempotence": True,
                                  "delivery.report.only.error": True,
                                  "on_delivery": self._failed})
        self.seq: dict[str, int] = {}
        self.sent: list[dict[str, Any]] = []  # every record with its type

    def emit(self, event_type: str, agent: str, t: int, event_id: str | None = None,
             parent_id: str | None = None, session_id: str = "s", **kw: Any) -> str:
        self.seq[agent] = self.seq.get(agent, 0) + 1
        env = new_envelope(agent, session_id, self.seq[agent], event_time=t,
                           event_id=event_id, parent_id=parent_id)
        rec = {"envelope": env, **body(event_type, **kw)}
        schema = SERDE.contract.get(event_type)
        self.producer.produce(self.settings.topic(schema.topic), key=agent.encode(),
                              value=SERDE.encode(event_type, rec))
        self.producer.poll(0)
        self.sent.append({"type": event_type, **rec})
        return env["event_id"]

    def raw(self, topic: str, key: bytes, value: bytes) -> None:
        self.producer.produce(self.settings.topic(topic), key=key, value=value)

    def _failed(self, err: Any, msg: Any) -> None:
        self.failures.append(f"{msg.topic()}[{msg.partition()}]: {err}")

    def flush(self) -> None:
        assert self.producer.flush(30) == 0
        assert not self.failures, f"the test's producer lost events: {self.failures[:5]}"


def read_topic(settings: Settings, logical: str, *, min_count: int = 0,
               timeout: float = 60.0, idle: float = 3.0, physical: bool = False) -> list[Any]:
    """Every message of a topic (all partitions): at least up to the end offsets it had when
    called, then until `min_count` arrived and nothing more came for `idle` seconds."""
    topic = logical if physical else settings.topic(logical)
    return read_messages(settings.bootstrap_servers, [topic], min_count=min_count,
                         timeout=timeout, idle=idle)


def committed_lag(settings: Settings, group: str, logicals: Iterable[str],
                  timeout: float = 30.0) -> int:
    """Events of these topics the consumer group has not committed yet, waited for until it
    reaches 0 or `timeout` passes (what a lag dashboard shows)."""
    c = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": group,
                  "enable.auto.commit": False})
    try:
        tps = []
        for logical in logicals:
            topic = settings.topic(logical)
            md = c.list_topics(topic, timeout=10)
            tps += [TopicPartition(topic, p) for p in md.topics[topic].partitions]
        ends = {(tp.topic, tp.partition): end_offset(c, tp) for tp in tps}
        deadline = time.monotonic() + timeout
        while True:
            done = {(tp.topic, tp.partition): max(tp.offset, 0)
                    for tp in c.committed(tps, timeout=10)}
            lag = sum(end - done[k] for k, end in ends.items())
            if lag <= 0 or time.monotonic() > deadline:
                return lag
            time.sleep(0.5)
    finally:
        c.close()


def wait_for_record(settings: Settings, logical: str, predicate: Any,
                    timeout: float = 90.0) -> dict[str, Any]:
    """Wait until a decoded record on `logical` satisfies `predicate`; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for rec in decoded(read_topic(settings, logical, timeout=5, idle=0.5)):
            if predicate(rec):
                return rec
        time.sleep(1.0)
    raise AssertionError(f"no matching record on {logical} within {timeout} s")


def decoded(msgs: Iterable[Any]) -> list[dict[str, Any]]:
    return [SERDE.decode(m.value()).record for m in msgs]


class WorkerProcess:
    """`clawstream worker` as a subprocess writing to a log file."""

    def __init__(self, settings: Settings, log_path: Path, env: dict[str, str] | None = None,
                 argv: list[str] | None = None):
        self.settings = settings
        self.log_path = log_path
        self.env = {**os.environ, "CLAWSTREAM_WORKER_METRICS_PORT": "0", **(env or {})}
        self.argv = argv or [sys.executable, "-m", "clawstream.cli", "worker"]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        logf = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env,
            stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        logf.close()
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def freeze(self) -> None:
        """SIGSTOP the worker (a frozen process: long GC pause, suspended VM, starved host)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
