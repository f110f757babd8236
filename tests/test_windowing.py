"""Fast unit tests of the pure event-time logic (no broker)."""

from __future__ import annotations

import random
import uuid

import pytest
from streams_helpers import Maker, S, aggs, pipeline, run

from schemas.serde import Serde
from streams.windowing import (
    WindowOperator,
    WindowSpec,
    parse_specs,
)
from streams.windowing.fleet import (
    FleetMerger,
)
from streams.windowing.sketch import (
    decode_sketch,
    encode_sketch,
    merge_encoded,
    new_sketch,
    quantiles,
)
from streams.windowing.state import DERIVED_NS, WindowState, derived_id
from streams.windowing.watermark import NEVER, PartitionClock
from streams.windowing.windows import hopping, tumbling


# -- windows -------------------------------------------------------------------------------------
def test_tumbling_assignment_boundaries() -> None:
    w = tumbling(10)
    assert w.assign(0) == [(0, 10_000)]
    assert w.assign(9_999) == [(0, 10_000)]
    assert w.assign(10_000) == [(10_000, 20_000)]
    assert w.assign(-1) == [(-10_000, 0)]


def test_hopping_assignment_covers_size_over_step_windows() -> None:
    w = hopping(300, 60)
    got = w.assign(125_000)
    assert got == [(-120_000, 180_000), (-60_000, 240_000), (0, 300_000),
                   (60_000, 360_000), (120_000, 420_000)]
    assert all(s <= 125_000 < e for s, e in got)
    assert len(hopping(10, 3).assign(7_000)) in (3, 4)
    for t in range(0, 20_000, 7):  # every window containing t, and only those
        starts = {s for s, _ in hopping(10, 3).assign(t)}
        assert starts == {s for s in range(-12_000, 21_000, 3_000) if s <= t < s + 10_000}


def test_parse_specs_from_settings_strings() -> None:
    specs = parse_specs("10,60", "300/60")
    assert specs == [WindowSpec(10_000, 10_000), WindowSpec(60_000, 60_000),
                     WindowSpec(300_000, 60_000)]
    assert [s.kind for s in specs] == ["tumbling", "tumbling", "hopping"]
    with pytest.raises(ValueError):
        WindowSpec(10, 20)


# -- sketch --------------------------------------------------------------------------------------
def test_sketch_roundtrip_merge_and_accuracy() -> None:
    rng = random.Random(7)
    xs = [rng.lognormvariate(5, 1.2) for _ in range(20_000)]
    a, b, both = new_sketch(), new_sketch(), new_sketch()
    for i, x in enumerate(xs):
        (a if i % 2 else b).add(x)
        both.add(x)
    merged = decode_sketch(merge_encoded(encode_sketch(a), encode_sketch(b, dense=True)))
    assert merged.count == len(xs)
    xs.sort()
    for q in (0.5, 0.95, 0.99):
        exact = xs[int(q * (len(xs) - 1))]
        assert merged.get_quantile_value(q) == pytest.approx(both.get_quantile_value(q))
        assert abs(merged.get_quantile_value(q) - exact) / exact <= 0.011
    assert decode_sketch(encode_sketch(both, dense=True)).get_quantile_value(0.5) == \
        both.get_quantile_value(0.5)
    assert len(encode_sketch(both)) < len(encode_sketch(both, dense=True))
    assert encode_sketch(new_sketch()) == b""
    assert decode_sketch(b"").count == 0
    with pytest.raises(ValueError):
        decode_sketch(b"XX\x01garbage")


@pytest.mark.parametrize("values", [
    [0.0, 0.0, 0.0, 5.0],  # ranks inside the zero bucket
    [3.0],
    [float(v) for v in range(1, 200)],
    "lognormal",
])
def test_quantiles_equal_ddsketch(values: list[float] | str) -> None:
    """The one-pass quantiles give DDSketch's own values, zero bucket and ends included."""
    if values == "lognormal":
        rng = random.Random(11)
        values = [rng.lognormvariate(4, 1.5) for _ in range(5_000)]
    sk = new_sketch()
    for v in values:
        sk.add(v)
    qs = (0.0, 0.5, 0.95, 0.99, 1.0)
    assert quantiles(sk, qs) == [sk.get_quantile_value(q) for q in qs]
    assert quantiles(new_sketch()) == [None, None, None]


# -- state ---------------------------------------------------------------------------------------
def test_window_state_merge_is_commutative_and_roundtrips() -> None:
    m = Maker()
    evs = [m.ev("outcome", 1, status="success", duration_ms=10.0, action_id="x"),
           m.ev("outcome", 2, agent="a2", status="failure", duration_ms=30.0, action_id="y"),
           m.ev("frame", 3, change_ratio=0.5),
           m.ev("detection", 4, elements=[{"ocr_confidence": 0.8}, {"ocr_confidence": None}])]
    parts = [WindowState() for _ in evs]
    for st, ev in zip(parts, evs, strict=True):
        st.add(ev.event_type, ev.record, ev.agent, ev.event_time)
    ab = WindowState().merge(parts[0]).merge(parts[1]).merge(parts[2]).merge(parts[3])
    ba = WindowState().merge(parts[3]).merge(parts[2]).merge(parts[1]).merge(parts[0])
    for st in (ab, ba, WindowState.from_bytes(ab.to_bytes())):
        assert st.counts == {"outcome": 2, "frame": 1, "detection": 1}
        assert st.outcomes == {"success": 1, "failure": 1}
        assert st.success_rate == 0.5
        assert st.agents == {"a1", "a2"}
        assert st.detections == 2 and st.ocr_n == 1
        assert st.sketch.count == 2


# -- watermark -----------------------------------------------------------------------------------
def test_clock_is_monotonic_and_waits_for_lagging_sources() -> None:
    c = PartitionClock(5 * S)
    assert c.candidate() == NEVER
    c.observe("frames", 0, 100 * S)
    assert c.advance({"frames": False, "outcomes": True}) is False  # outcomes not read yet
    c.observe("outcomes", 0, 20 * S)
    c.advance({"frames": False, "outcomes": True})
    assert c.watermark == 15 * S  # held at the lagging source's progress
    c.advance({"frames": False, "outcomes": False})
    assert c.watermark == 95 * S
    c.observe("outcomes", 1, 30 * S)
    c.advance({"outcomes": True})
    assert c.watermark == 95 * S  # never goes back
    assert c.is_replay("outcomes", 1) and not c.is_replay("outcomes", 2)


# -- windows pipeline ------------------------------------------------------------------------------
def test_out_of_order_within_lateness_counts_in_right_window_and_late_goes_out() -> None:
    m = Maker()
    p = pipeline()
    evs = [m.ev("frame", 1 * S, change_ratio=0.1), m.ev("frame", 12 * S, change_ratio=0.1),
           m.ev("frame", 8 * S, change_ratio=0.1),   # out of order, wm = 7 s: on time
           m.ev("frame", 16 * S, change_ratio=0.1),  # wm -> 11 s: closes [0, 10)
           m.ev("frame", 9 * S, change_ratio=0.1),   # beyond lateness: late
           m.ev("heartbeat", 40 * S)]                # closes [10, 20)
    out = run(p, evs)
    a = aggs(out)
    assert a[("a1", "", "", 0)]["counts"] == {"frame": 2}
    assert a[("a1", "", "", 10 * S)]["counts"] == {"frame": 2}
    late = [o for o in out if o.kind == "late"]
    assert len(late) == 1 and late[0].value.event_time == 9 * S
    assert late[0].headers["clawstream.late.windows"] == '[["t10000",0,10000]]'
    keys = [(o.value["window_start"], o.value["scope_agent"]) for o in out if o.kind == "aggregate"]
    assert len(keys) == len(set(keys))  # each window emitted once
    fleet = [o for o in out if o.kind == "fleet_partial"]
    assert {o.key for o in fleet} == {"t10000|0|*|*|*", "t10000|10000|*|*|*"}
    assert fleet[0].value.counts == {"frame": 2}


def test_scopes_split_by_app_and_action_kind_and_aggregate_fields() -> None:
    m = Maker()
    p = pipeline(specs=[tumbling(10)], timeout=100 * S)
    evs = [m.ev("action", 1 * S, app="mail", kind="click", event_id="A1"),
           m.ev("outcome", 2 * S, app="mail", action_kind="click", status="success",
                duration_ms=100.0, action_id="A1"),
           m.ev("outcome", 3 * S, app="mail", action_kind="click", status="failure",
                duration_ms=300.0, action_id="A2"),
           m.ev("action", 4 * S, app="mail", kind="type"),
           m.ev("detection", 5 * S, app="mail", frame_id="f",
                elements=[{"ocr_confidence": 0.5}, {"ocr_confidence": 0.7}, {}]),
           m.ev("heartbeat", 30 * S)]
    a = aggs(run(p, evs))
    click = a[("a1", "mail", "click", 0)]
    assert click["counts"] == {"action": 1, "outcome": 2}
    assert click["outcomes"] == {"success": 1, "failure": 1}
    assert click["success_rate"] == 0.5
    assert click["latency_p50_ms"] == pytest.approx(100, rel=0.01)
    sk = decode_sketch(click["latency_sketch"])
    assert sk.count == 2 and sk.get_quantile_value(1.0) == pytest.approx(300, rel=0.01)
    det = a[("a1", "mail", "", 0)]
    assert det["detections"] == 3 and det["detection_events"] == 1
    assert det["ocr_confidence_mean"] == pytest.approx(0.6)
    assert det["detections_per_frame"] == 3
    assert a[("a1", "mail", "type", 0)]["counts"] == {"action": 1}
    serde = Serde()
    for rec in a.values():
        assert serde.decode(serde.encode("aggregate", rec)).record["counts"] == rec["counts"]


def test_lagging_source_holds_windows_open() -> None:
    m = Maker()
    p = pipeline()
    p.process(m.ev("frame", 1 * S, change_ratio=0.0))
    p.process(m.ev("frame", 50 * S, change_ratio=0.0))
    assert p.advance({"frames": False, "outcomes": True}) == []  # outcomes backlog unread
    p.process(m.ev("outcome", 2 * S, status="success", duration_ms=1.0, action_id="z"))
    out = p.advance({"frames": False, "outcomes": False})
    a = aggs(out)
    assert a[("a1", "", "", 0)]["counts"] == {"frame": 1}
    assert ("a1", "", "other", 0) in a  # the outcome was not late


def test_crash_and_restore_from_changelog_neither_loses_nor_double_counts() -> None:
    rng = random.Random(3)
    m = Maker()
    evs = []
    t = 0
    for _ in range(600):
        t += rng.randint(0, 400)
        et = rng.choice(["frame", "outcome", "heartbeat"])
        body = ({"change_ratio": 0.2} if et == "frame" else
                {"status": rng.choice(["success", "failure"]), "duration_ms": 5.0,
                 "action_id": str(uuid.uuid4())} if et == "outcome" else {})
        evs.append(m.ev(et, max(0, t - rng.randint(0, 3000)), agent=rng.choice("xyz"), **body))
    evs.append(m.ev("heartbeat", t + 600 * S))
    reference = [o for o in run(pipeline(specs=[tumbling(10), hopping(60, 20)]), evs)]

    # Crash: changelog holds the state after event 400, offsets committed only up to 250.
    p1 = pipeline(specs=[tumbling(10), hopping(60, 20)])
    changelog: dict[str, bytes | None] = {}
    emitted = []
    for i, ev in enumerate(evs[:400]):
        emitted += p1.process(ev) + p1.advance()
        if i % 37 == 0 or i == 399:
            changelog.update(p1.take_dirty())
    p2 = pipeline(specs=[tumbling(10), hopping(60, 20)])
    assert p2.restore(changelog.items()) > 0
    for ev in evs[250:]:
        emitted += p2.process(ev) + p2.advance()

    def by_id(outs):
        return {o.value["envelope"]["event_id"]: o.value for o in outs if o.kind == "aggregate"}

    ref, got = by_id(reference), by_id(emitted)
    assert set(ref) == set(got)
    for k in ref:
        assert got[k]["counts"] == ref[k]["counts"], k
        assert got[k]["outcomes"] == ref[k]["outcomes"]
        assert got[k]["late_events"] == ref[k]["late_events"], k
    lates = lambda outs: sorted(o.value.envelope["event_id"] for o in outs if o.kind == "late")  # noqa: E731
    assert lates(emitted) == lates(reference)


def test_late_event_counts_once_in_the_frontier_window_and_zero_elsewhere() -> None:
    m = Maker()
    op = WindowOperator([tumbling(10)], lateness_ms=5 * S)
    assert op.process(m.ev("frame", 1 * S, change_ratio=0.1), NEVER) == []
    assert op.process(m.ev("frame", 16 * S, change_ratio=0.1), NEVER) == []
    first = op.advance(11 * S, 16 * S)  # wm = 16 s - lateness: closes [0, 10)
    assert [o.value["late_events"] for o in first if o.kind == "aggregate"] == [0]
    late = m.ev("frame", 9 * S, app="mail", change_ratio=0.1)
    assert [o.kind for o in op.process(late, 11 * S)] == ["late"]
    # redelivered after a crash (same source offset): on the late topic again, counted once
    assert [o.kind for o in op.process(late, 11 * S)] == ["late"]
    out = op.advance(40 * S, 45 * S)
    a = aggs(out)
    # the frontier is wm + lateness = 16 s: the window [10, 20) of the late event's scope
    assert a[("a1", "mail", "", 10 * S)]["late_events"] == 1
    assert a[("a1", "mail", "", 10 * S)]["counts"] == {}  # not an event of that window
    assert a[("a1", "", "", 10 * S)]["late_events"] == 0
    assert a[("a1", "", "", 10 * S)]["counts"] == {"frame": 1}
    fleet = {o.key: o.value for o in out if o.kind == "fleet_partial"}
    assert fleet["t10000|10000|*|*|*"].late_events == 1
    assert fleet["t10000|10000|*|*|*"].counts == {"frame": 1}
    assert op.late_events == 2  # (the Prometheus counter counts deliveries)

    # the count survives the byte form and the fleet merge, and reaches the Avro record
    merger = FleetMerger(started_at=0.0)
    merger.report(0, 40 * S, {k: v.to_bytes() for k, v in fleet.items()}, now=1.0)
    rec = {r["window_start"]: r for r in merger.advance(now=1.0)}[10 * S]
    assert rec["late_events"] == 1 and rec["counts"] == {"frame": 1}
    serde = Serde()
    assert serde.decode(serde.encode("aggregate", rec)).record["late_events"] == 1


def test_late_events_through_the_pipeline_and_old_state_bytes() -> None:
    m = Maker()
    p = pipeline()
    out = run(p, [m.ev("frame", 1 * S, change_ratio=0.1), m.ev("frame", 16 * S, change_ratio=0.1),
                  m.ev("frame", 9 * S, change_ratio=0.1),  # late: wm = 11 s
                  m.ev("frame", 3 * S, change_ratio=0.1),  # late
                  m.ev("heartbeat", 40 * S)])
    a = aggs(out)
    assert a[("a1", "", "", 0)]["late_events"] == 0
    assert a[("a1", "", "", 10 * S)]["late_events"] == 2
    assert a[("a1", "", "", 10 * S)]["counts"] == {"frame": 1}
    # panes persisted before late_events existed (11 fields) still load, with 0 late events
    st = WindowState()
    st.add("frame", {"change_ratio": 0.5}, "a1", 5)
    st.late_events = 3
    assert WindowState.from_bytes(st.to_bytes()).late_events == 3
    import json
    import struct

    head = json.dumps([{"frame": 1}, {}, 0, 0, 0.0, 0, 0.5, 1, ["a1"], {"frames": 7}, 5]).encode()
    old = WindowState.from_bytes(struct.pack("<I", len(head)) + head)
    assert old.counts == {"frame": 1} and old.applied == {"frames": 7} and old.late_events == 0


@pytest.mark.parametrize("key", ["t10000|0|a|b|c", "lost|x", "plan|é", ""])
def test_derived_id_is_uuid5(key: str) -> None:
    assert derived_id(key) == str(uuid.uuid5(DERIVED_NS, key))


def test_restore_drops_fleet_panes_of_older_versions() -> None:
    """Older workers persisted fleet ('*') panes; the fleet part is now derived from the
    scopes' windows, so a restored fleet pane would count its events twice: it is dropped
    and deleted from the changelog."""
    st = WindowState()
    st.add("frame", {"envelope": {}, "change_ratio": 0.5}, "agent-1", 1_000)
    op = WindowOperator([tumbling(10)])
    op.load("0|*|*|*", st.to_bytes())
    op.load("0|agent-1||", st.to_bytes())
    op.on_restored(0)
    assert list(op.panes) == [(0, "agent-1||")]
    assert op.take_dirty() == {"0|*|*|*": None}
    out = op.advance(10_000, 10_000)
    fleet = [o for o in out if o.kind == "fleet_partial"]
    assert [o.value.counts for o in fleet] == [{"frame": 1}]  # once, from the agent's pane
