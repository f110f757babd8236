"""The held-back event clock (pure): one rule for every reader of several sources at once.

A reader of several sources sees them interleaved in arrival order, not in event time: after
a restart one topic's backlog is read before another's, a partition's leader is away for a
while, one input partition's owner is slower than another's. The event clock over them is

    the lowest progress of the sources that hold it; when none holds, the highest progress
    of them all; and it never goes back.

A source *holds* while what it has not shown yet may be older than what the others showed.
Sources that are caught up never hold, so a quiet source never stalls the clock. Three
readers use this rule; they differ only in what a source is, what its progress is and what
makes it hold:

- the windows' watermark of one partition (`streams.windowing.watermark.PartitionClock`):
  a source is one event topic's partition; its progress the highest event time applied from
  it (bounded by arrival); it holds while it has a backlog (`has_backlog`: the high-water
  mark is beyond what was applied) or cannot be read now; one that holds before anything was
  applied from it holds at `NEVER`. The watermark is the clock minus the allowed lateness,
  and an idle partition may be given a floor (its busy peers' watermark).
- the alert rules' clock (`streams.alerts.clock`): a source is one input partition (topic,
  partition) of the alert router; its progress the highest event time read from it (bounded
  by arrival); it holds while it had a backlog when its latest message was read. A source
  it has never read from is unknown to it, so it cannot hold.
- the fleet merge (`streams.windowing.fleet.FleetMerger`): a source is one input partition of
  the event-time processor; its progress the watermark its owner reported; it holds while its
  owner is alive (reported within the failover time) and it has data; a partition that has
  not reported since the merge started holds at `NEVER` for up to the failover time.
"""

from __future__ import annotations

from collections.abc import Iterable

#: The clock before anything was seen (far below any event time, and still an int).
NEVER = -(1 << 62)


def held_back(marks: Iterable[tuple[int, bool]]) -> int:
    """The clock over sources given as (progress, holds): the lowest progress of those that
    hold, else the highest of all; `NEVER` with no source. (The caller keeps it monotonic.)"""
    low = high = NEVER
    held = False
    for progress, holds in marks:
        if holds:
            if not held or progress < low:
                low = progress
            held = True
        if progress > high:
            high = progress
    return low if held else high


def has_backlog(high_watermark: int, position: int) -> bool:
    """Does a partition hold messages after offset `position` (the last one read or applied;
    -1 for none)? Its high-water mark is the offset its next message will get."""
    return high_watermark > position + 1
