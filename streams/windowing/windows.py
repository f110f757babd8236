"""Event-time window assignment (pure).

Windows are aligned to the epoch: a tumbling window of size S covers [k*S, (k+1)*S); a hopping
window of size S and step H covers [k*H, k*H + S). Assignment is by the event's own time, never
by arrival, so replaying a topic yields the same windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, order=True)
class WindowSpec:
    """One family of windows: tumbling (step == size) or hopping (step < size)."""

    size_ms: int
    step_ms: int

    def __post_init__(self) -> None:
        if self.size_ms <= 0 or self.step_ms <= 0:
            raise ValueError("window size and step must be positive")
        if self.step_ms > self.size_ms:
            raise ValueError("a step larger than the size would leave gaps between windows")

    @property
    def kind(self) -> str:
        return "tumbling" if self.step_ms == self.size_ms else "hopping"

    @property
    def label(self) -> str:
        """Short stable name used inside window keys, e.g. t10000 or h300000/60000."""
        if self.kind == "tumbling":
            return f"t{self.size_ms}"
        return f"h{self.size_ms}/{self.step_ms}"

    def assign(self, t: int) -> list[tuple[int, int]]:
        """All (start, end) windows containing event time `t` (ms), oldest first."""
        start = t - t % self.step_ms  # Python's % floors, so negative t works too
        out = []
        while start + self.size_ms > t:
            out.append((start, start + self.size_ms))
            start -= self.step_ms
        out.reverse()
        return out


def tumbling(size_s: float) -> WindowSpec:
    ms = round(size_s * 1000)
    return WindowSpec(ms, ms)


def hopping(size_s: float, step_s: float) -> WindowSpec:
    return WindowSpec(round(size_s * 1000), round(step_s * 1000))


def parse_specs(tumbling_s: str, hopping_spec: str) -> list[WindowSpec]:
    """Window families from the settings strings ("10,60" and "300/60"; empty = none)."""
    specs: list[WindowSpec] = []
    for part in (p.strip() for p in tumbling_s.split(",")):
        if part:
            specs.append(tumbling(float(part)))
    for part in (p.strip() for p in hopping_spec.split(",")):
        if part:
            size, _, step = part.partition("/")
            specs.append(hopping(float(size), float(step or size)))
    return sorted(set(specs))


class WindowSettings(Protocol):
    """The settings the window families come from (`clawstream.settings.Settings`)."""

    tumbling_windows_s: str
    hopping_window: str


def specs_from_settings(settings: WindowSettings) -> list[WindowSpec]:
    return parse_specs(settings.tumbling_windows_s, settings.hopping_window)
