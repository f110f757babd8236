"""Last-writer-wins register.

Writes are ordered by ``(timestamp_ms, replica_id)``; the replica id breaks ties between
replicas writing in the same millisecond, so every replica picks the same winner. A replica
always stamps a write above what it has already seen (``max(now, seen + 1)``), so its own
later write wins even if its clock stepped back. The value itself is the last tiebreak, only
to keep join a total-order maximum (commutative) even for malformed input.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class LWWRegister:
    """(ts, replica, value); join keeps the larger (ts, replica). Bottom is ts 0."""

    CRDT_TYPE: ClassVar[str] = "lww"
    __slots__ = ("replica", "ts", "value")

    def __init__(self, ts: int = 0, replica: str = "", value: str | None = None) -> None:
        self.ts = ts
        self.replica = replica
        self.value = value

    def _order(self) -> tuple[int, str, int, str]:
        return (self.ts, self.replica, self.value is not None, self.value or "")

    def set(self, replica: str, value: str | None, ts: int | None = None) -> LWWRegister:
        """Write `value`; returns the delta (the new register itself: it is small)."""
        stamp = _now_ms() if ts is None else ts
        stamp = max(stamp, self.ts + 1)
        self.ts, self.replica, self.value = stamp, replica, value
        return self.copy()

    def merge(self, other: LWWRegister) -> bool:
        if other._order() > self._order():
            self.ts, self.replica, self.value = other.ts, other.replica, other.value
            return True
        return False

    def join(self, other: LWWRegister) -> LWWRegister:
        out = self.copy()
        out.merge(other)
        return out

    def copy(self) -> LWWRegister:
        return LWWRegister(self.ts, self.replica, self.value)

    def is_bottom(self) -> bool:
        return self.ts == 0 and not self.replica and self.value is None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LWWRegister) and self._order() == other._order()

    # mutable: with __eq__ defined here, Python leaves __hash__ None (unhashable)

    def __repr__(self) -> str:
        return f"LWWRegister(ts={self.ts}, replica={self.replica!r}, value={self.value!r})"

    # Avro form: {"ts": long, "replica": string, "value": [null, string]}
    def to_avro(self) -> dict[str, Any]:
        return {"ts": self.ts, "replica": self.replica, "value": self.value}

    @classmethod
    def from_avro(cls, rec: dict[str, Any]) -> LWWRegister:
        return cls(rec["ts"], rec["replica"], rec["value"])
