"""The alert rules' event clock over their input partitions (pure).

The engine sees its input partitions interleaved in arrival order: while the worker works
through a backlog, one partition's events can be minutes ahead of another's, and the highest
event time seen would make every agent of the slower partition look silent. So the clock is
the held-back clock of `streams.windowing.clock` over the input partitions: a partition that
was still behind its high-water mark when its latest input was read holds the clock at the
highest event time read from it; partitions that are caught up do not hold (an idle partition
never stalls the clock); with none behind, the clock is the highest event time read. Event
times count for no more than their arrival (agents' clocks are not trusted). The clock never
goes back; absence rules are swept each time it moves `SWEEP_EVERY_MS` on.

Unlike the windows' watermark it has no lateness and no idle floor, and a partition it has
never read from cannot hold it (it does not know of it).
"""

from __future__ import annotations

from streams.alerts.state import AlertStore, ClockMark, ReadMark
from streams.windowing.clock import NEVER, held_back

#: Event-clock advance between two sweeps of the absence rules.
SWEEP_EVERY_MS = 1000
#: The clock is persisted when it moved at least this much (bounds changelog writes).
CLOCK_GRANULARITY_MS = 25
SOURCES_INDEX = "sources"
BEHIND_INDEX = "behind"


class AlertClock:
    def __init__(self, state: AlertStore) -> None:
        self.state = state

    def last_read(self, source: str) -> ReadMark | None:
        """What was read last from input partition `source` ("<topic>|<partition>")."""
        return self.state.get(ReadMark, source)

    def read(self, source: str, last: ReadMark | None, t: int, behind: bool,
             offset: int) -> int:
        """Record an input at `offset` and event time `t` from `source` (`behind`: its
        partition had more after it) and return the clock the input partitions allow now
        (`advance` keeps the clock monotonic: a lower value, or NEVER, moves nothing).
        O(1) while none is behind."""
        high = t if last is None or last.high is None else max(last.high, t)
        self.state.put(source, ReadMark(offset, high, behind))
        key = f"{ReadMark.PREFIX}|{source}"  # (the indexes hold store keys)
        if last is None or last.high is None:
            self.state.index_add(SOURCES_INDEX, key)
        was_behind = last.behind if last is not None else False
        if behind != was_behind:
            (self.state.index_add if behind else self.state.index_remove)(BEHIND_INDEX, key)
        elif not behind:  # a caught-up partition moves the clock only when none is behind
            return NEVER if self.state.index(BEHIND_INDEX) else high
        # (the raw JSON marks, [offset, high, behind]: read here for every input while a
        # partition is behind, so without building a record each)
        marks = [self.state.data.get(k) for k in self.state.index(SOURCES_INDEX)]
        return held_back((m[1], bool(m[2])) for m in marks
                         if isinstance(m, list) and m[1] is not None)

    def advance(self, t: int) -> bool:
        """Move the clock to `t` (never back); True when the absence rules are due a sweep."""
        clock = self.state.clock()
        if t <= clock.ev:
            return False
        if t - clock.swept >= SWEEP_EVERY_MS:
            self.state.put_clock(ClockMark(t, t))
            return True
        if t - clock.ev >= CLOCK_GRANULARITY_MS:
            clock.ev = t
            self.state.put_clock(clock)
        return False
