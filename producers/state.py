"""An agent replica's replicated state, kept as delta CRDTs and shipped as StateDelta events.

An agent may run several replicas (processes) at once; each holds an `AgentStateReplica`
with its own `replica_id`. Mutators change the local state at once and return the small delta
they produced; deltas wait in a per-key *delta group* (the join of the pending deltas, itself
a delta) until `emit_deltas(client)` sends one StateDelta per changed key. Kafka is the
anti-entropy channel: the merger joins whatever arrives, in any order, any number of times.

Deltas can still be lost (a replica crashing before its SDK flushed, a topic's retention), so
every `anti_entropy_s` seconds (and on `emit_deltas(..., full_state=True)`) the replica ships
its *full* state per key with ``full_state=True``; joining it repairs any gap.

Replica ids must be unique per incarnation that starts from empty state (dots are numbered per
replica): the default appends a random suffix, pass a stable one only with persisted state.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from schemas.crdt import AgentCRDT, encode
from schemas.crdt.agent import SCHEMA


class StateDeltaSink(Protocol):
    """What emit_deltas needs from producers.sdk.AgentClient."""

    def emit(self, event_type: str, body: dict[str, Any], **kw: Any) -> str: ...


class AgentStateReplica:
    """One replica of one agent's state; mutators return deltas, `emit_deltas` ships them."""

    def __init__(
        self,
        agent_id: str,
        replica_id: str | None = None,
        *,
        anti_entropy_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.agent_id = agent_id
        self.replica_id = replica_id or f"{agent_id}/{uuid.uuid4().hex[:8]}"
        self.state = AgentCRDT()
        self.pending: dict[str, Any] = {}  # key -> delta group not yet emitted
        self.anti_entropy_s = anti_entropy_s
        self._clock = clock
        self._last_full = clock()
        self.deltas_emitted = 0
        self.full_states_emitted = 0

    # --- mutators (each returns its delta) ---------------------------------------------------
    def _queue(self, key: str, delta: Any) -> Any:
        group = self.pending.get(key)
        if group is None:
            self.pending[key] = delta.copy()
        else:
            group.merge(delta)
        return delta

    def record_action(self, n: int = 1) -> Any:
        """Count executed actions (GCounter actions_total)."""
        return self._queue("actions_total", self.state.get("actions_total").inc(self.replica_id, n))

    def spend_error_budget(self, n: int = 1) -> Any:
        """An error spends budget (PNCounter error_budget goes down)."""
        return self._queue("error_budget", self.state.get("error_budget").dec(self.replica_id, n))

    def refill_error_budget(self, n: int = 1) -> Any:
        return self._queue("error_budget", self.state.get("error_budget").inc(self.replica_id, n))

    def set_task(self, task: str | None, ts: int | None = None) -> Any:
        """current_task, last writer wins (timestamp, then replica id)."""
        reg = self.state.get("current_task")
        return self._queue("current_task", reg.set(self.replica_id, task, ts))

    def set_status(self, status: str | None, ts: int | None = None) -> Any:
        return self._queue("status", self.state.get("status").set(self.replica_id, status, ts))

    def learn_element(self, app: str, label: str) -> Any:
        """Remember a UI element label for an app (add-wins OR-set under ui_memory[app])."""
        r = self.replica_id
        return self._queue("ui_memory", self.state.get("ui_memory").apply(
            app, lambda s: s.add(r, label)))

    def forget_element(self, app: str, label: str) -> Any:
        """Forget what this replica has observed of a label; a concurrent learn elsewhere wins."""
        return self._queue("ui_memory", self.state.get("ui_memory").apply(
            app, lambda s: s.remove(label)))

    def forget_app(self, app: str) -> Any:
        return self._queue("ui_memory", self.state.get("ui_memory").remove(app))

    def set_setting(self, name: str, value: str, ts: int | None = None) -> Any:
        r = self.replica_id
        return self._queue("settings", self.state.get("settings").apply(
            name, lambda reg: reg.set(r, value, ts)))

    def delete_setting(self, name: str) -> Any:
        return self._queue("settings", self.state.get("settings").remove(name))

    def merge_remote(self, other: AgentCRDT) -> bool:
        """Join state learnt from elsewhere (e.g. the merged snapshot after a restart)."""
        return self.state.merge(other)

    # --- shipping ----------------------------------------------------------------------------
    def full_state_due(self) -> bool:
        return self._clock() - self._last_full >= self.anti_entropy_s

    def delta_bodies(self, full_state: bool | None = None) -> list[dict[str, Any]]:
        """StateDelta bodies (no envelope) for what is pending, or the full state when due;
        clears what they cover. Pure: `emit_deltas` and tests both use it."""
        if full_state is None:
            full_state = self.full_state_due()
        if full_state:
            items: Iterable[tuple[str, Any]] = (
                (k, v) for k, v in sorted(self.state.entries.items()) if not v.is_bottom())
            self._last_full = self._clock()
        else:
            items = ((k, v) for k, v in sorted(self.pending.items()) if not v.is_bottom())
        bodies = [
            {"replica_id": self.replica_id, "crdt_type": crdt.CRDT_TYPE, "key": key,
             "payload": encode(crdt), "full_state": bool(full_state)}
            for key, crdt in items
        ]
        self.pending.clear()  # a full state covers every pending delta too
        if full_state:
            self.full_states_emitted += len(bodies)
        else:
            self.deltas_emitted += len(bodies)
        return bodies

    def emit_deltas(self, client: StateDeltaSink, *, full_state: bool | None = None,
                    event_time: int | None = None) -> int:
        """Send pending deltas (or the full state when anti-entropy is due) through the SDK;
        returns how many StateDelta events were sent."""
        bodies = self.delta_bodies(full_state)
        for body in bodies:
            if event_time is None:
                client.emit("state_delta", body)
            else:
                client.emit("state_delta", body, event_time=event_time)
        return len(bodies)


class FleetStateHook:
    """`FleetConfig.state_delta_hook` for the fleet simulator: each synthetic agent runs
    `replicas` replicas (outcomes go round-robin to them) that count actions, spend the error
    budget on failures, learn the UI labels they acted on (and forget one not found), track
    task and status; every `emit_every` outcomes of a replica its deltas are emitted, every
    `full_every` its full state. Deterministic: LWW stamps are the outcomes' event times."""

    def __init__(self, replicas: int = 2, emit_every: int = 10, full_every: int = 100) -> None:
        self.replicas = max(1, replicas)
        self.emit_every = max(1, emit_every)
        self.full_every = max(self.emit_every, full_every)
        self.agents: dict[str, list[AgentStateReplica]] = {}
        self.outcomes: dict[str, int] = {}

    def __call__(self, agent_id: str, outcome: Any) -> list[dict[str, Any]]:
        reps = self.agents.get(agent_id)
        if reps is None:
            reps = self.agents[agent_id] = [
                AgentStateReplica(agent_id, f"{agent_id}/r{i}", anti_entropy_s=float("inf"))
                for i in range(self.replicas)]
        n = self.outcomes.get(agent_id, 0)
        self.outcomes[agent_id] = n + 1
        rep = reps[n % self.replicas]
        body, ts = outcome.body, outcome.event_time
        app, ok = body["app"], body["status"] == "success"
        label = (body.get("verification") or {}).get("expected")
        rep.record_action()
        rep.set_task(f"{app}: {body['action_kind']}", ts=ts)
        if ok:
            if label:
                rep.learn_element(app, label)
            rep.set_status("running", ts=ts)
        else:
            rep.spend_error_budget()
            if label and body.get("error_kind") == "element_not_found":
                rep.forget_element(app, label)
            rep.set_status("degraded", ts=ts)
        k = n // self.replicas + 1  # outcomes this replica has seen
        if k % self.full_every == 0:
            return rep.delta_bodies(full_state=True)
        if k % self.emit_every == 0:
            return rep.delta_bodies(full_state=False)
        return []


__all__ = ["SCHEMA", "AgentStateReplica", "FleetStateHook", "StateDeltaSink"]
