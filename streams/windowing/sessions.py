"""Gap-based session windows per agent (pure).

An agent's events belong to one session while consecutive event times are less than `gap`
apart; out-of-order events that bridge two open sessions merge them. A session closes when
the watermark passes its last event time plus the gap, and is emitted once as a Session
record (start, end, duration, events, steps = actions, outcome successes/failures).
An event that could only open a session which is already closable is late; since the gap is
longer than the smallest window, such an event is also late for its windows and therefore
already on the late output (it is counted there, not dropped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.windowing.outputs import Output, SessionClosed
from streams.windowing.pipeline import SYNTHETIC, Event
from streams.windowing.state import derived_id

FAILED_STATUSES = ("failure", "timeout", "lost")
CORRELATOR = "clawstream-correlator"
#: Activity that makes an episode; heartbeats and state deltas do not keep a session open.
NEVER_CLOSE = 1 << 62
SESSION_TYPES = ("frame", "detection", "plan", "action", "outcome")


@dataclass
class SessionState:
    """One open session of an agent."""

    start: int
    end: int
    events: int = 0
    steps: int = 0
    successes: int = 0
    failures: int = 0
    apps: set[str] = field(default_factory=set)
    session_ids: dict[str, int] = field(default_factory=dict)

    def add(self, ev: Event) -> None:
        t = ev.attach_time if ev.attach_time is not None else ev.event_time
        self.start = min(self.start, t)
        self.end = max(self.end, t)
        self.events += 1
        sid = ev.envelope.get("session_id") or ""
        self.session_ids[sid] = self.session_ids.get(sid, 0) + 1
        app = ev.record.get("app")
        if app:
            self.apps.add(app)
        if ev.event_type == "action":
            self.steps += 1
        elif ev.event_type == "outcome":
            status = ev.record.get("status")
            if status == "success":
                self.successes += 1
            elif status in FAILED_STATUSES:
                self.failures += 1

    def merge(self, other: SessionState) -> None:
        self.start = min(self.start, other.start)
        self.end = max(self.end, other.end)
        self.events += other.events
        self.steps += other.steps
        self.successes += other.successes
        self.failures += other.failures
        self.apps |= other.apps
        for k, v in other.session_ids.items():
            self.session_ids[k] = self.session_ids.get(k, 0) + v

    def to_bytes(self) -> bytes:
        return orjson.dumps([self.start, self.end, self.events, self.steps, self.successes,
                             self.failures, sorted(self.apps), self.session_ids])

    @classmethod
    def from_bytes(cls, data: bytes) -> SessionState:
        s, e, n, steps, ok, bad, apps, sids = orjson.loads(data)
        return cls(s, e, n, steps, ok, bad, set(apps), sids)


def session_record(agent: str, st: SessionState, watermark: int,
                   producer: str = "clawstream-sessions") -> dict[str, Any]:
    key = f"session|{agent}|{st.start}"
    ranked = sorted(st.session_ids.items(), key=lambda kv: (-kv[1], kv[0]))
    main_sid = ranked[0][0] if ranked else ""
    return {
        "envelope": {
            "event_id": derived_id(key),
            "agent_id": agent,
            "session_id": main_sid,
            "trace_id": main_sid or key,
            "parent_id": None,
            "event_time": st.end,
            "seq": 0,
            "producer": {"name": producer, "version": "0"},
        },
        "session_start": st.start,
        "session_end": st.end,
        "duration_ms": st.end - st.start,
        "events": st.events,
        "steps": st.steps,
        "successes": st.successes,
        "failures": st.failures,
        "success": st.failures == 0 and st.successes > 0,
        "apps": sorted(st.apps),
    }


class SessionOperator:
    """Gap-based sessions per agent (see the module doc)."""

    name = "ses"

    def __init__(self, gap_ms: int, producer: str = "clawstream-sessions") -> None:
        self.gap_ms = gap_ms
        self.producer = producer
        self.open: dict[str, dict[int, SessionState]] = {}  # agent -> start -> state
        self._dirty: dict[str, bool] = {}
        self.late_events = 0
        self._next_close = NEVER_CLOSE  # no session can close before this watermark

    @staticmethod
    def _key(agent: str, start: int) -> str:
        return f"{agent}|{start}"

    def process(self, ev: Event, watermark: int) -> list[Output]:
        if ev.event_type not in SESSION_TYPES or (
            ev.source != SYNTHETIC and ev.producer == CORRELATOR
        ):
            return []
        agent = ev.agent
        t = ev.attach_time if ev.attach_time is not None else ev.event_time
        sessions = self.open.get(agent)
        if sessions is None:
            sessions = self.open[agent] = {}
        gap = self.gap_ms
        if len(sessions) == 1:  # the usual case: the agent's one open session
            (s,) = sessions.values()
            touching = [s] if s.start - gap < t < s.end + gap else []
        else:
            touching = [s for s in sessions.values() if s.start - gap < t < s.end + gap]
        if not touching and t + gap <= watermark:
            self.late_events += 1
            return []
        if touching:
            if len(touching) > 1:
                touching.sort(key=lambda s: s.start)
            target = touching[0]
            old_start = target.start
            for other in touching[1:]:
                del sessions[other.start]
                self._dirty[self._key(agent, other.start)] = False
                target.merge(other)
            target.add(ev)
            if target.start != old_start:
                del sessions[old_start]
                self._dirty[self._key(agent, old_start)] = False
                sessions[target.start] = target
        else:
            target = SessionState(t, t)
            target.add(ev)
            sessions[t] = target
        self._dirty[self._key(agent, target.start)] = True
        self._next_close = min(self._next_close, target.end + self.gap_ms)
        return []

    def refuse(self, ev: Event, watermark: int) -> list[Output]:
        """An event refused for its agent's clock takes no part here."""
        return []

    def synthesize(self, next_watermark: int) -> list[Event]:
        """Sessions make no events of their own."""
        return []

    def advance(self, watermark: int, now: int) -> list[Output]:
        out: list[Output] = []
        if watermark < self._next_close:
            return out
        next_close = NEVER_CLOSE
        for agent in list(self.open):
            sessions = self.open[agent]
            for start in sorted(sessions):
                st = sessions[start]
                if st.end + self.gap_ms <= watermark:
                    del sessions[start]
                    self._dirty[self._key(agent, start)] = False
                    out.append(SessionClosed(
                        agent, session_record(agent, st, watermark, self.producer)))
                else:
                    next_close = min(next_close, st.end + self.gap_ms)
            if not sessions:
                del self.open[agent]
        self._next_close = next_close
        return out

    def take_dirty(self) -> dict[str, bytes | None]:
        out: dict[str, bytes | None] = {}
        for key, alive in self._dirty.items():
            agent, _, start = key.rpartition("|")
            st = self.open.get(agent, {}).get(int(start)) if alive else None
            out[key] = st.to_bytes() if st is not None else None
        self._dirty.clear()
        return out

    def load(self, key: str, data: bytes) -> None:
        agent, _, start = key.rpartition("|")
        st = self.open.setdefault(agent, {})[int(start)] = SessionState.from_bytes(data)
        self._next_close = min(self._next_close, st.end + self.gap_ms)

    def on_restored(self, watermark: int) -> None:
        """Nothing to do: loaded sessions close on the next advance past them."""
