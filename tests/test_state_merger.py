"""The pure merge step behind the stream processor: versions, idempotence, restore, rollup."""

from __future__ import annotations

import random

import pytest

from producers.state import AgentStateReplica
from schemas.crdt import AgentCRDT, CodecError
from schemas.crdt.snapshot import StateMerger, rollup_record, snapshot_event_id
from schemas.envelope import new_envelope
from schemas.serde import Serde


def records(agent: str, bodies: list[dict]) -> list[dict]:
    return [{"envelope": new_envelope(agent, "s", i, event_time=1000 + i), **b}
            for i, b in enumerate(bodies)]


def test_versions_grow_only_with_the_state_and_survive_restore() -> None:
    r1, r2 = AgentStateReplica("a1", "a1/r1"), AgentStateReplica("a1", "a1/r2")
    r1.record_action(3)
    r1.learn_element("chrome", "Back")
    r2.learn_element("chrome", "Save")
    r2.set_status("running", ts=5)
    recs = records("a1", r1.delta_bodies(False) + r2.delta_bodies(False))
    m = StateMerger()
    versions = [m.merge(r).merged.version for r in recs]
    assert versions == [1, 2, 3, 4]
    # duplicates and full states already covered change nothing, bump nothing
    full = records("a1", r1.delta_bodies(True) + r2.delta_bodies(True))
    for r in [*recs, *full]:
        res = m.merge(r)
        assert not res.changed and res.merged.version == 4
    # a restarted merger restores from the stored snapshot and continues
    snap = m.agents["a1"].snapshot
    m2 = StateMerger()
    restored = m2.restore(snap)
    assert restored.version == 4 and restored.state == m.agents["a1"].state
    r1.record_action()
    assert m2.merge(records("a1", r1.delta_bodies(False))[0]).merged.version == 5
    rec = Serde().decode(m2.agents["a1"].snapshot).record
    assert rec["envelope"]["event_id"] == snapshot_event_id("a1", 5)
    assert rec["actions_total"] == 4 and rec["status"] == "running"
    assert rec["ui_memory"] == {"chrome": ["Back", "Save"]}
    assert AgentCRDT.decode(rec["state"]) == m2.agents["a1"].state


def test_invalid_payload_raises_and_leaves_state_alone() -> None:
    r = AgentStateReplica("a1", "a1/r1")
    r.record_action(2)
    m = StateMerger()
    m.merge(records("a1", r.delta_bodies(False))[0])
    before = m.agents["a1"].state.copy()
    bad = records("a1", [{"replica_id": "x", "crdt_type": "gcounter", "key": "actions_total",
                          "payload": b"\x99\x99", "full_state": False}])[0]
    with pytest.raises(CodecError):
        m.merge(bad)
    assert m.agents["a1"].state == before and m.agents["a1"].version == 1


def test_rollup_sums_and_unions() -> None:
    m = StateMerger()
    rng = random.Random(3)
    for a in ("a1", "a2"):
        r = AgentStateReplica(a, f"{a}/r")
        r.record_action(rng.randint(1, 9))
        r.spend_error_budget(1)
        r.learn_element("chrome", a)
        r.set_status("idle", ts=1)
        for rec in records(a, r.delta_bodies(False)):
            m.merge(rec)
    sums = {a: mg.summary() for a, mg in m.agents.items()}
    roll = rollup_record(sums)
    assert roll["envelope"]["agent_id"] == "*"
    assert roll["version"] == sum(mg.version for mg in m.agents.values())
    assert roll["actions_total"] == sum(mg.state.view()["actions_total"]
                                        for mg in m.agents.values())
    assert roll["error_budget"] == -2
    assert roll["ui_memory"] == {"chrome": ["a1", "a2"]}
    assert roll["settings"] == {"agents": "2", "status.idle": "2"}
    Serde().encode("agent_state", roll)  # valid against the contract
