"""The windowing operator: tumbling/hopping event-time windows per scope (pure).

Each event is counted in every window of every family that contains its event time, under
its own (agent, app, action kind) scope and under the partition's fleet scope '*'. A window
closes once the watermark reaches its end: its aggregate is emitted (once: its state is then
deleted) and the fleet part goes to the cross-partition merge. An event whose window is
already closed is late: it goes to the late output, with the windows it missed.
"""

from __future__ import annotations

import heapq
import json

from streams.windowing.pipeline import SYNTHETIC, Event, Output
from streams.windowing.state import FLEET, Scope, WindowState, scope_of, to_record
from streams.windowing.windows import WindowSpec

CORRELATOR = "clawstream-correlator"
WINDOWED_TYPES = ("frame", "detection", "plan", "action", "outcome", "heartbeat", "state_delta")


def window_key(spec: WindowSpec, start: int, scope: Scope) -> str:
    return f"{spec.label}|{start}|{scope.key}"


def parse_window_key(key: str) -> tuple[WindowSpec, int, Scope]:
    label, start, scope = key.split("|", 2)
    if label[0] == "t":
        size = step = int(label[1:])
    else:
        size_s, step_s = label[1:].split("/")
        size, step = int(size_s), int(step_s)
    return WindowSpec(size, step), int(start), Scope.from_key(scope)


class WindowOperator:
    name = "win"

    def __init__(self, specs: list[WindowSpec], *, fleet: bool = True,
                 producer: str = "clawstream-windows") -> None:
        self.specs = specs
        self.fleet = fleet
        self.producer = producer
        self.windows: dict[str, WindowState] = {}
        self._ends: dict[int, set[str]] = {}
        self._heap: list[int] = []
        self._dirty: dict[str, bool] = {}  # key -> alive
        self.late_events = 0

    # -- state --------------------------------------------------------------------------------
    def _get(self, key: str, end: int) -> WindowState:
        st = self.windows.get(key)
        if st is None:
            st = self.windows[key] = WindowState()
            keys = self._ends.get(end)
            if keys is None:
                keys = self._ends[end] = set()
                heapq.heappush(self._heap, end)
            keys.add(key)
        return st

    def take_dirty(self) -> dict[str, bytes | None]:
        out: dict[str, bytes | None] = {}
        for key in self._dirty:
            st = self.windows.get(key)
            out[key] = st.to_bytes() if st is not None else None
        self._dirty.clear()
        return out

    def load(self, key: str, data: bytes) -> None:
        spec, start, _ = parse_window_key(key)
        self._get(key, start + spec.size_ms)
        self.windows[key] = WindowState.from_bytes(data)

    # -- events -------------------------------------------------------------------------------
    def process(self, ev: Event, watermark: int) -> list[Output]:
        if ev.event_type not in WINDOWED_TYPES or (
            ev.source != SYNTHETIC and ev.producer == CORRELATOR
        ):
            return []  # lost outcomes are counted when synthesized, not when read back
        t = ev.event_time
        agent = ev.agent
        scopes = [scope_of(ev.event_type, ev.record, agent)]
        if self.fleet:
            scopes.append(FLEET)
        missed: list[list] = []
        for spec in self.specs:
            for start, end in spec.assign(t):
                if end <= watermark:
                    missed.append([spec.label, start, end])
                    continue
                for scope in scopes:
                    key = window_key(spec, start, scope)
                    st = self._get(key, end)
                    if st.applied.get(ev.source, -1) >= ev.offset:
                        continue  # already counted before a crash
                    st.applied[ev.source] = ev.offset
                    st.add(ev.event_type, ev.record, agent, t)
                    self._dirty[key] = True
        if not missed:
            return []
        self.late_events += 1
        headers = {
            "clawstream.late.windows": json.dumps(missed, separators=(",", ":")),
            "clawstream.late.watermark": str(watermark),
            "clawstream.late.event_type": ev.event_type,
            "clawstream.late.event_time": str(t),
            "clawstream.late.event_id": ev.envelope["event_id"],
            "clawstream.source.topic": ev.source,
        }
        return [Output("late", agent, ev, headers)]

    def advance(self, watermark: int, now: int) -> list[Output]:
        out: list[Output] = []
        while self._heap and self._heap[0] <= watermark:
            end = heapq.heappop(self._heap)
            for key in sorted(self._ends.pop(end, ())):
                st = self.windows.pop(key, None)
                if st is None:
                    continue
                self._dirty[key] = False
                spec, start, scope = parse_window_key(key)
                if scope == FLEET:
                    out.append(Output("fleet_partial", key, st))
                else:
                    rec = to_record(st, size_ms=spec.size_ms, step_ms=spec.step_ms, start=start,
                                    scope=scope, watermark=watermark, key=key,
                                    producer=self.producer)
                    out.append(Output("aggregate", scope.agent, rec))
        return out
