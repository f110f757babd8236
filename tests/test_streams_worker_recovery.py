"""The stream worker's recovery end to end: kill -9, scale-out and a frozen worker mid-stream,
and a processing failure; real broker, `clawstream worker` subprocesses."""

from __future__ import annotations

import random
import sys
import threading
import time
from collections import Counter, defaultdict
from typing import Any

import pytest
from streams_helpers import (
    LATENESS,
    T0,
    Emitter,
    WorkerProcess,
    check_windows,
    committed_lag,
    decoded,
    expected_windows,
    late_index,
    read_topic,
    sent_events,
    worker_log,
)

from clawstream.kafka.config import client_config
from clawstream.settings import Settings
from streams.app import input_group

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("disruption", ["kill9", "scale_out", "freeze"])
def test_kill9_mid_stream_loses_and_double_counts_nothing(cs_settings: Settings,
                                                          disruption: str) -> None:
    """A worker killed with -9 mid-stream and restarted, a second worker joining and taking
    partitions over with their state, or a worker frozen past its session timeout while a
    second one joins (the group gives the second everything; the thawed first must notice
    before it writes anything, then takes half back): every window once, counts exact."""
    em = Emitter(cs_settings)
    rng = random.Random(5)
    agents = [f"agent-{i}" for i in range(4)]
    stop = threading.Event()
    speed = 3  # event time runs 3x the wall clock, so many windows close during the run
    start_wall = time.monotonic()

    def produce() -> None:
        last: dict[str, int] = {}
        while not stop.is_set():
            now = T0 + int((time.monotonic() - start_wall) * 1000 * speed)
            for agent in agents:
                t = max(last.get(agent, T0), now - rng.randint(0, 1_500))
                kind = rng.choice(["frame", "action", "heartbeat"])
                if kind == "action":
                    aid = em.emit("action", agent, t, kind=rng.choice(["click", "type"]))
                    em.emit("outcome", agent, t + 50, action_id=aid, duration_ms=50.0)
                else:
                    em.emit(kind, agent, t)
                last[agent] = t
            em.producer.poll(0)
            time.sleep(0.01)

    log = worker_log(cs_settings)
    worker = WorkerProcess(cs_settings, log).start()
    second_log = log.with_suffix(".second.log")
    second: WorkerProcess | None = None
    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        # wait until the first windows come out, then disrupt mid-stream
        first = read_topic(cs_settings, "claw.aggregates.v1", min_count=5, timeout=90, idle=0.5)
        assert first, "worker produced nothing before the disruption"
        time.sleep(2.0)
        if disruption == "kill9":
            worker.kill9()
            time.sleep(3.0)
            worker = WorkerProcess(cs_settings, log).start()
        elif disruption == "freeze":
            worker.freeze()
            second = WorkerProcess(cs_settings, second_log).start()
            time.sleep(25.0)  # > the session timeout (10 s): the group moves on without it
            worker.thaw()
        else:
            second = WorkerProcess(cs_settings, second_log).start()
        time.sleep(15.0)
        stop.set()
        thread.join()
        flush_t = max(e["envelope"]["event_time"] for e in em.sent) + 400_000
        for agent in agents:
            em.emit("heartbeat", agent, flush_t)
        em.flush()
        time.sleep(5.0)
        msgs = read_topic(cs_settings, "claw.aggregates.v1", min_count=1, timeout=120, idle=10)
    finally:
        stop.set()
        if disruption == "freeze":
            worker.thaw()  # (a no-op unless the test failed while it was frozen)
        worker.stop()
        if second is not None:
            second.stop()
    if disruption == "kill9":
        assert "restored" in log.read_text(), "the restarted worker did not restore its state"
    else:
        assert "restored" in second_log.read_text(), "no partition moved with its state"
    if disruption == "freeze":
        text = log.read_text()
        assert "longer than the session timeout" in text, "the pause went unnoticed"
        assert "assignment of" in text and "lost" in text, "the thawed worker never noticed"
    aggs = decoded(msgs)
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in aggs:
        by_id[r["envelope"]["event_id"]].append(r)
    for copies in by_id.values():  # a re-emission after the crash is the same window, same counts
        assert all(c["counts"] == copies[0]["counts"] for c in copies)
    unique = [copies[0] for copies in by_id.values()]
    late, _ = late_index(cs_settings)
    events = sent_events(em)
    on_kafka = set()
    for topic in ("claw.frames.v1", "claw.actions.v1", "claw.outcomes.v1",
                  "claw.heartbeats.v1"):
        on_kafka |= {r["envelope"]["event_id"]
                     for r in decoded(read_topic(cs_settings, topic, timeout=30, idle=1))}
    assert {e["id"] for e in events} <= on_kafka, "the producer lost events (not the worker)"
    wm = flush_t - LATENESS
    expected = expected_windows(events, late, defaultdict(lambda: wm))
    check_windows(unique, expected, wm)
    # every event is in its closed 10 s window or on the late topic for it, exactly once
    closed = [e for e in events if e["t"] - e["t"] % 10_000 + 10_000 <= wm]
    counted = sum(sum(r["counts"].values()) for r in unique
                  if r["window_size_ms"] == 10_000 and r["scope_agent"] != "*")
    n_late = sum(("t10000", e["t"] - e["t"] % 10_000) in late.get(e["id"], set())
                 for e in closed)
    assert counted + n_late == len(closed)


# A worker whose processing raises on one crafted event (an action of app "boom"): the real
# `clawstream worker`, with the pipeline's `process` wrapped.
FAILING_WORKER = """
import sys
from streams.windowing.pipeline import PartitionPipeline

process = PartitionPipeline.process


def failing(self, ev):
    if ev.record.get("app") == "boom":
        raise RuntimeError("injected processing failure")
    return process(self, ev)


PartitionPipeline.process = failing
from clawstream.cli import main

sys.argv = ["clawstream", "worker"]
main()
"""


def test_a_processing_failure_commits_nothing_past_it_and_a_restart_counts_each_event_once(
        cs_settings: Settings) -> None:
    from confluent_kafka import Consumer, TopicPartition

    em = Emitter(cs_settings)
    a = "agent-f"
    inputs = ("claw.actions.v1", "claw.heartbeats.v1")  # (the worker adds lost outcomes)
    for i in range(40):  # T0 .. T0 + 19.5 s: the first 10 s window closes, the rest persists
        em.emit("action", a, T0 + i * 500)
    em.flush()
    log = worker_log(cs_settings)
    failing = WorkerProcess(cs_settings, log, argv=[sys.executable, "-c", FAILING_WORKER])
    failing.start()
    try:
        assert committed_lag(cs_settings, input_group(cs_settings), inputs, timeout=90) == 0
        for i in range(40, 60):
            em.emit("action", a, T0 + i * 500)
        em.emit("action", a, T0 + 30_000, app="boom")  # offset 60 of the agent's partition
        for i in range(61, 80):
            em.emit("action", a, T0 + i * 500)
        # the heartbeat closes every window above: on Kafka after the actions (another topic:
        # flushed together, it may be appended first, making the last actions late in the
        # live run and not in the replay, a re-emitted window then counting more)
        em.flush()
        em.emit("heartbeat", a, T0 + 500_000)
        em.flush()
        assert failing.proc is not None
        assert failing.proc.wait(90) != 0, "the worker stops when processing fails"
    finally:
        failing.stop()
    assert "injected processing failure" in failing.log()

    topic = cs_settings.topic("claw.actions.v1")
    c = Consumer(client_config(cs_settings, "tool", "consumer", {
                               "group.id": input_group(cs_settings), "enable.auto.commit": False}))
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        committed = {tp.partition: tp.offset for tp in c.committed(
            [TopicPartition(topic, p) for p in parts], timeout=10)}
    finally:
        c.close()
    assert max(committed.values()) <= 60, "nothing at or past the failing event is committed"

    worker = WorkerProcess(cs_settings, log).start()
    try:
        assert committed_lag(cs_settings, input_group(cs_settings), inputs, timeout=90) == 0
        aggregates = decoded(read_topic(cs_settings, "claw.aggregates.v1", timeout=60,
                                        idle=3))
    finally:
        worker.stop()
    tens = defaultdict(list)  # 10 s windows of the agent, by event id (re-emissions share it)
    for rec in aggregates:
        if rec["scope_agent"] == a and rec["window_size_ms"] == 10_000:
            tens[rec["envelope"]["event_id"]].append(
                (rec["window_start"], rec["scope_app"], rec["counts"].get("action", 0)))
    differ = {k: v for k, v in tens.items() if len(set(v)) != 1}
    assert not differ, f"a re-emitted window is identical: {differ}"
    per_app = Counter()
    for (_start, app, n), *_ in tens.values():
        per_app[app] += n
    assert per_app == {"mail": 79, "boom": 1}, "every event counted once, across the failure"
