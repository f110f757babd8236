"""CRDT state merging end to end: real broker, a real faust worker subprocess killed with -9
mid-stream, the real sink into chdb. 3 replicas of 5 agents update concurrently, some deltas
are lost (anti-entropy repairs them), the rest are delivered duplicated and shuffled; the
merged state in ClickHouse must equal merging everything in one process, exactly."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from clawstream.kafka.config import client_config
from clawstream.settings import PROJECT_ROOT, Settings
from consumers import clickhouse as ch
from consumers.sink import Sink
from producers.state import AgentStateReplica
from schemas.crdt import AgentCRDT
from schemas.envelope import new_envelope
from schemas.headers import parse_headers
from schemas.serde import Serde
from schemas.topics import AGENT_STATE, DLQ, STATE_DELTAS, TOPICS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AGENTS = [f"crdt-agent-{i}" for i in range(5)]
REPLICAS = 3
STEPS = 80
APPS = ["chrome", "gimp", "terminal"]
LABELS = ["Back", "Save", "Open", "Undo", "Close", "Submit"]


def replica_thread(rep: AgentStateReplica, seed: int, out: list[tuple[str, dict]],
                   lock: threading.Lock) -> None:
    """One replica: random mutations with the wall clock, deltas emitted now and then (10%
    of them lost on the way), a full state mid-run and at the end (anti-entropy)."""
    rng = random.Random(seed)
    for step in range(STEPS):
        op = rng.choice(["act", "act", "spend", "refill", "task", "status", "learn", "learn",
                         "forget", "setting", "del_setting"])
        if op == "act":
            rep.record_action(rng.randint(1, 3))
        elif op == "spend":
            rep.spend_error_budget(1)
        elif op == "refill":
            rep.refill_error_budget(2)
        elif op == "task":
            rep.set_task(f"task-{rng.randint(0, 5)}")
        elif op == "status":
            rep.set_status(rng.choice(["idle", "running", "degraded"]))
        elif op == "learn":
            rep.learn_element(rng.choice(APPS), rng.choice(LABELS))
        elif op == "forget":
            rep.forget_element(rng.choice(APPS), rng.choice(LABELS))
        elif op == "setting":
            rep.set_setting(rng.choice(["mode", "speed"]), str(rng.randint(0, 9)))
        else:
            rep.delete_setting(rng.choice(["mode", "speed"]))
        if rng.random() < 0.3 or step == STEPS // 2:
            bodies = rep.delta_bodies(full_state=step == STEPS // 2)
            with lock:
                out.extend((rep.agent_id, b) for b in bodies if rng.random() >= 0.1)
        time.sleep(rng.random() / 1000)
    with lock:
        out.extend((rep.agent_id, b) for b in rep.delta_bodies(full_state=True))


class TopicWatcher(threading.Thread):
    """Collects every AgentState snapshot produced to the topic (decoded)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.topic = settings.topic(AGENT_STATE)
        self.consumer = Consumer(client_config(settings, "tool", "consumer", {
                                               "group.id": f"watch-{settings.topic_namespace}",
                                  "auto.offset.reset": "earliest", "enable.auto.commit": False}))
        self.records: list[dict[str, Any]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        serde = Serde()
        self.consumer.subscribe([self.topic])
        while not self.halt.is_set():
            msg = self.consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            self.records.append(serde.decode(msg.value()).record)
        self.consumer.close()

    def latest(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for r in list(self.records):
            a = r["envelope"]["agent_id"]
            if a not in out or r["version"] >= out[a]["version"]:
                out[a] = r
        return out


class Worker:
    def __init__(self, tmp: Path) -> None:
        self.tmp, self.n, self.proc = tmp, 0, None

    def start(self) -> None:
        self.n += 1
        env = dict(os.environ, CLAWSTREAM_WORKER_METRICS_PORT="0", CLAWSTREAM_LOG_LEVEL="INFO")
        with open(self.tmp / f"worker-{self.n}.log", "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "streams.state_merge"],
                                         cwd=PROJECT_ROOT, env=env, stdout=out,
                                         stderr=subprocess.STDOUT)

    def kill9(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def logs(self) -> str:
        return "\n".join((self.tmp / f"worker-{i}.log").read_text(errors="replace")[-3000:]
                         for i in range(1, self.n + 1))


def committed_total(settings: Settings) -> int:
    c = Consumer(client_config(settings, "tool", "consumer", {"group.id": settings.worker_app_id}))
    try:
        tps = [TopicPartition(settings.topic(STATE_DELTAS), p)
               for p in range(TOPICS[STATE_DELTAS].partitions)]
        return sum(max(tp.offset, 0) for tp in c.committed(tps, timeout=10))
    finally:
        c.close()


def wait_until(cond: Any, timeout: float, what: str, worker: Worker) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if worker.proc is not None and worker.proc.poll() not in (None, -signal.SIGKILL):
            pytest.fail(f"worker exited ({worker.proc.returncode}) while waiting for {what}\n"
                        f"--- worker logs ---\n{worker.logs()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n--- worker logs ---\n{worker.logs()}")
        time.sleep(0.3)


def test_merged_state_in_clickhouse_equals_one_process_merge(
        cs_settings: Settings, tmp_path: Path) -> None:
    settings = cs_settings
    # --- 3 replicas x 5 agents update concurrently ---------------------------------------
    out: list[tuple[str, dict]] = []
    lock = threading.Lock()
    reps = [AgentStateReplica(a, f"{a}/r{i}") for a in AGENTS for i in range(REPLICAS)]
    threads = [threading.Thread(target=replica_thread, args=(r, n, out, lock))
               for n, r in enumerate(reps)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = {a: AgentCRDT() for a in AGENTS}  # merging everything in one process
    for r in reps:
        expected[r.agent_id].merge(r.state)

    # --- encoded, duplicated, shuffled, plus two poison messages --------------------------
    serde = Serde()
    rng = random.Random(42)
    seqs: dict[str, int] = {}
    msgs: list[tuple[bytes, bytes]] = []
    for agent, body in out:
        seqs[body["replica_id"]] = seqs.get(body["replica_id"], 0) + 1
        env = new_envelope(agent, body["replica_id"], seqs[body["replica_id"]])
        msgs.append((agent.encode(), serde.encode("state_delta", {"envelope": env, **body})))
    msgs += rng.sample(msgs, len(msgs) // 2)
    rng.shuffle(msgs)
    bad_payload = serde.encode("state_delta", {
        "envelope": new_envelope(AGENTS[0], "x", 1), "replica_id": "x", "crdt_type": "gcounter",
        "key": "actions_total", "payload": b"\xff\xff\xff", "full_state": False})
    msgs.insert(len(msgs) // 4, (AGENTS[0].encode(), b"not avro at all"))
    msgs.insert(len(msgs) // 3, (AGENTS[1].encode(), bad_payload))
    half = len(msgs) // 2

    producer = Producer(client_config(settings, "tool", "producer", {"linger.ms": 5}))
    topic = settings.topic(STATE_DELTAS)

    def produce(batch: list[tuple[bytes, bytes]]) -> None:
        for key, value in batch:
            producer.produce(topic, key=key, value=value)
        assert producer.flush(30) == 0

    # --- sink (real, into chdb) and a watcher on the snapshot topic ----------------------
    sink_client = ch.connect(settings)
    sink = Sink(settings, topics=[AGENT_STATE], client=sink_client, serve_endpoint=False,
                serve_metrics_endpoint=False)
    sink_thread = threading.Thread(target=sink.run, daemon=True)
    sink_thread.start()
    watcher = TopicWatcher(settings)
    watcher.start()
    worker = Worker(tmp_path)
    try:
        worker.start()
        produce(msgs[:half])
        wait_until(lambda: len(watcher.latest()) >= 3 and committed_total(settings) > 0,
                   120, "first snapshots and a committed offset", worker)
        assert worker.kill9() == -signal.SIGKILL  # mid-stream: half the deltas not sent yet
        before_kill = len(watcher.records)
        produce(msgs[half:])
        worker.start()

        def converged() -> bool:
            latest = watcher.latest()
            return all(a in latest and AgentCRDT.decode(latest[a]["state"]) == expected[a]
                       for a in AGENTS) and "*" in latest and \
                latest["*"]["version"] == sum(latest[a]["version"] for a in AGENTS)

        wait_until(converged, 180, "merged snapshots equal to the one-process merge", worker)
        assert len(watcher.records) > before_kill
        latest = watcher.latest()

        def in_clickhouse() -> bool:
            rows = ch.run_query(sink_client, "SELECT agent_id, version FROM agent_state FINAL")
            got = {r[0]: r[1] for r in rows.rows}
            return all(got.get(a) == latest[a]["version"] for a in [*AGENTS, "*"])

        wait_until(in_clickhouse, 60, "the sink to land the final versions", worker)
    finally:
        worker.stop()
        sink.stop()
        sink_thread.join(30)
        watcher.halt.set()
        watcher.join(10)

    # the restarted worker rebuilt its table from the changelog (not from scratch)
    recovered = re.findall(r"recovered from its changelog: (\d+) agents",
                           (tmp_path / "worker-2.log").read_text())
    assert recovered and max(map(int, recovered)) > 0, worker.logs()

    # --- ClickHouse holds exactly the one-process merge --------------------------------------
    res = ch.run_query(sink_client, "SELECT agent_id, version, hex(state) AS state_hex, "
                       "actions_total, "
                       "error_budget, current_task, status, ui_memory, settings, replicas "
                       "FROM agent_state FINAL ORDER BY agent_id")
    rows = {r["agent_id"]: r for r in res.dicts()}
    assert set(rows) == {*AGENTS, "*"}
    for a in AGENTS:
        row, view = rows[a], expected[a].view()
        assert AgentCRDT.decode(bytes.fromhex(row["state_hex"])) == expected[a], a
        assert row["version"] == latest[a]["version"]
        for f in ("actions_total", "error_budget", "current_task", "status", "replicas"):
            assert row[f] == view[f], (a, f)
        assert {k: sorted(v) for k, v in row["ui_memory"].items()} == view["ui_memory"]
        assert row["settings"] == view["settings"]
        assert len(view["replicas"]) == REPLICAS
    fleet = rows["*"]
    views = [expected[a].view() for a in AGENTS]
    assert fleet["actions_total"] == sum(v["actions_total"] for v in views)
    assert fleet["error_budget"] == sum(v["error_budget"] for v in views)
    union: dict[str, set[str]] = {}
    for v in views:
        for app, labels in v["ui_memory"].items():
            union.setdefault(app, set()).update(labels)
    assert {k: set(v) for k, v in fleet["ui_memory"].items()} == union
    assert fleet["settings"]["agents"] == "5"
    assert fleet["version"] == sum(rows[a]["version"] for a in AGENTS)

    # a version never names two different states, even across the crash and redelivery
    by_version: dict[tuple[str, int], bytes] = {}
    for r in watcher.records:
        k = (r["envelope"]["agent_id"], r["version"])
        if k[0] != "*":
            assert by_version.setdefault(k, r["state"]) == r["state"], k

    # --- the two poison messages are in the DLQ with reasons ---------------------------------
    c = Consumer(client_config(settings, "tool", "consumer", {
                               "group.id": f"dlq-{settings.topic_namespace}",
                               "auto.offset.reset": "earliest"}))
    c.subscribe([settings.topic(DLQ)])
    reasons = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(reasons) < 2:
        m = c.poll(0.5)
        if m is not None and not m.error():
            h = parse_headers(m.headers())
            if h.get("clawstream.failed.by") == "state-merge":
                reasons.append(h["clawstream.error.reason"])
    c.close()
    assert sorted(set(reasons)) == ["bad-crdt-payload", "bad-magic"]
    sink_client.close()
