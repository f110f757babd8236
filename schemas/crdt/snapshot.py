"""Merging StateDelta records into versioned AgentState snapshots, and the fleet rollup.

Pure (no I/O): the faust processor (streams.state_merge), the benchmark's in-process merge
loop and the tests' "merge everything in one process" expectation all use `StateMerger`.

Versions: an agent's version goes up by one each time a delta *grows* its merged state, and
only then. A duplicate or an already-covered delta changes nothing, so replaying a partition
from its committed offset after a crash reproduces the same (version, state) pairs: a version
never names two different states and never goes backwards.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from schemas.crdt.agent import AgentCRDT
from schemas.envelope import new_envelope
from schemas.serde import Serde

PRODUCER = "clawstream-state-merge"
FLEET = "*"
_NS = uuid.UUID("6f1d2c1e-8e55-4f0e-9c1a-0c1a57a7e000")


def snapshot_event_id(agent_id: str, version: int) -> str:
    """Deterministic: a re-emitted snapshot has the same event_id."""
    return str(uuid.uuid5(_NS, f"{agent_id}\x00{version}"))


def snapshot_record(agent_id: str, version: int, state: AgentCRDT,
                    event_time: int) -> dict[str, Any]:
    env = new_envelope(agent_id, "agent-state", version, trace_id=agent_id,
                       event_time=event_time, event_id=snapshot_event_id(agent_id, version),
                       producer=PRODUCER)
    return {"envelope": env, "version": version, **state.view(), "state": state.encode()}


@dataclass
class Merged:
    """One agent's merged state as the processor holds it."""

    version: int
    state: AgentCRDT
    snapshot: bytes  # the encoded AgentState of (version, state): what the table stores
    record: dict[str, Any] | None = None  # the AgentState record of `snapshot`

    def summary(self) -> dict[str, Any]:
        """What the fleet rollup keeps of this agent."""
        assert self.record is not None
        return summary(self.record)


@dataclass(frozen=True)
class MergeResult:
    agent_id: str
    changed: bool
    merged: Merged


class StateMerger:
    """Per-agent merged CRDT state with versions; `merge(record)` takes a decoded StateDelta."""

    def __init__(self, serde: Serde | None = None) -> None:
        self.serde = serde or Serde()
        self.agents: dict[str, Merged] = {}

    def restore(self, snapshot: bytes) -> Merged:
        """Load an agent from its stored AgentState bytes (after a restart)."""
        rec = self.serde.decode(snapshot).record
        m = Merged(rec["version"], AgentCRDT.decode(rec["state"]), snapshot, rec)
        self.agents[rec["envelope"]["agent_id"]] = m
        return m

    def merge(self, record: dict[str, Any]) -> MergeResult:
        """Join one StateDelta into its agent's state. Raises CodecError / CRDTTypeMismatch
        for a payload that is not a valid CRDT of its key (the state is left unchanged)."""
        agent_id = record["envelope"]["agent_id"]
        m = self.agents.get(agent_id)
        if m is None:
            m = self.agents[agent_id] = Merged(0, AgentCRDT(), b"")
        # decoding and the type check happen before anything is touched, so a bad payload
        # raises with the state unchanged
        changed = m.state.apply(record["crdt_type"], record["key"], record["payload"])
        if changed:
            m.version += 1
            rec = snapshot_record(agent_id, m.version, m.state, record["envelope"]["event_time"])
            m.snapshot = self.serde.encode("agent_state", rec)
            m.record = rec
        return MergeResult(agent_id, changed, m)


# --- fleet rollup ----------------------------------------------------------------------------
def summary(rec: dict[str, Any]) -> dict[str, Any]:
    """What the rollup keeps of one agent's snapshot (a decoded AgentState record)."""
    return {"v": rec["version"], "t": rec["envelope"]["event_time"],
            "actions_total": rec["actions_total"], "error_budget": rec["error_budget"],
            "status": rec["status"], "ui": rec["ui_memory"]}


def rollup_record(summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The fleet-wide AgentState (agent_id '*'): sums of counters, union of UI memory per app,
    agent ids as `replicas`, and in `settings` the agent count and agents per status.
    Its version is the sum of the agents' versions, so it grows whenever one of them does."""
    version = sum(s["v"] for s in summaries.values())
    ui: dict[str, set[str]] = {}
    statuses: dict[str, int] = {}
    for s in summaries.values():
        for app, labels in s["ui"].items():
            ui.setdefault(app, set()).update(labels)
        st = s["status"] or "unknown"
        statuses[st] = statuses.get(st, 0) + 1
    event_time = max((s["t"] for s in summaries.values()), default=0)
    env = new_envelope(FLEET, "agent-state", version, trace_id=FLEET, event_time=event_time,
                       event_id=snapshot_event_id(FLEET, version), producer=PRODUCER)
    return {
        "envelope": env,
        "version": version,
        "replicas": sorted(summaries),
        "actions_total": sum(s["actions_total"] for s in summaries.values()),
        "error_budget": sum(s["error_budget"] for s in summaries.values()),
        "current_task": None,
        "status": None,
        "ui_memory": {app: sorted(labels) for app, labels in sorted(ui.items())},
        "settings": {"agents": str(len(summaries)),
                     **{f"status.{k}": str(v) for k, v in sorted(statuses.items())}},
        "state": b"",
    }
