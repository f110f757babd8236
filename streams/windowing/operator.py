"""The windowing operator: tumbling/hopping event-time windows per scope (pure).

Each event is counted in every window of every family that contains its event time, under
its own (agent, app, action kind) scope. A window closes once the watermark reaches its end:
its aggregate is emitted once, and the merge of all scopes' windows closing with it is the
partition's fleet ('*') part, which goes to the cross-partition merge (deriving it at close
costs one merge per window instead of a second update per event). An event whose window is
already closed is late for that window: it goes to the late output, with the windows it
missed (it still counts in the windows containing it that are open), and is counted in
`late_events` of its scope's pane at the partition's frontier (the pane holding watermark +
lateness, i.e. the highest event time seen), so the windows open now report how many late
events arrived while they were current (what the `LateEvents` alert rule reads). An event
refused for its agent's clock (see `streams.windowing.pipeline`) counts in no window; it is
counted in `clock_skew_events` of its agent's scope (agent, '', '') in the pane of its arrival
(or the frontier, if that has closed), which the `AgentClockSkew` alert rule reads.

Panes, for speed: every window boundary is a multiple of the pane size g (the gcd of all
sizes and steps, 10 s by default), so an event updates one pane (instead of one window per
family and step: 7 with 10 s, 60 s and 300/60 s). A window is the merge of its panes at
the moment it closes; a pane is kept until the last window containing it has closed. An
update to a pane after one of its windows closed is exactly an event late for that window,
and still counts for the windows that are open, as the semantics require."""

from __future__ import annotations

import heapq
from functools import reduce
from math import gcd

from schemas.headers import REASON_LATE, LateInfo
from streams.windowing.outputs import FleetPartial, LateEvent, Output, WindowClosed
from streams.windowing.pipeline import SYNTHETIC, Event
from streams.windowing.state import (
    FLEET,
    Scope,
    WindowState,
    agent_scope_key,
    scope_key,
    to_record,
)
from streams.windowing.windows import WindowSpec

CORRELATOR = "clawstream-correlator"
WINDOWED_TYPES = ("frame", "detection", "plan", "action", "outcome", "heartbeat", "state_delta")
WINDOWED = frozenset(WINDOWED_TYPES)
FLEET_KEY = FLEET.key


def window_key(spec: WindowSpec, start: int, scope: Scope | str) -> str:
    sk = scope if isinstance(scope, str) else scope.key
    return f"{spec.label}|{start}|{sk}"


def parse_window_key(key: str) -> tuple[WindowSpec, int, Scope]:
    label, start, scope = key.split("|", 2)
    if label[0] == "t":
        size = step = int(label[1:])
    else:
        size_s, step_s = label[1:].split("/")
        size, step = int(size_s), int(step_s)
    return WindowSpec(size, step), int(start), Scope.from_key(scope)


class WindowOperator:
    """Tumbling and hopping windows per scope, over panes (see the module doc)."""

    name = "win"

    def __init__(self, specs: list[WindowSpec], *, fleet: bool = True,
                 producer: str = "clawstream-windows", lateness_ms: int = 0) -> None:
        self.specs = list(specs)
        self.lateness_ms = lateness_ms
        self.fleet = fleet
        self.producer = producer
        self.pane_ms = reduce(gcd, [s.size_ms for s in specs] + [s.step_ms for s in specs])
        self._step_size = tuple((s.step_ms, s.size_ms) for s in specs)
        self.panes: dict[tuple[int, str], WindowState] = {}
        self._windows: set[tuple[int, int, str]] = set()  # (spec index, start, scope) open
        self._heap: list[tuple[int, int, int, str]] = []  # (end, spec index, start, scope)
        self._expiry: list[tuple[int, int, str]] = []  # (last window end, pane, scope)
        self._dirty: set[tuple[int, str]] = set()
        self._restored_keys: list[tuple[int, str]] = []
        self.late_events = 0

    # -- panes and windows ----------------------------------------------------------------------
    def _pane_expiry(self, pane: int) -> int:
        """End of the last window containing the pane (when the pane can be dropped)."""
        end = 0
        for step, size in self._step_size:
            e = pane - pane % step + size
            if e > end:
                end = e
        return end

    def _new_pane(self, pane: int, sk: str, watermark: int) -> WindowState:
        st = self.panes[(pane, sk)] = WindowState()
        heapq.heappush(self._expiry, (self._pane_expiry(pane), pane, sk))
        self._register(pane, sk, watermark)
        return st

    def _register(self, pane: int, sk: str, watermark: int) -> None:
        """Make the open windows containing this pane known, so they close on time."""
        for i, spec in enumerate(self.specs):
            for start, end in spec.assign(pane):
                if end > watermark and (i, start, sk) not in self._windows:
                    self._windows.add((i, start, sk))
                    heapq.heappush(self._heap, (end, i, start, sk))

    # -- events -------------------------------------------------------------------------------
    def process(self, ev: Event, watermark: int) -> list[Output]:
        et = ev.event_type
        if et not in WINDOWED or (ev.source != SYNTHETIC and ev.producer == CORRELATOR):
            return []  # lost outcomes are counted when synthesized, not when read back
        t = ev.event_time
        out: list[Output] = []
        agent = ev.agent
        sk = scope_key(et, ev.record, agent)
        if t < watermark:  # some window containing t may be closed already
            missed = [(spec.label, s, e) for spec in self.specs
                      for s, e in spec.assign(t) if e <= watermark]
            if missed:
                out.append(self._late(ev, missed, watermark))
                self._count_late(ev, sk, watermark)
                if self._pane_expiry(t - t % self.pane_ms) <= watermark:
                    return out  # every window of this event has closed
        st = self._uncounted(t - t % self.pane_ms, sk, ev, watermark)
        if st is not None:
            st.add(et, ev.record, agent, t)
        return out

    def refuse(self, ev: Event, watermark: int) -> list[Output]:
        """Count an event refused for its clock in an open pane of its agent's own scope
        (agent, '', ''): the clock is the agent's, whatever app or action the event is
        about, so `AgentClockSkew` fires once per agent. The pane is the one of its arrival,
        or the frontier if that has closed."""
        if ev.event_type not in WINDOWED:
            return []
        t = ev.arrival if ev.arrival is not None else ev.event_time
        if t < watermark + self.lateness_ms:
            t = watermark + self.lateness_ms
        st = self._uncounted(t - t % self.pane_ms, agent_scope_key(ev.agent), ev, watermark)
        if st is not None:
            st.clock_skew_events += 1
        return []

    def _count_late(self, ev: Event, sk: str, watermark: int) -> None:
        """Count a late event in its scope's frontier pane (its windows are all open: they
        end after watermark + lateness), deduplicated by offset like any event."""
        front = watermark + self.lateness_ms
        st = self._uncounted(front - front % self.pane_ms, sk, ev, watermark)
        if st is not None:
            st.late_events += 1

    def _uncounted(self, pane: int, sk: str, ev: Event, watermark: int) -> WindowState | None:
        """The pane's state of this scope (created when missing) if it has not counted `ev`
        yet, marked as counting it now; None if it has: a replay after a crash counts
        nothing twice."""
        key = (pane, sk)
        st = self.panes.get(key)
        if st is None:
            st = self._new_pane(pane, sk, watermark)
        elif st.applied.get(ev.source, -1) >= ev.offset:
            return None  # already counted before a crash
        st.applied[ev.source] = ev.offset
        self._dirty.add(key)
        return st

    def _late(self, ev: Event, missed: list[tuple[str, int, int]], watermark: int) -> LateEvent:
        self.late_events += 1
        info = LateInfo(REASON_LATE, ev.event_type, ev.envelope["event_id"], ev.event_time,
                        watermark, ev.source, missed, arrival=ev.arrival)
        return LateEvent(ev.agent, ev, info.headers())

    def synthesize(self, next_watermark: int) -> list[Event]:
        """Windows make no events of their own."""
        return []

    def advance(self, watermark: int, now: int) -> list[Output]:
        out: list[Output] = []
        g = self.pane_ms
        fleet: dict[tuple[int, int], WindowState] = {}  # (spec index, start) -> fleet part
        while self._heap and self._heap[0][0] <= watermark:
            end, i, start, sk = heapq.heappop(self._heap)
            self._windows.discard((i, start, sk))
            spec = self.specs[i]
            parts = [st for p in range(start, end, g)
                     if (st := self.panes.get((p, sk))) is not None]
            if len(parts) == 1:
                merged = parts[0]  # read only: most windows are one pane (the 10 s ones)
            else:
                merged = WindowState()
                for st in parts:
                    merged.merge(st)
            if not merged.counts and not merged.late_events and not merged.clock_skew_events:
                continue
            scope = Scope.from_key(sk)
            rec = to_record(merged, size_ms=spec.size_ms, step_ms=spec.step_ms, start=start,
                            scope=scope, watermark=watermark, key=window_key(spec, start, sk),
                            producer=self.producer)
            out.append(WindowClosed(scope.agent, rec))
            if self.fleet:
                part = fleet.get((i, start))
                if part is None:
                    part = fleet[(i, start)] = WindowState()
                part.merge(merged)
        for (i, start), part in fleet.items():
            out.append(FleetPartial(window_key(self.specs[i], start, FLEET_KEY), part))
        while self._expiry and self._expiry[0][0] <= watermark:
            _, pane, sk = heapq.heappop(self._expiry)
            if self.panes.pop((pane, sk), None) is not None:
                self._dirty.add((pane, sk))
        return out

    # -- state --------------------------------------------------------------------------------
    def take_dirty(self) -> dict[str, bytes | None]:
        out: dict[str, bytes | None] = {}
        for key in self._dirty:
            st = self.panes.get(key)
            out[f"{key[0]}|{key[1]}"] = st.to_bytes() if st is not None else None
        self._dirty.clear()
        return out

    def load(self, key: str, data: bytes) -> None:
        pane_s, _, sk = key.partition("|")
        pane = int(pane_s)
        if sk == FLEET_KEY:  # written by an older version, which kept fleet panes: the fleet
            self._dirty.add((pane, sk))  # part is now the merge of the scopes' windows
            return
        self.panes[(pane, sk)] = WindowState.from_bytes(data)
        heapq.heappush(self._expiry, (self._pane_expiry(pane), pane, sk))
        self._restored_keys.append((pane, sk))

    def on_restored(self, watermark: int) -> None:
        """After a restore: re-register the windows the restored watermark left open."""
        for pane, sk in self._restored_keys:
            self._register(pane, sk, watermark)
        self._restored_keys.clear()
