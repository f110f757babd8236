"""Helpers for the stream-processing integration tests: crafted events, a worker process,
and readers of the derived topics. Real broker only."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from kafka_read import end_offset, read_messages

from clawstream.kafka.config import client_config
from clawstream.settings import Settings
from schemas.envelope import new_envelope
from schemas.serde import Serde
from streams.windowing import (
    CorrelationOperator,
    Event,
    PartitionPipeline,
    SessionOperator,
    WindowOperator,
)
from streams.windowing.windows import tumbling

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
        self.producer = Producer(client_config(settings, "tool", "producer", {
                                               "partitioner": "murmur2_random", "linger.ms": 5,
                                  "enable.idempotence": True,
                                  "delivery.report.only.error": True,
                                  "on_delivery": self._failed}))
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
    c = Consumer(client_config(settings, "tool", "consumer", {"group.id": group,
                  "enable.auto.commit": False}))
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


# -- the worker's end-to-end tests: an offline recomputation and crafted streams -----------------
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, aligned to every window size used
LATENESS = 5_000
WINDOWS = ((10_000, 10_000), (60_000, 60_000), (300_000, 60_000))


def worker_log(settings: Settings) -> Path:
    """Worker logs outside pytest's rotating tmp dirs, so a failure can be read later."""
    d = Path(tempfile.gettempdir()) / "clawstream-test-logs"
    d.mkdir(exist_ok=True)
    return d / f"{settings.worker_app_id}.log"


# -- the offline recomputation (independent of streams.windowing) -------------------------------
def starts(t: int, size: int, step: int) -> list[int]:
    first = (t - size) // step * step + step
    return [s for s in range(first, t + 1, step) if s <= t < s + size]


def scope(ev: dict[str, Any]) -> tuple[str, str, str]:
    kind = ev.get("kind") if ev["type"] == "action" else ev.get("action_kind", "")
    return ev["agent"], ev.get("app") or "", kind or ""


def expected_windows(events: list[dict[str, Any]], late: dict[str, set[tuple[str, int]]],
                     watermark_by_agent: dict[str, int]) -> dict[tuple, Counter]:
    """(size, step, start, agent, app, kind) -> counts per type, of closed windows only."""
    out: dict[tuple, Counter] = defaultdict(Counter)
    for ev in events:
        for size, step in WINDOWS:
            label = f"t{size}" if size == step else f"h{size}/{step}"
            for s in starts(ev["t"], size, step):
                if (label, s) in late.get(ev["id"], set()):
                    continue
                if s + size > watermark_by_agent[ev["agent"]]:
                    continue  # still open
                for sc in (scope(ev), ("*", "*", "*")):
                    out[(size, step, s, *sc)][ev["type"]] += 1
    return out


def late_index(settings: Settings) -> tuple[dict[str, set[tuple[str, int]]], list[Any]]:
    msgs = read_topic(settings, "claw.late.v1", timeout=10, idle=2)
    idx: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for m in msgs:
        h = {k: v.decode() for k, v in m.headers() or []}
        for label, start, _end in json.loads(h["clawstream.late.windows"]):
            idx[h["clawstream.late.event_id"]].add((label, start))
    return idx, msgs


def agg_key(r: dict[str, Any]) -> tuple:
    return (r["window_size_ms"], r["window_step_ms"], r["window_start"], r["scope_agent"],
            r["scope_app"], r["scope_action_kind"])


def check_windows(aggs: list[dict[str, Any]], expected: dict[tuple, Counter],
                  watermark: int) -> None:
    got = {agg_key(r): r for r in aggs}
    # every window whose end the watermark passed and that holds events was emitted
    missing = [k for k in expected if k not in got]
    assert not missing, f"{len(missing)} windows never emitted, e.g. {missing[:3]}"
    for k, r in got.items():
        if r["window_end"] > watermark:
            continue
        assert Counter(r["counts"]) == expected[k], (k, r["counts"], expected[k])


# -- crafted streams -------------------------------------------------------------------------------
def realistic_stream(em: Emitter, agents: int, seconds: int, rng: random.Random,
                     jitter_share: float = 0.3) -> None:
    """Agents acting side by side: emitted in true-time order, 30 % of the events stamped
    up to 2.5 s earlier than that (out of order, within the 5 s lateness)."""
    apps = ("mail", "calc")
    plan: list[tuple[int, int, str, str, int, dict[str, Any]]] = []  # (tau, n, type, ...)
    n = 0
    for a in range(agents):
        agent = f"agent-{a}"
        tau = T0 + rng.randint(0, 500)
        while tau < T0 + seconds * 1000:
            tau += rng.randint(100, 300)
            t = tau - (rng.randint(0, 2_500) if rng.random() < jitter_share else 0)
            app = rng.choice(apps)
            r = rng.random()
            n += 1
            if r < 0.25:
                plan.append((tau, n, "frame", agent, t,
                             {"app": app, "change_ratio": rng.random()}))
            elif r < 0.45:
                plan.append((tau, n, "detection", agent, t, {"app": app, "elements": [
                    element(rng.choice([None, rng.random()]))
                    for _ in range(rng.randint(0, 4))]}))
            elif r < 0.85:
                kind = rng.choice(["click", "type"])
                aid = str(uuid.uuid4())
                plan.append((tau, n, "action", agent, t,
                             {"app": app, "kind": kind, "event_id": aid}))
                if rng.random() < 0.95:
                    dur = rng.lognormvariate(5, 0.8)
                    n += 1
                    plan.append((tau + int(dur), n, "outcome", agent, t + int(dur), {
                        "app": app, "action_kind": kind, "action_id": aid, "parent_id": aid,
                        "duration_ms": dur,
                        "status": "success" if rng.random() < 0.8 else "failure"}))
            else:
                plan.append((tau, n, "heartbeat", agent, t, {}))
    plan.sort()
    for _tau, _n, et, agent, t, kw in plan:
        em.emit(et, agent, t, **kw)


def sent_events(em: Emitter) -> list[dict[str, Any]]:
    out = []
    for rec in em.sent:
        env = rec["envelope"]
        out.append({"type": rec["type"], "id": env["event_id"], "agent": env["agent_id"],
                    "t": env["event_time"], "app": rec.get("app"), "kind": rec.get("kind"),
                    "action_kind": rec.get("action_kind")})
    return out


# -- the pure pipeline (unit tests of streams.windowing) ------------------------------------------
S = 1000


class Maker:
    """Builds decoded records the way serde returns them, with per-topic offsets."""

    def __init__(self) -> None:
        self.offsets: dict[str, int] = {}

    def ev(self, et: str, t: int, agent: str = "a1", **body) -> Event:
        source = {"frame": "frames", "detection": "detections", "plan": "plans",
                  "action": "actions", "outcome": "outcomes", "heartbeat": "heartbeats"}[et]
        off = self.offsets.get(source, -1) + 1
        self.offsets[source] = off
        env = {"event_id": body.pop("event_id", str(uuid.uuid4())), "agent_id": agent,
               "session_id": body.pop("session_id", "s1"), "trace_id": "tr",
               "parent_id": body.pop("parent_id", None), "event_time": t, "seq": off,
               "producer": {"name": body.pop("producer", "clawstream-sdk"), "version": "1"}}
        rec = {"envelope": env, **body}
        return Event(et, rec, source, off)


def pipeline(lateness=5 * S, timeout=30 * S, gap=30 * S, specs=None) -> PartitionPipeline:
    return PartitionPipeline(lateness, [
        CorrelationOperator(timeout),
        WindowOperator(specs or [tumbling(10)], lateness_ms=lateness),
        SessionOperator(gap),
    ])


def run(p: PartitionPipeline, events) -> list:
    out = []
    for ev in events:
        out += p.process(ev)
        out += p.advance()
    return out


def aggs(outs, label_size=10 * S):
    return {(o.value["scope_agent"], o.value["scope_app"], o.value["scope_action_kind"],
             o.value["window_start"]): o.value
            for o in outs if o.kind == "aggregate" and o.value["window_size_ms"] == label_size}
