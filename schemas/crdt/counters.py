"""Grow-only and positive-negative counters, delta-state style.

A GCounter maps each replica to the number of increments it made; join is the pointwise
maximum, so duplicates and reordering cannot inflate it. The delta of an increment is the one
entry that changed.
"""

from __future__ import annotations

from typing import Any, ClassVar


class GCounter:
    """Grow-only counter: value = sum over replicas; join = pointwise max."""

    CRDT_TYPE: ClassVar[str] = "gcounter"
    __slots__ = ("counts",)

    def __init__(self, counts: dict[str, int] | None = None) -> None:
        self.counts: dict[str, int] = {r: n for r, n in (counts or {}).items() if n > 0}

    @property
    def value(self) -> int:
        return sum(self.counts.values())

    def inc(self, replica: str, n: int = 1) -> GCounter:
        """Add `n` >= 0 for `replica`; returns the delta (the changed entry)."""
        if n < 0:
            raise ValueError("a GCounter only grows; use a PNCounter to decrement")
        total = self.counts.get(replica, 0) + n
        if total:
            self.counts[replica] = total
        return GCounter({replica: total})

    def merge(self, other: GCounter) -> bool:
        """Join `other` into self; True if self changed."""
        changed = False
        mine = self.counts
        for r, n in other.counts.items():
            if n > mine.get(r, 0):
                mine[r] = n
                changed = True
        return changed

    def join(self, other: GCounter) -> GCounter:
        out = self.copy()
        out.merge(other)
        return out

    def copy(self) -> GCounter:
        return GCounter(self.counts)

    def is_bottom(self) -> bool:
        return not self.counts

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GCounter) and self.counts == other.counts

    # mutable: with __eq__ defined here, Python leaves __hash__ None (unhashable)

    def __repr__(self) -> str:
        return f"GCounter({self.counts!r})"

    # Avro form: {"counts": map<long>}
    def to_avro(self) -> dict[str, Any]:
        return {"counts": dict(sorted(self.counts.items()))}

    @classmethod
    def from_avro(cls, rec: dict[str, Any]) -> GCounter:
        return cls(rec["counts"])


class PNCounter:
    """Counter that goes both ways: two GCounters, value = P - N."""

    CRDT_TYPE: ClassVar[str] = "pncounter"
    __slots__ = ("n", "p")

    def __init__(self, p: GCounter | None = None, n: GCounter | None = None) -> None:
        self.p = p or GCounter()
        self.n = n or GCounter()

    @property
    def value(self) -> int:
        return self.p.value - self.n.value

    def inc(self, replica: str, k: int = 1) -> PNCounter:
        """Add `k` (negative subtracts); returns the delta."""
        if k >= 0:
            return PNCounter(p=self.p.inc(replica, k))
        return PNCounter(n=self.n.inc(replica, -k))

    def dec(self, replica: str, k: int = 1) -> PNCounter:
        return self.inc(replica, -k)

    def merge(self, other: PNCounter) -> bool:
        a = self.p.merge(other.p)
        b = self.n.merge(other.n)
        return a or b

    def join(self, other: PNCounter) -> PNCounter:
        out = self.copy()
        out.merge(other)
        return out

    def copy(self) -> PNCounter:
        return PNCounter(self.p.copy(), self.n.copy())

    def is_bottom(self) -> bool:
        return self.p.is_bottom() and self.n.is_bottom()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PNCounter) and self.p == other.p and self.n == other.n

    # mutable: with __eq__ defined here, Python leaves __hash__ None (unhashable)

    def __repr__(self) -> str:
        return f"PNCounter(p={self.p.counts!r}, n={self.n.counts!r})"

    # Avro form: {"p": map<long>, "n": map<long>}
    def to_avro(self) -> dict[str, Any]:
        return {"p": self.p.to_avro()["counts"], "n": self.n.to_avro()["counts"]}

    @classmethod
    def from_avro(cls, rec: dict[str, Any]) -> PNCounter:
        return cls(GCounter(rec["p"]), GCounter(rec["n"]))
