"""The stream worker end to end: real broker, `clawstream worker` subprocesses, the real sink
into chdb. Event-time windows, lateness, correlation, sessions, crash recovery."""

from __future__ import annotations

import json
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from streams_helpers import (
    Emitter,
    WorkerProcess,
    committed_lag,
    decoded,
    element,
    read_topic,
    wait_for_record,
)

from clawstream.settings import Settings
from schemas.topics import EVENT_TOPICS
from streams.app import input_group
from streams.windowing.sketch import decode_sketch

pytestmark = [pytest.mark.integration, pytest.mark.slow]

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


# -- tests ---------------------------------------------------------------------------------
def test_windows_lateness_and_clickhouse_match_offline(cs_settings: Settings) -> None:
    """Out-of-order within lateness: right window; beyond: late topic; CH == offline."""
    from consumers import clickhouse as ch
    from consumers.sink import Sink

    rng = random.Random(11)
    em = Emitter(cs_settings)
    realistic_stream(em, agents=5, seconds=90, rng=rng)
    for a in range(5):
        em.emit("heartbeat", f"agent-{a}", T0 + 100_000)  # watermark -> T0 + 95 s
    em.flush()
    jittered = list(em.sent)

    worker = WorkerProcess(cs_settings, worker_log(cs_settings)).start()
    try:
        wait_for_record(cs_settings, "claw.aggregates.v1",
                        lambda r: r["window_size_ms"] == 60_000 and r["window_start"] == T0)
        # now events far behind the watermark: late for their closed 10 s, 60 s and first
        # hopping windows, still counted in the hopping windows that are open
        late_ids = {em.emit("frame", f"agent-{a}", T0 + 12_000 + a, app="mail",
                            change_ratio=0.5) for a in range(5)}
        em.flush()
        # the worker reads frames and heartbeats as separate topics: let the late frames be
        # judged before the heartbeats below move the watermark far ahead
        deadline = time.monotonic() + 60
        while not late_ids <= set(late_index(cs_settings)[0]) and time.monotonic() < deadline:
            time.sleep(0.5)
        flush_t = T0 + 1_000_000
        for a in range(5):
            em.emit("heartbeat", f"agent-{a}", flush_t)  # moves every watermark far ahead
        em.flush()
        msgs = read_topic(cs_settings, "claw.aggregates.v1", min_count=50, timeout=120, idle=10)
        # what the worker has processed it commits: the group's lag drains to zero
        assert committed_lag(cs_settings, input_group(cs_settings), EVENT_TOPICS) == 0
    finally:
        worker.stop()
    aggs = decoded(msgs)
    ids = Counter(r["envelope"]["event_id"] for r in aggs)
    assert ids and max(ids.values()) == 1, "a window was emitted twice"

    late, late_msgs = late_index(cs_settings)
    assert late_ids <= set(late), "events beyond the lateness must go to the late topic"
    for eid in late_ids:
        assert late[eid] == {("t10000", T0 + 10_000), ("t60000", T0),
                             ("h300000/60000", T0 - 240_000)}
    assert not set(late) - late_ids, "in-order or within-lateness events were reported late"
    assert len(late_msgs) == len(late_ids)

    # lost outcomes the correlator produced are part of the raw outcomes
    events = sent_events(em)
    lost = [r for r in decoded(read_topic(cs_settings, "claw.outcomes.v1", timeout=10, idle=2))
            if r["envelope"]["producer"]["name"] == "clawstream-correlator"]
    n_actions = sum(e["type"] == "action" for e in events)
    n_outcomes = sum(e["type"] == "outcome" for e in events)
    assert len(lost) == n_actions - n_outcomes  # every action without an outcome, once
    wm = flush_t - LATENESS
    expected = expected_windows(
        events + [{"type": "outcome", "id": r["envelope"]["event_id"],
                   "agent": r["envelope"]["agent_id"], "t": r["envelope"]["event_time"],
                   "app": r["app"], "action_kind": r["action_kind"]} for r in lost],
        late, defaultdict(lambda: wm))
    check_windows(aggs, expected, wm)
    assert jittered  # (the stream really had out-of-order events within the lateness)

    # the real sink lands raw events and aggregates in chdb; ClickHouse agrees with offline
    sink = Sink(cs_settings, serve_endpoint=False, serve_metrics_endpoint=False)
    sink.run(until_idle=3.0, max_seconds=120)
    client = ch.connect(cs_settings)
    try:
        q = lambda sql: ch.run_query(client, sql).rows  # noqa: E731
        raw = q("""
            SELECT 'frame', toString(event_id), agent_id, app, '',
              toUnixTimestamp64Milli(event_time), 0 FROM frames
            UNION ALL SELECT 'detection', toString(event_id), agent_id, app, '',
              toUnixTimestamp64Milli(event_time), 0 FROM detection_frames
            UNION ALL SELECT 'action', toString(event_id), agent_id, app, kind,
              toUnixTimestamp64Milli(event_time), 0 FROM actions
            UNION ALL SELECT 'outcome', toString(event_id), agent_id, app, action_kind,
              toUnixTimestamp64Milli(event_time), duration_ms FROM outcomes
            UNION ALL SELECT 'heartbeat', toString(event_id), agent_id, '', '',
              toUnixTimestamp64Milli(event_time), 0 FROM heartbeats""")
        assert len(raw) == len(events) + len(lost)
        offline_events = [{"type": r[0], "id": r[1], "agent": r[2], "app": r[3],
                           "kind": r[4], "action_kind": r[4], "t": r[5], "dur": r[6]}
                          for r in raw]
        offline = expected_windows(offline_events, late, defaultdict(lambda: wm))
        rows = q("""SELECT window_size_ms, window_step_ms, toUnixTimestamp64Milli(window_start),
                           scope_agent, scope_app, scope_action_kind, counts,
                           latency_p50_ms, latency_p95_ms, latency_p99_ms, hex(latency_sketch),
                           late_events
                    FROM window_aggregates""")
        assert len(rows) == len(aggs)
        # windows that hold only late events (their scope had nothing else at the frontier)
        # have no counts; every other row is a window of the offline recomputation
        assert {tuple(r[:6]) for r in rows if r[6]} == set(offline)
        assert all(r[11] > 0 for r in rows if not r[6])
        # each late event is counted once per tumbling family in a closed window current when
        # it arrived (and in all size/step hopping windows holding that pane): fleet-wide and
        # under the event's own scope
        for fleet in (True, False):
            late_sums = Counter()
            for r in rows:
                if (r[3] == "*") == fleet:
                    late_sums[(r[0], r[1])] += r[11]
            assert late_sums == {(10_000, 10_000): 5, (60_000, 60_000): 5,
                                 (300_000, 60_000): 25}, (fleet, late_sums)
        # the late side output lands in ClickHouse with the windows each event missed
        landed = q("SELECT toString(event_id), event_type, source_topic, missed_windows, "
                   "lateness_ms FROM late_events")
        assert {r[0] for r in landed} == late_ids and len(landed) == len(late_ids)
        for r in landed:
            assert r[1] == "frame" and r[2] == "claw.frames.v1" and r[4] > LATENESS
            assert sorted(r[3]) == sorted([f"t10000|{T0 + 10_000}", f"t60000|{T0}",
                                           f"h300000/60000|{T0 - 240_000}"])
        durations: dict[tuple, list[float]] = defaultdict(list)
        lost_ids = {r["envelope"]["event_id"] for r in lost}
        for e in offline_events:
            if e["type"] != "outcome" or e["id"] in lost_ids:
                continue  # lost outcomes have no latency
            for s in starts(e["t"], 60_000, 60_000):
                if ("t60000", s) not in late.get(e["id"], set()):
                    durations[(60_000, 60_000, s, e["agent"], e["app"], e["kind"])].append(
                        e["dur"])
        checked = 0
        for r in rows:
            key = tuple(r[:6])
            assert Counter(r[6]) == offline[key], key
            if key in durations and len(durations[key]) >= 5:
                xs = sorted(durations[key])
                for q_, got in zip((0.5, 0.95, 0.99), r[7:10], strict=True):
                    exact = xs[int(q_ * (len(xs) - 1))]
                    assert abs(got - exact) <= 0.01 * exact + 1e-9, (key, q_, got, exact)
                assert decode_sketch(bytes.fromhex(r[10])).count == len(xs)
                checked += 1
        assert checked >= 5
    finally:
        client.close()


def test_correlation_lost_outcomes_plan_progress_and_sessions(cs_settings: Settings) -> None:
    em = Emitter(cs_settings)
    a = "agent-x"
    plan = em.emit("plan", a, T0, steps=[
        {"index": 0, "description": "open", "action_kind": "click"},
        {"index": 1, "description": "type", "action_kind": "type"}], session_id="ep1")
    a1 = em.emit("action", a, T0 + 1_000, plan_id=plan, step_index=0, session_id="ep1")
    em.emit("outcome", a, T0 + 1_500, action_id=a1, parent_id=a1, session_id="ep1",
            duration_ms=500.0)
    a2 = em.emit("action", a, T0 + 2_000, kind="type", plan_id=plan, step_index=1,
                 session_id="ep1")  # never answered -> lost
    a3 = str(uuid.uuid4())
    em.emit("outcome", a, T0 + 2_400, action_id=a3, parent_id=a3, status="failure",
            session_id="ep1")  # the outcome comes first ...
    em.emit("action", a, T0 + 2_200, event_id=a3, session_id="ep1")  # ... then its action
    em.emit("frame", a, T0 + 5_000, session_id="ep1")
    # second episode after a gap longer than 30 s
    for i in range(3):
        aid = em.emit("action", a, T0 + 70_000 + i * 1_000, session_id="ep2")
        em.emit("outcome", a, T0 + 70_500 + i * 1_000, action_id=aid, session_id="ep2")
    em.raw("claw.actions.v1", a.encode(), b"\x00garbage")  # poison: DLQ, and keep going
    em.emit("heartbeat", a, T0 + 500_000)
    em.flush()

    worker = WorkerProcess(cs_settings, worker_log(cs_settings)).start()
    try:
        sessions = decoded(read_topic(cs_settings, "claw.sessions.v1", min_count=2,
                                      timeout=120, idle=3))
        dead = read_topic(cs_settings, "claw.dlq.v1", min_count=1, timeout=30, idle=1)
        outcomes = decoded(read_topic(cs_settings, "claw.outcomes.v1", min_count=6,
                                      timeout=30, idle=3))
        plans = read_topic(cs_settings, f"{cs_settings.worker_app_id}-plan-progress",
                           min_count=1, timeout=30, idle=2, physical=True)
    finally:
        worker.stop()
    dlq = [{k: v.decode() for k, v in m.headers()} for m in dead]
    assert [(h["clawstream.failed.by"], h["clawstream.error.reason"],
             h["clawstream.source.topic"]) for h in dlq] == [
        ("streams-windows", "no-registry", cs_settings.topic("claw.actions.v1"))]
    lost = [o for o in outcomes if o["status"] == "lost"]
    assert len(lost) == 1, "exactly the unanswered action is lost, once (no loop)"
    assert lost[0]["action_id"] == a2 and lost[0]["envelope"]["parent_id"] == a2
    assert lost[0]["envelope"]["producer"]["name"] == "clawstream-correlator"
    assert lost[0]["envelope"]["event_time"] == T0 + 2_000 + 30_000
    assert lost[0]["action_kind"] == "type" and lost[0]["envelope"]["session_id"] == "ep1"

    progress = [json.loads(m.value()) for m in plans]
    assert [(p["plan_id"], p["steps_done"], p["steps_failed"], p["complete"])
            for p in progress] == [(plan, 1, 1, True)]

    sessions.sort(key=lambda s: s["session_start"])
    assert [(s["session_start"], s["session_end"]) for s in sessions] == [
        (T0, T0 + 5_000), (T0 + 70_000, T0 + 72_500)]
    first, second = sessions
    assert first["envelope"]["session_id"] == "ep1"
    assert (first["steps"], first["successes"], first["failures"]) == (3, 1, 2)  # + lost
    assert first["events"] == 8 and first["success"] is False
    assert (second["steps"], second["successes"], second["failures"]) == (3, 3, 0)
    assert second["success"] is True and second["duration_ms"] == 2_500

    # in ClickHouse (through the real sink): sessions, the lost outcome, plan progress
    from consumers import clickhouse as ch
    from consumers.sink import Sink

    Sink(cs_settings, serve_endpoint=False, serve_metrics_endpoint=False).run(
        until_idle=3.0, max_seconds=120)
    client = ch.connect(cs_settings)
    try:
        q = lambda sql: ch.run_query(client, sql).rows  # noqa: E731
        assert q("SELECT toUnixTimestamp64Milli(session_start), steps, failures, success "
                 "FROM sessions ORDER BY session_start") == [
            (T0, 3, 2, False), (T0 + 70_000, 3, 0, True)]
        assert q("SELECT action_id FROM outcomes WHERE status = 'lost'") == [(a2,)]
        assert q("SELECT plan_id, steps_total, steps_done, steps_failed, complete "
                 "FROM plan_progress") == [(plan, 2, 1, 1, True)]
    finally:
        client.close()


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
        em.emit("heartbeat", a, T0 + 500_000)  # closes every window above
        em.flush()
        assert failing.proc is not None
        assert failing.proc.wait(90) != 0, "the worker stops when processing fails"
    finally:
        failing.stop()
    assert "injected processing failure" in failing.log()

    topic = cs_settings.topic("claw.actions.v1")
    c = Consumer({"bootstrap.servers": cs_settings.bootstrap_servers,
                  "group.id": input_group(cs_settings), "enable.auto.commit": False})
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
    assert all(len(set(v)) == 1 for v in tens.values()), "a re-emitted window is identical"
    per_app = Counter()
    for (_start, app, n), *_ in tens.values():
        per_app[app] += n
    assert per_app == {"mail": 79, "boom": 1}, "every event counted once, across the failure"
