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

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from streams.windowing.pipeline import Event, Output
from streams.windowing.state import derived_id

CORRELATOR = "clawstream-correlator"
FAILED = ("failure", "timeout", "lost")
#: Plans are checked for completion at most once per this much event time.
PLAN_CHECK_MS = 1000
NO_DEADLINE = 1 << 62


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
class PlanProgress:
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
    name = "cor"

    def __init__(self, timeout_ms: int) -> None:
        self.timeout_ms = timeout_ms
        self.actions: dict[str, Pending] = {}
        self.orphans: dict[str, Pending] = {}
        self.plans: dict[str, PlanProgress] = {}
        self.pairs: list[Pair] = []  # recent matches, drained by the caller
        self.unmatched_outcomes = 0
        self._dirty: dict[str, bool] = {}
        self._next_plan_check = -(1 << 62)
        self._next_deadline = NO_DEADLINE  # nothing expires before this watermark

    # -- helpers --------------------------------------------------------------------------------
    def _plan(self, plan_id: str, agent: str, t: int) -> PlanProgress:
        pl = self.plans.get(plan_id)
        if pl is None:
            pl = self.plans[plan_id] = PlanProgress(plan_id, agent, first_t=t, last_t=t)
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
                self.actions[aid] = act
                self._dirty[f"a|{aid}"] = True
                self._next_deadline = min(self._next_deadline, t + self.timeout_ms)
        elif et == "outcome":
            if ev.producer == CORRELATOR:
                return []
            aid = rec.get("action_id") or env.get("parent_id") or ""
            act = self.actions.pop(aid, None)
            status = str(rec.get("status"))
            if act is not None:
                self._dirty[f"a|{aid}"] = False
                self._settle(aid, act, status, rec.get("duration_ms"), t)
            else:
                self.orphans[aid] = Pending(t, ev.agent, status=status,
                                            duration_ms=rec.get("duration_ms"))
                self._dirty[f"o|{aid}"] = True
                self._next_deadline = min(self._next_deadline, t + self.timeout_ms)
        elif et == "plan":
            pl = self._plan(env["event_id"], ev.agent, t)
            pl.session_id = env.get("session_id", "")
            pl.app = rec.get("app") or ""
            pl.goal = rec.get("goal") or ""
            pl.steps_total = len(rec.get("steps") or ())
        return []

    def synthesize(self, next_watermark: int) -> list[tuple[Event, int]]:
        """Lost outcomes for actions whose deadline the next watermark reaches.

        Returns (synthetic outcome event, action time); the caller counts them in the
        windows and sessions before moving the watermark, then produces them.
        """
        out: list[tuple[Event, int]] = []
        if next_watermark < self._next_deadline:
            return out
        expired = [(a.t, aid) for aid, a in self.actions.items()
                   if a.t + self.timeout_ms <= next_watermark]
        for _, aid in sorted(expired):
            act = self.actions.pop(aid)
            self._dirty[f"a|{aid}"] = False
            rec = lost_outcome(aid, act, self.timeout_ms)
            self._settle(aid, act, "lost", None, act.t + self.timeout_ms)
            out.append((Event("outcome", rec, CORRELATOR, -1, attach_time=act.t), act.t))
        for aid in [aid for aid, o in self.orphans.items()
                    if o.t + self.timeout_ms <= next_watermark]:
            del self.orphans[aid]
            self._dirty[f"o|{aid}"] = False
            self.unmatched_outcomes += 1
        self._next_deadline = min(
            [a.t + self.timeout_ms for a in self.actions.values()]
            + [o.t + self.timeout_ms for o in self.orphans.values()],
            default=NO_DEADLINE,
        )
        return out

    def advance(self, watermark: int, now: int) -> list[Output]:
        out: list[Output] = []
        if watermark < self._next_plan_check:
            return out
        self._next_plan_check = watermark + PLAN_CHECK_MS
        for pid in list(self.plans):
            pl = self.plans[pid]
            waiting = any(a.plan_id == pid for a in self.actions.values()) if not pl.complete \
                else False
            if pl.complete or (not waiting and pl.last_t + self.timeout_ms <= watermark):
                del self.plans[pid]
                self._dirty[f"p|{pid}"] = False
                out.append(Output("plan", pl.agent,
                                  pl.record(watermark, "complete" if pl.complete else "idle")))
        return out

    # -- state ----------------------------------------------------------------------------------
    def take_dirty(self) -> dict[str, bytes | None]:
        out: dict[str, bytes | None] = {}
        for key, alive in self._dirty.items():
            kind, _, ident = key.partition("|")
            obj: Any = None
            if alive:
                obj = {"a": self.actions, "o": self.orphans, "p": self.plans}[kind].get(ident)
            out[key] = json.dumps(asdict(obj)).encode() if obj is not None else None
        self._dirty.clear()
        return out

    def load(self, key: str, data: bytes) -> None:
        kind, _, ident = key.partition("|")
        obj = json.loads(data)
        if kind == "a":
            p = self.actions[ident] = Pending(**obj)
        elif kind == "o":
            p = self.orphans[ident] = Pending(**obj)
        elif kind == "p":
            self.plans[ident] = PlanProgress(**obj)
            return
        self._next_deadline = min(self._next_deadline, p.t + self.timeout_ms)


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
