"""Fast unit tests of the pure event-time operators besides the windows: correlation (lost
outcomes, plan progress), sessions, and the fleet merge (no broker)."""

from __future__ import annotations

from streams_helpers import Maker, S, aggs, pipeline, run

from schemas.serde import Serde
from streams.windowing import (
    CORRELATOR,
    Event,
)
from streams.windowing.fleet import (
    FleetMerger,
    decode_report,
    encode_keepalive,
    encode_report,
)
from streams.windowing.state import FLEET, WindowState
from streams.windowing.watermark import NEVER


# -- correlation ---------------------------------------------------------------------------------
def test_action_outcome_pairs_lost_outcome_and_no_loop() -> None:
    m = Maker()
    p = pipeline(timeout=30 * S)
    cor = p.operators["cor"]
    evs = [m.ev("action", 1 * S, app="mail", kind="click", event_id="A1"),
           m.ev("outcome", 2 * S, app="mail", action_kind="click", status="success",
                duration_ms=1000.0, action_id="A1", parent_id="A1"),
           m.ev("outcome", 3 * S, app="mail", action_kind="type", status="failure",
                duration_ms=20.0, action_id="A3"),          # arrives before its action
           m.ev("action", 2500, app="mail", kind="type", event_id="A3"),
           m.ev("action", 5 * S, app="mail", kind="click", event_id="A2"),  # never answered
           m.ev("heartbeat", 60 * S)]
    out = run(p, evs)
    assert sorted((pr.action_id, pr.status) for pr in cor.pairs) == [
        ("A1", "success"), ("A2", "lost"), ("A3", "failure")]
    lost = [o.value for o in out if o.kind == "outcome"]
    assert len(lost) == 1
    rec = lost[0]
    assert rec["status"] == "lost" and rec["action_id"] == "A2"
    assert rec["envelope"]["producer"]["name"] == CORRELATOR
    assert rec["envelope"]["event_time"] == 35 * S
    Serde().encode("outcome", rec)
    # counted once, in the window of its event time, and not late
    a = aggs(out)
    assert a[("a1", "mail", "click", 30 * S)]["outcomes"] == {"lost": 1}
    assert a[("a1", "mail", "click", 30 * S)]["lost_outcomes"] == 1
    assert not [o for o in out if o.kind == "late"]
    # reading its own output back changes nothing
    back = Event("outcome", rec, "outcomes", 99)
    assert p.process(back) == []
    assert cor.pairs[-1].action_id != "again"
    out2 = p.advance()
    assert not [o for o in out2 if o.kind == "outcome"]


def test_plan_progress_done_and_failed() -> None:
    m = Maker()
    p = pipeline(timeout=10 * S)
    plan = m.ev("plan", 0, app="mail", goal="send", event_id="P1",
                steps=[{"index": i} for i in range(3)])
    evs = [plan]
    for i, status in enumerate(["success", "failure", None]):
        evs.append(m.ev("action", (i + 1) * S, app="mail", kind="click", event_id=f"A{i}",
                        plan_id="P1", step_index=i))
        if status:
            evs.append(m.ev("outcome", (i + 1) * S + 500, status=status, duration_ms=5.0,
                            action_id=f"A{i}"))
    evs.append(m.ev("heartbeat", 100 * S))
    plans = [o.value for o in run(p, evs) if o.kind == "plan"]
    assert len(plans) == 1
    assert plans[0]["steps_total"] == 3 and plans[0]["steps_done"] == 1
    assert plans[0]["steps_failed"] == 2 and plans[0]["complete"]


# -- sessions ------------------------------------------------------------------------------------
def test_sessions_split_on_gap_merge_bridges_and_emit_once() -> None:
    m = Maker()
    p = pipeline(gap=30 * S, timeout=1000 * S, lateness=30 * S)
    evs = [m.ev("action", 0, app="mail", kind="click"),
           m.ev("outcome", 1 * S, status="success", duration_ms=1.0, action_id="q"),
           m.ev("action", 50 * S, app="calc", kind="type"),      # new session (gap 49 s)
           m.ev("frame", 25 * S, app="calc", change_ratio=0.0),  # bridges both: merge
           m.ev("action", 200 * S, app="mail", kind="click"),    # third session
           m.ev("heartbeat", 400 * S)]                            # heartbeats are not activity
    out = run(p, evs)
    sessions = [o.value for o in out if o.kind == "session"]
    assert [(s["session_start"], s["session_end"]) for s in sessions] == [
        (0, 50 * S), (200 * S, 200 * S)]
    first = sessions[0]
    assert first["events"] == 4 and first["steps"] == 2 and first["successes"] == 1
    assert first["success"] is True and first["apps"] == ["calc", "mail"]
    assert len({s["envelope"]["event_id"] for s in sessions}) == 2
    for s in sessions:
        Serde().encode("session", s)


def test_lost_outcome_is_counted_in_the_session_of_its_action() -> None:
    m = Maker()
    p = pipeline(gap=30 * S, timeout=30 * S)
    out = run(p, [m.ev("action", 0, kind="click", event_id="L1"), m.ev("heartbeat", 100 * S)])
    sessions = [o.value for o in out if o.kind == "session"]
    assert len(sessions) == 1
    assert sessions[0]["failures"] == 1 and sessions[0]["success"] is False


# -- fleet ---------------------------------------------------------------------------------------
def test_fleet_merge_min_watermark_idle_and_idempotent_resend() -> None:
    st = WindowState()
    st.add("frame", {"change_ratio": 0.5}, "a1", 1)
    st2 = WindowState()
    st2.add("frame", {"change_ratio": 0.5}, "a2", 2)
    key = "t10000|0|*|*|*"
    f = FleetMerger(started_at=0.0)
    p0, wm0, parts0, has0 = decode_report(encode_report(0, 12 * S, {key: st}))
    assert has0
    f.report(p0, wm0, parts0, now=2.0)
    f.report(1, 5 * S, {}, now=2.0)
    assert f.advance(now=2.1) == []  # partition 1 is behind
    f.report(1, 11 * S, {key: st2.to_bytes()}, now=2.5)
    f.report(1, 11 * S, {key: st2.to_bytes()}, now=2.6)  # re-sent after a crash: replaces, not adds
    recs = f.advance(now=2.7)
    assert len(recs) == 1
    assert recs[0]["counts"] == {"frame": 2} and recs[0]["active_agents"] == 2
    assert recs[0]["scope_agent"] == FLEET.agent
    # partition 1 does not move, its owner says it is alive (it cannot read it, say): it
    # holds the fleet, however long; its owner moves it on when it is merely quiet
    f.report(0, 40 * S, {"t10000|20000|*|*|*": st.to_bytes()}, now=3.0)
    assert f.advance(now=3.1) == []
    for t in (5.5, 30.0, 90.0):
        f.report(*decode_report(encode_keepalive(1)), now=t)
        assert f.advance(now=t + 0.5) == []
    f.report(1, 35 * S, {"t10000|20000|*|*|*": st2.to_bytes()}, now=91.0)
    recs = f.advance(now=91.5)
    assert [(r["window_start"], r["counts"]) for r in recs] == [(20 * S, {"frame": 2})]
    f.report(1, 12 * S, {key: st2.to_bytes()}, now=92.0)  # a partial for a closed window is late
    assert f.late_partials == 1


def test_fleet_waits_for_partitions_that_never_reported() -> None:
    """After a (re)start, a partition whose owner has not reported yet holds the fleet like a
    silent owner: its share is not left out because another partition spoke first."""
    st = WindowState()
    st.add("frame", {"change_ratio": 0.5}, "a1", 1)
    f = FleetMerger(started_at=0.0, partitions=2, failover_s=30.0)
    f.report(0, 40 * S, {"t10000|0|*|*|*": st.to_bytes()}, now=1.0)
    assert f.advance(now=20.0) == []
    f.report(1, 40 * S, {"t10000|0|*|*|*": st.to_bytes()}, now=21.0)
    assert [r["counts"] for r in f.advance(now=21.5)] == [{"frame": 2}]
    f.report(0, 60 * S, {"t10000|40000|*|*|*": st.to_bytes()}, now=22.0)
    g = FleetMerger(started_at=0.0, partitions=2, failover_s=30.0)
    g.report(0, 40 * S, {"t10000|0|*|*|*": st.to_bytes()}, now=1.0)
    assert g.advance(now=29.0) == []
    assert [r["window_start"] for r in g.advance(now=31.0)] == [0]  # nobody else, ever
    # a partition whose owner says it never applied an event holds nothing
    h = FleetMerger(started_at=0.0, partitions=2, failover_s=30.0)
    h.report(0, 40 * S, {"t10000|0|*|*|*": st.to_bytes()}, now=1.0)
    h.report(*decode_report(encode_report(1, NEVER, {}, has_data=False)), now=1.5)
    assert [r["counts"] for r in h.advance(now=2.0)] == [{"frame": 1}]


def test_fleet_waits_for_a_partition_whose_owner_went_silent() -> None:
    """A killed or frozen owner sends no keepalive: its partition holds fleet windows until
    the next owner reports (its partials are not late), or `failover_s` passed."""
    st = WindowState()
    st.add("frame", {"change_ratio": 0.5}, "a1", 1)
    f = FleetMerger(started_at=0.0, failover_s=30.0)
    f.report(0, 5 * S, {}, now=1.0)
    f.report(1, 5 * S, {}, now=1.0)
    for t in (2.0, 4.0, 6.0, 8.0):  # partition 0 keeps going; partition 1's owner is gone
        f.report(0, 40 * S, {"t10000|0|*|*|*": st.to_bytes()}, now=t)
    assert f.advance(now=8.5) == []
    f.report(1, 40 * S, {"t10000|0|*|*|*": st.to_bytes()}, now=12.0)  # the new owner
    recs = f.advance(now=12.1)
    assert len(recs) == 1 and recs[0]["counts"] == {"frame": 2} and f.late_partials == 0
    # nobody takes over: after failover_s the fleet moves on without it
    f.report(0, 80 * S, {"t10000|40000|*|*|*": st.to_bytes()}, now=13.0)
    assert f.advance(now=41.0) == []
    assert [r["window_start"] for r in f.advance(now=43.0)] == [40 * S]
