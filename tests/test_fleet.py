"""The fleet simulator: exact counts, determinism, causal links, realistic distributions."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from producers.fleet import (
    FleetConfig,
    GenEvent,
    expected_counts,
    failure_probability,
    generate_agent,
    generate_fleet,
)
from schemas.serde import Serde


def _all(cfg: FleetConfig) -> list[GenEvent]:
    return list(generate_fleet(cfg))


def test_exactly_m_events_per_agent_and_counts_match() -> None:
    cfg = FleetConfig(agents=5, events_per_agent=333, seed=11)
    events = _all(cfg)
    per_agent = Counter(e.agent_id for e in events)
    assert set(per_agent.values()) == {333} and len(per_agent) == 5
    assert dict(Counter(e.event_type for e in events)) == expected_counts(cfg)
    assert {"plan", "frame", "detection", "action", "outcome", "heartbeat"} <= set(
        expected_counts(cfg))


def test_deterministic_given_seed_ids_included() -> None:
    a = _all(FleetConfig(agents=3, events_per_agent=200, seed=5))
    b = _all(FleetConfig(agents=3, events_per_agent=200, seed=5))
    c = _all(FleetConfig(agents=3, events_per_agent=200, seed=6))
    assert [(e.event_id, e.body, e.event_time) for e in a] == [
        (e.event_id, e.body, e.event_time) for e in b]
    assert [e.event_id for e in a] != [e.event_id for e in c]
    assert len({e.event_id for e in a}) == len(a)  # unique ids


def test_causal_links_within_the_same_agent() -> None:
    events = _all(FleetConfig(agents=4, events_per_agent=500, seed=2, failure_rate=0.3))
    by_id = {e.event_id: e for e in events}
    seen: set[str] = set()
    for e in events:
        if e.parent_id is not None:
            parent = by_id[e.parent_id]
            assert parent.agent_id == e.agent_id
            assert parent.event_id in seen, "a parent is emitted before its child"
            assert parent.event_time <= e.event_time
        if e.event_type == "outcome":
            action = by_id[e.parent_id]
            assert action.event_type == "action"
            assert e.body["action_id"] == action.event_id
            assert e.body["action_kind"] == action.body["kind"]
            assert e.session_id == action.session_id
        elif e.event_type == "action":
            plan = by_id[e.parent_id]
            assert plan.event_type == "plan" and e.body["plan_id"] == plan.event_id
            assert 0 <= e.body["step_index"] < len(plan.body["steps"])
            assert plan.body["steps"][e.body["step_index"]]["action_kind"] == e.body["kind"]
        elif e.event_type == "detection":
            frame = by_id[e.parent_id]
            assert frame.event_type == "frame" and e.body["frame_id"] == frame.event_id
        elif e.event_type == "frame" and e.parent_id is not None:
            assert by_id[e.parent_id].event_type == "action"
        seen.add(e.event_id)


def test_event_time_monotonic_per_agent_and_start_time() -> None:
    start = 1_700_000_000_000
    cfg = FleetConfig(agents=3, events_per_agent=300, seed=1, start_time_ms=start)
    for i in range(3):
        times = [e.event_time for e in generate_agent(cfg, i)]
        assert times == sorted(times)
        assert start <= times[0] < start + 60_000
    merged = [e.event_time for e in generate_fleet(cfg)]
    assert merged == sorted(merged)


def test_failure_rates_follow_configuration() -> None:
    def fail_share(rate: float) -> float:
        events = _all(FleetConfig(agents=4, events_per_agent=1500, seed=3, failure_rate=rate,
                                  apps=("notepad",)))
        outs = [e for e in events if e.event_type == "outcome"]
        return sum(e.body["status"] != "success" for e in outs) / len(outs)

    assert fail_share(0.0) == 0.0
    low, high = fail_share(0.05), fail_share(0.6)
    assert low < 0.1 < 0.2 < high
    assert failure_probability(FleetConfig(failure_rate=0.1), "browser", "drag") > \
        failure_probability(FleetConfig(failure_rate=0.1), "notepad", "scroll")


def test_latency_is_lognormal_per_kind() -> None:
    events = _all(FleetConfig(agents=4, events_per_agent=2000, seed=9, failure_rate=0.0))
    durations: dict[str, list[float]] = defaultdict(list)
    for e in events:
        if e.event_type == "outcome":
            durations[e.body["action_kind"]].append(e.body["duration_ms"])
    med = {k: sorted(v)[len(v) // 2] for k, v in durations.items() if len(v) > 30}
    assert med["wait"] > med["type"] > med["click"]
    assert all(d > 0 for v in durations.values() for d in v)


def test_every_generated_body_encodes() -> None:
    serde = Serde()
    for e in _all(FleetConfig(agents=2, events_per_agent=300, seed=4)):
        record = dict(e.body)
        record["envelope"] = {"event_id": e.event_id, "agent_id": e.agent_id,
                              "session_id": e.session_id, "trace_id": e.session_id,
                              "parent_id": e.parent_id, "event_time": e.event_time, "seq": 1,
                              "producer": {"name": "test", "version": "0"}}
        decoded = serde.decode(serde.encode(e.event_type, record))
        assert decoded.schema.event_type == e.event_type


def test_frames_carry_claim_check_and_thumbnail() -> None:
    import hashlib
    import io

    from PIL import Image

    frames = [e for e in _all(FleetConfig(agents=1, events_per_agent=100, seed=1))
              if e.event_type == "frame"]
    assert frames
    for f in frames:
        assert f.image is not None
        assert f.body["image_uri"] == "cas://sha256/" + hashlib.sha256(f.image).hexdigest()
        assert f.body["thumbnail"][:2] == b"\xff\xd8"  # JPEG
        thumb = Image.open(io.BytesIO(f.body["thumbnail"]))
        full = Image.open(io.BytesIO(f.image))
        assert thumb.size == (f.body["thumb_width"], f.body["thumb_height"])
        assert thumb.size[0] <= 160 < full.size[0]


def test_state_delta_hook_is_called_after_outcomes() -> None:
    def hook(agent: str, outcome: GenEvent) -> list[dict]:
        return [{"replica_id": agent, "crdt_type": "gcounter", "key": "actions_total",
                 "payload": b"\x02", "full_state": False}]

    cfg = FleetConfig(agents=1, events_per_agent=200, seed=1, state_delta_hook=hook)
    events = _all(cfg)
    deltas = [e for e in events if e.event_type == "state_delta"]
    by_id = {e.event_id: e for e in events}
    assert deltas and all(by_id[d.parent_id].event_type == "outcome" for d in deltas)
    assert len(events) == 200


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError):
        FleetConfig(apps=("nope",))
    with pytest.raises(ValueError):
        FleetConfig(failure_rate=1.5)
