"""The held-back event clock (no broker): one rule for the windows' watermark, the alert
clock and the fleet merge: the lowest progress of the sources that hold, else the highest of
all; a caught-up source never holds."""

from __future__ import annotations

from streams.alerts.clock import AlertClock
from streams.alerts.state import AlertStore
from streams.windowing.clock import NEVER, has_backlog, held_back
from streams.windowing.fleet import FleetMerger
from streams.windowing.watermark import PartitionClock

S = 1000


def test_the_rule() -> None:
    assert held_back([]) == NEVER
    assert held_back([(5, False), (9, False)]) == 9  # none holds: the highest
    assert held_back([(5, True), (9, False), (7, True)]) == 5  # the lowest holder
    assert held_back([(NEVER, True), (9, False)]) == NEVER  # a holder not read yet


def test_backlog_is_a_high_water_mark_beyond_the_next_offset() -> None:
    assert not has_backlog(0, -1)  # empty partition, nothing read
    assert has_backlog(1, -1)
    assert not has_backlog(11, 10)  # offset 10 read, the next one gets 11
    assert has_backlog(12, 10)


def test_the_three_readers_apply_the_same_rule() -> None:
    # windows: a source topic with a backlog holds the partition's watermark
    clock = PartitionClock(lateness_ms=0)
    clock.observe("frames", 0, 50 * S)
    clock.observe("actions", 0, 20 * S)
    assert clock.candidate({"frames": False, "actions": True}) == held_back(
        [(50 * S, False), (20 * S, True)]) == 20 * S
    assert clock.candidate({"frames": False, "actions": False}) == 50 * S
    # fleet: a partition whose owner is alive and that has data holds the fleet
    fleet = FleetMerger(started_at=0.0, partitions=2, failover_s=30.0)
    fleet.report(0, 50 * S, {}, now=1.0)
    fleet.report(1, 20 * S, {}, now=1.0)
    assert fleet.fleet_watermark(now=2.0) == 20 * S
    assert fleet.fleet_watermark(now=40.0) == 50 * S  # both silent for long: the highest
    # alerts: an input partition that was behind when read holds the alert clock
    alerts = AlertClock(AlertStore({}))
    assert alerts.read("hb|0", None, 50 * S, False, 0) == 50 * S
    assert alerts.read("hb|1", None, 20 * S, True, 0) == 20 * S
    assert alerts.read("hb|1", alerts.last_read("hb|1"), 30 * S, False, 1) == 50 * S
