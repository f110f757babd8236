"""The stream worker end to end: real broker, `clawstream worker` subprocesses, the real sink
into chdb. Event-time windows, lateness, correlation, sessions (crash recovery:
test_streams_worker_recovery.py)."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter, defaultdict

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
    realistic_stream,
    sent_events,
    starts,
    wait_for_record,
    worker_log,
)

from clawstream.settings import Settings
from schemas.topics import EVENT_TOPICS
from streams.app import input_group
from streams.windowing.sketch import decode_sketch

pytestmark = [pytest.mark.integration, pytest.mark.slow]


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
