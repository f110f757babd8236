"""What users rely on beyond the algebra: add-wins, LWW tie-breaks, map embedding, codec
errors, and the agent replica's deltas/anti-entropy converging to one merged state."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.state import AgentStateReplica, FleetStateHook
from schemas.crdt import (
    AgentCRDT,
    AWORSet,
    CCounter,
    CodecError,
    CRDTTypeMismatch,
    GCounter,
    LWWRegister,
    MVRegister,
    ORMap,
    decode,
    encode,
)
from schemas.crdt.codec import slow_encode_bundle


def test_add_wins_over_concurrent_remove_on_other_replica() -> None:
    a, b = AWORSet(), AWORSet()
    b.merge(a.add("ra", "Submit"))  # both know Submit
    # concurrently: ra adds Submit again (fresh dot), rb removes what it observed
    d_add = a.add("ra", "Submit")
    d_rm = b.remove("Submit")
    assert "Submit" not in b
    for order in ((d_add, d_rm), (d_rm, d_add)):
        s = AWORSet()
        for d in order:
            s.merge(d)
        assert s.value == {"Submit"}, "a concurrent add survives the remove (add wins)"
    a.merge(d_rm)
    b.merge(d_add)
    assert a == b and a.value == {"Submit"}


def test_observed_remove_removes_adds_it_saw() -> None:
    a, b = AWORSet(), AWORSet()
    b.merge(a.add("ra", "x"))
    d = b.remove("x")  # rb saw ra's add: remove wins over it
    a.merge(d)
    assert a.value == frozenset() and b.value == frozenset()
    # add never seen by anyone else, concurrent with a remove of nothing: stays
    c = AWORSet()
    c.merge(a.add("ra", "y"))
    c.merge(AWORSet().remove("y"))
    assert c.value == {"y"}


def test_ormap_remove_key_vs_concurrent_update_keeps_only_the_update() -> None:
    UI = ORMap.of(AWORSet)
    a, b = UI(), UI()
    b.merge(a.apply("chrome", lambda s: s.add("ra", "Back")))
    d_rm = a.remove("chrome")
    d_up = b.apply("chrome", lambda s: s.add("rb", "Reload"))
    a.merge(d_up)
    b.merge(d_rm)
    assert a == b
    assert a.value == {"chrome": frozenset({"Reload"})}


def test_ormap_values_share_the_map_context() -> None:
    m = ORMap.of(CCounter)()
    m.apply("k1", lambda c: c.inc("ra", 2))
    m.apply("k2", lambda c: c.inc("ra", 5))
    # dots for both values come from one context: (ra,1) and (ra,2), no reuse
    assert m.ctx.vv == {"ra": 2}
    assert m.value == {"k1": 2, "k2": 5}
    reset = m.remove("k1")
    other = ORMap.of(CCounter)()
    other.merge(m)
    assert other.value == {"k2": 5}
    assert reset.store == {} and ("ra", 1) in reset.ctx


def test_lww_ties_break_by_replica_id_on_every_replica() -> None:
    x, y = LWWRegister(), LWWRegister()
    dx = x.set("replica-a", "from-a", ts=1000)
    dy = y.set("replica-b", "from-b", ts=1000)
    assert x.join(dy).value == y.join(dx).value == "from-b"
    # a replica's own next write wins even with a clock behind what it saw
    x.merge(dy)
    x.set("replica-a", "again", ts=10)
    assert x.value == "again" and x.ts == 1001


def test_mvreg_in_map_reads_last_writer() -> None:
    S = ORMap.of(MVRegister)
    a, b = S(), S()
    da = a.apply("mode", lambda r: r.set("ra", "fast", ts=5))
    db = b.apply("mode", lambda r: r.set("rb", "safe", ts=7))
    a.merge(db)
    b.merge(da)
    assert a == b and a.value == {"mode": "safe"}
    assert a.get("mode").values == {"fast", "safe"}  # both kept until overwritten


def test_codec_rejects_garbage_and_wrong_types() -> None:
    g = GCounter()
    g.inc("r", 3)
    with pytest.raises(CodecError):
        decode("gcounter", b"\xff\xff\xff")
    with pytest.raises(CodecError):
        decode("nope", encode(g))
    with pytest.raises(CodecError):
        decode("gcounter", encode(g) + b"\x00")
    s = AWORSet()
    s.add("r", "x")
    with pytest.raises(CodecError):
        decode("map", encode(s))  # an orset is not a map
    state = AgentCRDT()
    with pytest.raises(CRDTTypeMismatch):
        state.apply("gcounter", "status", encode(g))


def test_agent_replica_emits_small_deltas_and_full_state() -> None:
    now = [0.0]
    r = AgentStateReplica("agent-1", "agent-1/r1", anti_entropy_s=10, clock=lambda: now[0])
    for _ in range(5):
        r.record_action()
    r.learn_element("chrome", "Back")
    bodies = r.delta_bodies()
    assert [(b["key"], b["crdt_type"], b["full_state"]) for b in bodies] == [
        ("actions_total", "gcounter", False), ("ui_memory", "map", False)]
    assert decode("gcounter", bodies[0]["payload"]).value == 5  # coalesced delta group
    assert r.delta_bodies() == []
    now[0] = 11.0
    r.set_status("running")
    full = r.delta_bodies()
    assert all(b["full_state"] for b in full)
    assert {b["key"] for b in full} == {"actions_total", "ui_memory", "status"}

    class Client:
        def __init__(self) -> None:
            self.sent: list[tuple[str, dict]] = []

        def emit(self, event_type: str, body: dict, **kw: object) -> str:
            self.sent.append((event_type, body))
            return "id"

    c = Client()
    r.record_action(2)
    assert r.emit_deltas(c) == 1 and c.sent[0][0] == "state_delta"
    assert c.sent[0][1]["replica_id"] == "agent-1/r1"


def do_op(r: AgentStateReplica, op: str, n: int) -> None:
    label, app = ["Back", "Save", "Open", "Undo"][n], ["chrome", "gimp"][n % 2]
    if op == "act":
        r.record_action(n)
    elif op == "spend":
        r.spend_error_budget(n)
    elif op == "refill":
        r.refill_error_budget(n)
    elif op == "task":
        r.set_task(f"task-{n}", ts=n)
    elif op == "status":
        r.set_status(["idle", "running"][n % 2], ts=n)
    elif op == "learn":
        r.learn_element(app, label)
    elif op == "forget":
        r.forget_element(app, label)
    elif op == "forget_app":
        r.forget_app(app)
    elif op == "setting":
        r.set_setting(f"s{n % 2}", str(n), ts=n)
    elif op == "del_setting":
        r.delete_setting(f"s{n % 2}")


OPS = st.sampled_from(["act", "spend", "refill", "task", "status", "learn", "forget",
                       "forget_app", "setting", "del_setting", "emit", "full"])


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=st.lists(st.tuples(st.integers(0, 2), OPS, st.integers(0, 3)), max_size=40),
       seed=st.integers(0, 2**32 - 1), loss=st.floats(0, 0.5))
def test_replicas_converge_through_lossy_duplicated_shuffled_channel(
        steps: list[tuple[int, str, int]], seed: int, loss: float) -> None:
    """Deltas lost (then repaired by a full state), duplicated and shuffled: the merged state
    equals the join of every replica's state."""
    reps = [AgentStateReplica("ag", f"ag/r{i}", anti_entropy_s=1e9) for i in range(3)]
    sent: list[dict] = []
    rng = random.Random(seed)
    for i, op, n in steps:
        r = reps[i]
        if op == "emit":
            sent.extend(b for b in r.delta_bodies(False) if rng.random() >= loss)
        elif op == "full":
            sent.extend(r.delta_bodies(True))
        else:
            do_op(r, op, n)
    for r in reps:  # final anti-entropy round, then deltas shuffled with duplicates
        sent.extend(r.delta_bodies(True))
    channel = sent + rng.sample(sent, len(sent) // 2)
    rng.shuffle(channel)
    merged = AgentCRDT()
    for b in channel:
        merged.apply(b["crdt_type"], b["key"], b["payload"])
    expected = AgentCRDT()
    for r in reps:
        expected.merge(r.state)
    assert merged == expected
    assert merged.view() == expected.view()
    assert AgentCRDT.decode(merged.encode()) == merged
    # the cached, direct bundle writer gives fastavro's bytes
    assert merged.encode() == slow_encode_bundle(
        {k: v for k, v in merged.entries.items() if not v.is_bottom()})


def test_fleet_hook_is_deterministic_and_merges() -> None:
    from producers.fleet import FleetConfig, generate_fleet

    def run() -> dict[str, AgentCRDT]:
        hook = FleetStateHook(replicas=2, emit_every=3, full_every=9)
        cfg = FleetConfig(agents=2, events_per_agent=300, seed=5, state_delta_hook=hook)
        merged: dict[str, AgentCRDT] = {}
        outcomes: dict[str, int] = {}
        for ev in generate_fleet(cfg):
            if ev.event_type == "outcome":
                outcomes[ev.agent_id] = outcomes.get(ev.agent_id, 0) + 1
            if ev.event_type == "state_delta":
                merged.setdefault(ev.agent_id, AgentCRDT()).apply(
                    ev.body["crdt_type"], ev.body["key"], ev.body["payload"])
        for a, m in merged.items():
            v = m.view()
            assert 0 < v["actions_total"] <= outcomes[a]
            assert v["replicas"] == [f"{a}/r0", f"{a}/r1"]
            assert v["ui_memory"] and v["status"] in ("running", "degraded")
        return merged

    assert run() == run()
