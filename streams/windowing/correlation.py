"""Action ↔ outcome correlation with a timeout, and plan progress (pure).

Each Action waits for its Outcome (matched by action_id = the action's event_id; outcomes may
arrive first, they wait too). When the watermark passes action time + timeout with no outcome,
the action is declared lost: a synthetic Outcome (status "lost", producer
"clawstream-correlator", deterministic event id) is produced. Its event time is action time +
timeout, and the pipeline counts it in the windows and the session *before* moving the
watermark past that time, so it is never late. Outcomes the correlator itself produced are
ignored when read back, so it never loops on its own output.

Plan progress: steps done (success) and failed (failure, timeout, lost) per plan, emitted
when every step of the plan has an outcome or when the plan goes quiet for the timeout.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.windowing.outputs import Output, PlanProgress
from streams.windowing.pipeline import Event
from streams.windowing.state import derived_id

CORRELATOR = "clawstream-correlator"
FAILED = ("failure", "timeout", "lost")
#: Plans are checked for completion at most once per this much event time.
PLAN_CHECK_MS = 1000


@dataclass
class Pending:
    """An action waiting for its outcome (or an outcome waiting for its action)."""

    t: int
    agent: str
    session_id: str = ""
    trace_id: str = ""
    app: str = ""
    kind: str = "other"
    plan_id: str | None = None
    step_index: int | None = None
    status: str | None = None  # set when this is an outcome waiting for its action
    duration_ms: float | None = None


@dataclass
class PlanState:
    """Steps done and failed of one plan so far."""

    plan_id: str
    agent: str
    session_id: str = ""
    app: str = ""
    goal: str = ""
    steps_total: int = 0
    done: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    last_t: int = 0
    first_t: int = 0

    @property
    def complete(self) -> bool:
        return self.steps_total > 0 and len(set(self.done) | set(self.failed)) >= self.steps_total

    def record(self, watermark: int, reason: str) -> dict[str, Any]:
        return {
            "event_id": derived_id(f"plan|{self.plan_id}"),
            "plan_id": self.plan_id,
            "agent_id": self.agent,
            "session_id": self.session_id,
            "app": self.app,
            "goal": self.goal,
            "steps_total": self.steps_total,
            "steps_done": len(set(self.done)),
            "steps_failed": len(set(self.failed) - set(self.done)),
            "complete": self.complete,
            "reason": reason,
            "first_time": self.first_t,
            "last_time": self.last_t,
            "watermark": watermark,
        }


@dataclass
class Pair:
    """A matched action and outcome (for tests and metrics)."""

    action_id: str
    agent: str
    status: str
    latency_ms: float


class CorrelationOperator:
    """Actions matched to their outcomes, lost outcomes, plan progress (see the module doc)."""

    name = "cor"

    def __init__(self, timeout_ms: int) -> None:
        self.timeout_ms = timeout_ms
        self.actions: dict[str, Pending] = {}
        self.orphans: dict[str, Pending] = {}
        self.plans: dict[str, PlanState] = {}
        self.pairs: list[Pair] = []  # recent matches, drained by the caller
        self.unmatched_outcomes = 0
        self._dirty: dict[str, bool] = {}
        #: keys whose latest changelog value is not a tombstone: an action settled before it
        #: was ever persisted needs no tombstone (most of them, at any rate)
        self._stored: set[str] = set()
        self._plan_waiting: dict[str, int] = {}  # plan -> its actions still waiting
        self._deadlines: list[tuple[int, str, str]] = []  # (expires at, "a"|"o", action id)
        self._plan_checks: list[tuple[int, str]] = []  # (check at, plan id)
        self._complete: set[str] = set()  # plans with every step settled

    # -- helpers --------------------------------------------------------------------------------
    def _plan(self, plan_id: str, agent: str, t: int) -> PlanState:
        pl = self.plans.get(plan_id)
        if pl is None:
            pl = self.plans[plan_id] = PlanState(plan_id, agent, first_t=t, last_t=t)
            heapq.heappush(self._plan_checks, (t + self.timeout_ms, plan_id))
        pl.last_t = max(pl.last_t, t)
        self._dirty[f"p|{plan_id}"] = True
        return pl

    def _settle(self, action_id: str, act: Pending, status: str, duration: float | None,
                t: int) -> None:
        self.pairs.append(Pair(action_id, act.agent, status, float(duration or 0.0)))
        if act.plan_id and act.step_index is not None:
            pl = self._plan(act.plan_id, act.agent, t)
            if status == "success":
                pl.done.append(act.step_index)
            elif status in FAILED:
                pl.failed.append(act.step_index)
            if pl.complete:
                self._complete.add(act.plan_id)

    def _add_action(self, aid: str, act: Pending) -> None:
        if aid in self.actions:
            return
        self.actions[aid] = act
        self._dirty[f"a|{aid}"] = True
        heapq.heappush(self._deadlines, (act.t + self.timeout_ms, "a", aid))
        if act.plan_id:
            self._plan_waiting[act.plan_id] = self._plan_waiting.get(act.plan_id, 0) + 1

    def _pop_action(self, aid: str) -> Pending | None:
        act = self.actions.pop(aid, None)
        if act is not None:
            self._dirty[f"a|{aid}"] = False
            if act.plan_id:
                left = self._plan_waiting.get(act.plan_id, 1) - 1
                if left > 0:
                    self._plan_waiting[act.plan_id] = left
                else:
                    self._plan_waiting.pop(act.plan_id, None)
        return act

    # -- events ---------------------------------------------------------------------------------
    def process(self, ev: Event, watermark: int) -> list[Output]:
        et, rec, t = ev.event_type, ev.record, ev.event_time
        env = rec["envelope"]
        if et == "action":
            aid = env["event_id"]
            act = Pending(t, ev.agent, env.get("session_id", ""), env.get("trace_id", ""),
                          rec.get("app") or "", str(rec.get("kind") or "other"),
                          rec.get("plan_id"), rec.get("step_index"))
            if act.plan_id:
                self._plan(act.plan_id, act.agent, t)
            orphan = self.orphans.pop(aid, None)
            if orphan is not None:
                self._dirty[f"o|{aid}"] = False
                self._settle(aid, act, orphan.status or "failure", orphan.duration_ms,
                             orphan.t)
            else:
                self._add_action(aid, act)
        elif et == "outcome":
            if ev.producer == CORRELATOR:
                return []
            aid = rec.get("action_id") or env.get("parent_id") or ""
            answered = self._pop_action(aid)
            status = str(rec.get("status"))
            if answered is not None:
                self._settle(aid, answered, status, rec.get("duration_ms"), t)
            else:
                self.orphans[aid] = Pending(t, ev.agent, status=status,
                                            duration_ms=rec.get("duration_ms"))
                self._dirty[f"o|{aid}"] = True
                heapq.heappush(self._deadlines, (t + self.timeout_ms, "o", aid))
        elif et == "plan":
            pl = self._plan(env["event_id"], ev.agent, t)
            pl.session_id = env.get("session_id", "")
            pl.app = rec.get("app") or ""
            pl.goal = rec.get("goal") or ""
            pl.steps_total = len(rec.get("steps") or ())
            if pl.complete:
                self._complete.add(pl.plan_id)
        return []

    def synthesize(self, next_watermark: int) -> list[Event]:
        """Lost outcomes for actions whose deadline the next watermark reaches (placed at
        their action's time, `attach_time`); the caller counts them in the windows and
        sessions before moving the watermark, then produces them.
        """
        out: list[Event] = []
        heap = self._deadlines
        while heap and heap[0][0] <= next_watermark:
            due, kind, aid = heapq.heappop(heap)
            if kind == "a":
                act = self.actions.get(aid)
                if act is None or act.t + self.timeout_ms != due:
                    continue  # answered meanwhile
                self._pop_action(aid)
                rec = lost_outcome(aid, act, self.timeout_ms)
                self._settle(aid, act, "lost", None, act.t + self.timeout_ms)
                out.append(Event("outcome", rec, CORRELATOR, -1, attach_time=act.t))
            else:
                orphan = self.orphans.get(aid)
                if orphan is None or orphan.t + self.timeout_ms != due:
                    continue
                del self.orphans[aid]
                self._dirty[f"o|{aid}"] = False
                self.unmatched_outcomes += 1
        return out

    def refuse(self, ev: Event, watermark: int) -> list[Output]:
        """An event refused for its agent's clock takes no part here."""
        return []

    def advance(self, watermark: int, now: int) -> list[Output]:
        out: list[Output] = []
        for pid in sorted(self._complete):
            pl = self.plans.pop(pid, None)
            if pl is not None:
                self._dirty[f"p|{pid}"] = False
                out.append(PlanProgress(pl.agent, pl.record(watermark, "complete")))
        self._complete.clear()
        checks = self._plan_checks
        while checks and checks[0][0] <= watermark:
            _, pid = heapq.heappop(checks)
            pl = self.plans.get(pid)
            if pl is None:
                continue
            if self._plan_waiting.get(pid, 0) > 0 or pl.last_t + self.timeout_ms > watermark:
                heapq.heappush(checks, (max(pl.last_t + self.timeout_ms,
                                            watermark + PLAN_CHECK_MS), pid))
                continue
            del self.plans[pid]
            self._dirty[f"p|{pid}"] = False
            out.append(PlanProgress(pl.agent, pl.record(watermark, "idle")))
        return out

    # -- state ----------------------------------------------------------------------------------
    def take_dirty(self) -> dict[str, bytes | None]:
        out: dict[str, bytes | None] = {}
        stored = self._stored
        tables: dict[str, dict[str, Pending] | dict[str, PlanState]] = {
            "a": self.actions, "o": self.orphans, "p": self.plans}
        for key, alive in self._dirty.items():
            obj: Any = None
            if alive:
                kind, _, ident = key.partition("|")
                obj = tables[kind].get(ident)
            if obj is not None:
                out[key] = orjson.dumps(obj.__dict__)
                stored.add(key)
            elif key in stored:
                out[key] = None
                stored.discard(key)
        self._dirty.clear()
        return out

    def load(self, key: str, data: bytes) -> None:
        kind, _, ident = key.partition("|")
        obj = orjson.loads(data)
        self._stored.add(key)
        if kind == "a":
            self._add_action(ident, Pending(**obj))
            self._dirty.pop(f"a|{ident}", None)
        elif kind == "o":
            o = self.orphans[ident] = Pending(**obj)
            heapq.heappush(self._deadlines, (o.t + self.timeout_ms, "o", ident))
        elif kind == "p":
            pl = self.plans[ident] = PlanState(**obj)
            heapq.heappush(self._plan_checks, (pl.last_t + self.timeout_ms, ident))
            if pl.complete:
                self._complete.add(ident)

    def on_restored(self, watermark: int) -> None:
        """Nothing to do: loaded deadlines fire on the next advance past them."""


def lost_outcome(action_id: str, act: Pending, timeout_ms: int) -> dict[str, Any]:
    """The synthetic Outcome record for an action that never got one."""
    return {
        "envelope": {
            "event_id": derived_id(f"lost|{action_id}"),
            "agent_id": act.agent,
            "session_id": act.session_id,
            "trace_id": act.trace_id or act.session_id,
            "parent_id": action_id,
            "event_time": act.t + timeout_ms,
            "seq": 0,
            "producer": {"name": CORRELATOR, "version": "0"},
        },
        "action_id": action_id,
        "app": act.app,
        "action_kind": act.kind,
        "status": "lost",
        "duration_ms": float(timeout_ms),
        "error": f"no outcome within {timeout_ms / 1000:g} s",
        "error_kind": "lost",
        "verification": None,
        "executor": "clawstream-correlator",
    }
