"""Which partitions hold the event clock because they cannot be read (librdkafka statistics):
a partition whose leader went away holds, and still holds for a grace period once it is
readable again, while the producers find the new leader and deliver what they buffered."""

from __future__ import annotations

from typing import Any

from clawstream.kafka.readable import REGAINED_GRACE_S, Readability, readable_partitions


def stats(leader: int, up: set[int], fetch: str = "active") -> dict[str, Any]:
    return {"brokers": {f"b{n}": {"nodeid": n, "state": "UP" if n in up else "DOWN"}
                        for n in (1, 2, 3)},
            "topics": {"t": {"partitions": {
                "0": {"leader": leader, "fetch_state": fetch},
                "1": {"leader": 2, "fetch_state": "active"},
                "-1": {"leader": -1, "fetch_state": "none"}}}}}


def test_readable_means_fetching_from_a_leader_that_is_up() -> None:
    assert readable_partitions(stats(1, {1, 2, 3})) == {("t", 0), ("t", 1)}
    assert readable_partitions(stats(1, {2, 3})) == {("t", 1)}
    assert readable_partitions(stats(1, {1, 2}, fetch="offset-query")) == {("t", 1)}


def test_a_partition_regained_after_its_leader_left_holds_for_the_grace() -> None:
    r = Readability()
    r.update(stats(1, {1, 2, 3}), now=0.0)
    assert r.readable("t", 0, now=0.5)  # assigned and read from the start: no grace
    r.update(stats(1, {2, 3}), now=1.0)  # its leader killed
    assert not r.readable("t", 0, now=1.5) and r.readable("t", 1, now=1.5)
    r.update(stats(3, {2, 3}), now=10.0)  # a new leader: readable, but producers lag
    assert not r.readable("t", 0, now=10.5)
    for t in range(11, 11 + int(REGAINED_GRACE_S)):
        r.update(stats(3, {2, 3}), now=float(t))
    assert r.readable("t", 0, now=10.0 + REGAINED_GRACE_S)
    assert not r.readable("t", 0, now=10.0 + REGAINED_GRACE_S + 10), "statistics stale"


def test_a_leader_moved_between_two_statistics_holds_for_the_grace() -> None:
    r = Readability()
    r.update(stats(1, {1, 2, 3}), now=0.0)
    r.update(stats(3, {1, 2, 3}), now=1.0)  # a preferred leader election, a clean shutdown
    assert not r.readable("t", 0, now=1.5) and r.readable("t", 1, now=1.5)
    r.update(stats(3, {1, 2, 3}), now=1.0 + REGAINED_GRACE_S)
    assert r.readable("t", 0, now=1.0 + REGAINED_GRACE_S)


def test_a_partition_assigned_afresh_has_no_grace() -> None:
    r = Readability()
    r.update(stats(1, {1, 2, 3}), now=0.0)
    r.update(stats(1, {1, 2, 3}, fetch="none"), now=1.0)  # revoked (a rebalance)
    r.update(stats(1, {1, 2, 3}), now=2.0)  # assigned again
    assert r.readable("t", 0, now=2.5)
