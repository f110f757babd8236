"""Agents' clocks are not trusted (pure logic, no broker): an agent whose clock runs ahead
cannot make other agents' events late, its events are refused past the allowed skew, and the
alert clock is bounded the same way."""

from __future__ import annotations

import uuid

from schemas.headers import (
    LATE_ARRIVAL,
    LATE_REASON,
    REASON_CLOCK_SKEW,
    REASON_LATE,
    LateInfo,
    late_windows,
    parse_late_headers,
)
from schemas.serde import Serde
from streams.alerts import AlertEngine
from streams.alerts.rules import parse_rules
from streams.windowing import (
    CorrelationOperator,
    Event,
    PartitionPipeline,
    SessionOperator,
    WindowOperator,
)
from streams.windowing.state import WindowState
from streams.windowing.windows import tumbling

S = 1000
T0 = 1_767_225_600_000
HOUR = 3600 * S
LATENESS = 5 * S


def event(et: str, t: int, agent: str, offset: int, arrival: int | None,
          app: str = "mail") -> Event:
    env = {"event_id": str(uuid.uuid4()), "agent_id": agent, "session_id": "s",
           "trace_id": "t", "parent_id": None, "event_time": t, "seq": offset,
           "producer": {"name": "clawstream-sdk", "version": "1"}}
    body = {"app": app, "kind": "click"} if et == "action" else {"app": app}
    return Event(et, {"envelope": env, **body}, f"{et}s", offset, arrival=arrival)


def pipeline(max_skew_ms: int | None = 60 * S) -> PartitionPipeline:
    return PartitionPipeline(LATENESS, [
        CorrelationOperator(30 * S),
        WindowOperator([tumbling(10)], lateness_ms=LATENESS),
        SessionOperator(30 * S),
    ], max_skew_ms=max_skew_ms)


def stream(skew_ms: int, seconds: int = 60) -> list[Event]:
    """Two honest agents and one whose clock is `skew_ms` ahead, sharing one partition's
    frame topic: one event each per second, arriving when sent."""
    evs = []
    for i in range(seconds):
        now = T0 + i * S
        for j, (agent, skew) in enumerate((("honest-1", 0), ("skewed", skew_ms),
                                           ("honest-2", 0))):
            evs.append(event("frame", now + skew, agent, 3 * i + j, arrival=now + 50))
    return evs


def run(p: PartitionPipeline, evs: list[Event]) -> list:
    out = []
    for ev in evs:
        out += p.process(ev)
        out += p.advance()
    return out


def late(outs: list, reason: str) -> list:
    return [o for o in outs if o.kind == "late" and o.headers[LATE_REASON] == reason]


def test_an_agent_an_hour_ahead_is_refused_and_makes_nobody_late() -> None:
    p = pipeline()
    outs = run(p, stream(HOUR))
    refused = late(outs, REASON_CLOCK_SKEW)
    assert {o.value.agent for o in refused} == {"skewed"} and len(refused) == 60
    assert late(outs, REASON_LATE) == []
    # the watermark follows what arrived, not the skewed clock
    assert T0 + 59 * S - LATENESS <= p.watermark <= T0 + 60 * S
    aggs = [o.value for o in outs if o.kind == "aggregate"]
    assert all(a["scope_agent"] != "skewed" or not a["counts"] for a in aggs)
    honest = [a for a in aggs if a["scope_agent"] == "honest-1"]
    assert [a["counts"] for a in honest] == [{"frame": 10}] * len(honest) and len(honest) == 5
    # the refusals are counted in the skewed agent's windows (what AgentClockSkew reads)
    skew_counts = sum(a["clock_skew_events"] for a in aggs if a["scope_agent"] == "skewed")
    assert skew_counts >= 40  # every closed window's share (the last ones are still open)
    # in the agent's own scope only (one AgentClockSkew incident per agent, not per app)
    assert {(a["scope_app"], a["scope_action_kind"]) for a in aggs
            if a["clock_skew_events"]} == {("", "")}
    info = parse_late_headers((k, v.encode()) for k, v in refused[0].headers.items())
    assert int(info[LATE_ARRIVAL]) == T0 + 50 and late_windows(info) == []


def test_without_arrival_bounds_the_skewed_agent_makes_the_others_late() -> None:
    """What the old clock did: the highest event time seen moves the watermark."""
    p = pipeline(max_skew_ms=None)
    evs = [Event(e.event_type, e.record, e.source, e.offset) for e in stream(HOUR)]
    assert late(run(p, evs), REASON_LATE)


def test_an_agent_ahead_within_the_allowance_counts_in_its_own_windows() -> None:
    p = pipeline()
    outs = run(p, stream(30 * S))
    assert late(outs, REASON_CLOCK_SKEW) == [] and late(outs, REASON_LATE) == []
    aggs = [o.value for o in outs if o.kind == "aggregate"]
    skewed = sum(a["counts"].get("frame", 0) for a in aggs if a["scope_agent"] == "skewed")
    honest = sum(a["counts"].get("frame", 0) for a in aggs if a["scope_agent"] == "honest-1")
    assert honest == 50 and skewed == 20  # its windows lie 30 s later, so fewer are closed
    assert p.watermark <= T0 + 60 * S


def test_an_agent_behind_is_late_like_a_replayed_spool_not_refused() -> None:
    p = pipeline()
    outs = run(p, stream(-2 * 60 * S))
    assert late(outs, REASON_CLOCK_SKEW) == []
    assert {o.value.agent for o in late(outs, REASON_LATE)} == {"skewed"}


def test_a_refused_event_is_applied_once_across_a_restore() -> None:
    p = pipeline()
    evs = stream(HOUR, seconds=20)
    run(p, evs[:30])
    state = p.take_dirty()
    q = pipeline()
    q.restore(state.items())
    again = run(q, evs)  # the first 30 are replays: skipped by offset
    assert len(late(again, REASON_CLOCK_SKEW)) == 10


def test_window_state_bytes_carry_refusals_and_read_old_bytes() -> None:
    st = WindowState()
    st.clock_skew_events = 4
    assert WindowState.from_bytes(st.to_bytes()).clock_skew_events == 4
    assert WindowState().merge(st).merge(st).clock_skew_events == 8
    import struct

    import orjson

    head = orjson.dumps([{}, {}, 0, 0, 0.0, 0, 0.0, 0, [], {}, 0, 2])  # 12 fields: older state
    old = WindowState.from_bytes(struct.pack("<I", len(head)) + head)
    assert old.late_events == 2 and old.clock_skew_events == 0


def test_aggregates_carry_clock_skew_events_through_the_contract() -> None:
    p = pipeline()
    outs = run(p, stream(HOUR))
    rec = next(o.value for o in outs if o.kind == "aggregate" and o.value["clock_skew_events"])
    serde = Serde()
    assert serde.decode(serde.encode("aggregate", rec)).record["clock_skew_events"] == \
        rec["clock_skew_events"]


def test_late_info_headers_round_trip_and_old_headers_read_as_late() -> None:
    info = LateInfo(REASON_LATE, "frame", "id", T0, T0 + 9 * S, "frames",
                    [("t10000", T0, T0 + 10 * S)], arrival=T0 + 9 * S)
    h = parse_late_headers((k, v.encode()) for k, v in info.headers().items())
    assert h[LATE_REASON] == REASON_LATE and late_windows(h) == [("t10000", T0, T0 + 10 * S)]
    assert parse_late_headers([("clawstream.late.windows", b"[]")])[LATE_REASON] == REASON_LATE


# -- the alert engine's event clock -----------------------------------------------------------
ABSENCE = """
rules:
  - {name: Silent, kind: absence, after: 60s, sources: [heartbeat], wall_clock: false}
"""


def heartbeat(t: int, agent: str) -> dict:
    return {"envelope": {"event_id": str(uuid.uuid4()), "agent_id": agent, "session_id": "s",
                         "trace_id": "t", "parent_id": None, "event_time": t, "seq": 1,
                         "producer": {"name": "sdk", "version": "1"}}, "status": "ok"}


def test_an_agent_an_hour_ahead_does_not_make_the_fleet_look_silent() -> None:
    e = AlertEngine(parse_rules(ABSENCE))
    evs = []
    for i in range(0, 120, 5):
        now = T0 + i * S
        evs += e.process("heartbeat", heartbeat(now, "honest"), now, ("hb", 0, 2 * i))
        evs += e.process("heartbeat", heartbeat(now + HOUR, "skewed"), now, ("hb", 1, 2 * i))
    assert [x for x in evs if x.state == "firing"] == []
    assert e.store["clock"]["ev"] <= T0 + 120 * S
    # without the arrival bound, the skewed clock makes the honest agent silent at once
    e = AlertEngine(parse_rules(ABSENCE))
    e.process("heartbeat", heartbeat(T0, "honest"), None, ("hb", 0, 0))
    fired = e.process("heartbeat", heartbeat(T0 + HOUR, "skewed"), None, ("hb", 1, 0))
    assert [x.labels["agent"] for x in fired if x.state == "firing"] == ["honest"]
