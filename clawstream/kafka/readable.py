"""Which assigned partitions can be read now, from librdkafka's statistics.

A partition is readable when its fetcher is active and its leader broker is up. One that
cannot be read (its leader away, its assignment being set up) must hold the event-time clock
like one with a backlog: what it holds back is simply not visible yet. And for a while after
it can be read again following a spell it could not, or after its leader changed
(`REGAINED_GRACE_S`): the producers lost the leader too, and the events they buffered
meanwhile reach the new leader only once they have found it and it has them in sync, later
than the readers found it (seen: 10-13 s after a leader moved during a rolling restart of
three brokers, `bench/bench_cluster_faults.py`, broker append times). Released as soon as the
reader sees the partition caught up, the clock would run past those events: they would be
late.
"""

from __future__ import annotations

import time
from typing import Any

#: Statistics older than this say nothing about a partition being readable now.
STATS_STALE_S = 3.0
#: A partition readable again after a spell it was not, or whose leader changed, is still
#: held this long (the producers find its new leader and deliver what they buffered).
REGAINED_GRACE_S = 15.0

Partition = tuple[str, int]


def readable_partitions(stats: dict[str, Any]) -> set[Partition]:
    """(topic, partition) whose fetcher is active with a leader broker that is up, from
    librdkafka's statistics JSON."""
    up = {b["nodeid"] for b in stats.get("brokers", {}).values()
          if b.get("state") == "UP" and b.get("nodeid", -1) >= 0}
    out = set()
    for topic, t in stats.get("topics", {}).items():
        for pid, part in t.get("partitions", {}).items():
            p = int(pid)
            if p >= 0 and part.get("fetch_state") == "active" and part.get("leader") in up:
                out.add((topic, p))
    return out


class Readability:
    """The latest statistics' readable partitions, and when each was regained."""

    def __init__(self, grace_s: float = REGAINED_GRACE_S) -> None:
        self.grace_s = grace_s
        self._readable: set[Partition] = set()
        self._seen: set[Partition] = set()  # readable once since assigned
        self._lost: set[Partition] = set()  # readable once, not now
        self._regained: dict[Partition, float] = {}
        self._leader: dict[Partition, int] = {}
        self._at = 0.0

    def update(self, stats: dict[str, Any], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        readable = readable_partitions(stats)
        assigned = {(topic, int(pid)) for topic, t in stats.get("topics", {}).items()
                    for pid, part in t.get("partitions", {}).items()
                    if int(pid) >= 0 and part.get("fetch_state", "none") != "none"}
        self._seen &= assigned  # a partition assigned afresh starts clean
        self._lost = (self._lost | (self._seen - readable)) & assigned
        leaders = {(topic, int(pid)): int(part.get("leader", -1))
                   for topic, t in stats.get("topics", {}).items()
                   for pid, part in t.get("partitions", {}).items() if int(pid) >= 0}
        moved = {tp for tp in self._seen & readable
                 if self._leader.get(tp, leaders[tp]) != leaders[tp]}
        for tp in (self._lost & readable) | moved:
            self._regained[tp] = now
        self._leader.update({tp: leaders[tp] for tp in readable})
        self._lost -= readable
        self._seen |= readable
        self._readable = readable
        self._at = now

    def readable(self, topic: str, partition: int, now: float | None = None) -> bool:
        """Readable as of recent statistics, and not regained within the grace period."""
        now = time.monotonic() if now is None else now
        tp = (topic, partition)
        return (now - self._at < STATS_STALE_S and tp in self._readable
                and now - self._regained.get(tp, -self.grace_s - 1) >= self.grace_s)
