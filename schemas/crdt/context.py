"""Dots and the compact causal context of Almeida, Shoker and Baquero, "Delta State Replicated
Data Types" (JPDC 2018), section 5.

A *dot* ``(replica, n)`` names the n-th event made by a replica. A causal context is the set of
dots a state has seen. It is kept compact: a version vector ``vv`` covers the contiguous dots
``1..vv[r]`` of each replica and a *dot cloud* holds the rest (deltas carry isolated dots).
After `compact()` the representation of a set of dots is unique, so equal contexts compare
equal, which the property tests and the idempotence check of the merger rely on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

Dot = tuple[str, int]


class CausalContext:
    """A set of dots, stored as version vector + dot cloud. Mutable; `copy()` before sharing."""

    __slots__ = ("cloud", "vv")

    def __init__(self, vv: dict[str, int] | None = None, cloud: Iterable[Dot] = ()) -> None:
        self.vv: dict[str, int] = {r: n for r, n in (vv or {}).items() if n > 0}
        self.cloud: set[Dot] = set(cloud)
        self.compact()

    @classmethod
    def from_dots(cls, dots: Iterable[Dot]) -> CausalContext:
        return cls(None, dots)

    def copy(self) -> CausalContext:
        c = CausalContext.__new__(CausalContext)
        c.vv = dict(self.vv)
        c.cloud = set(self.cloud)
        return c

    def __contains__(self, dot: Dot) -> bool:
        return dot[1] <= self.vv.get(dot[0], 0) or dot in self.cloud

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, CausalContext)
            and self.vv == other.vv
            and self.cloud == other.cloud
        )

    def __hash__(self) -> int:  # pragma: no cover - contexts are mutable, never hashed
        raise TypeError("CausalContext is mutable")

    def __repr__(self) -> str:
        return f"CausalContext(vv={self.vv!r}, cloud={sorted(self.cloud)!r})"

    def __len__(self) -> int:
        """How many dots the context holds (a monotone measure of causal history)."""
        return sum(self.vv.values()) + len(self.cloud)

    def dots(self) -> Iterator[Dot]:
        for r, n in self.vv.items():
            for i in range(1, n + 1):
                yield (r, i)
        yield from self.cloud

    def max_of(self, replica: str) -> int:
        """The highest counter seen for `replica`."""
        top = self.vv.get(replica, 0)
        for r, n in self.cloud:
            if r == replica and n > top:
                top = n
        return top

    def next_dot(self, replica: str) -> Dot:
        """A fresh dot for `replica`, and record it as seen."""
        dot = (replica, self.max_of(replica) + 1)
        self.add(dot)
        return dot

    def add(self, dot: Dot) -> None:
        r, n = dot
        cur = self.vv.get(r, 0)
        if n <= cur:
            return
        if n == cur + 1:
            self.vv[r] = n
            if self.cloud:
                self._absorb(r)
        else:
            self.cloud.add(dot)

    def merge(self, other: CausalContext) -> None:
        """In-place union."""
        for r, n in other.vv.items():
            if n > self.vv.get(r, 0):
                self.vv[r] = n
        if other.cloud:
            self.cloud |= other.cloud
        self.compact()

    def join(self, other: CausalContext) -> CausalContext:
        out = self.copy()
        out.merge(other)
        return out

    def _absorb(self, r: str) -> None:
        n = self.vv.get(r, 0)
        while (r, n + 1) in self.cloud:
            n += 1
            self.cloud.discard((r, n))
        if n:
            self.vv[r] = n

    def compact(self) -> None:
        """Move dots contiguous with the version vector out of the cloud."""
        if not self.cloud:
            return
        for r in {r for r, _ in self.cloud}:
            self._absorb(r)
        vv = self.vv
        self.cloud = {d for d in self.cloud if d[1] > vv.get(d[0], 0)}
