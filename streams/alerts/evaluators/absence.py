"""Absence rules: an agent silent on its sources for longer than `after` fires (pure).

An agent's activity is kept per source (heartbeat, outcome, aggregate) as (event time,
arrival time) at `SEEN_GRANULARITY_MS`. The rules are swept over every agent heard of when
the alert clock moves on (event time: `streams.alerts.clock`), and on wall-clock ticks
(arrival time, for rules with `wall_clock`), so an agent is found silent even when nothing
arrives at all. An absence resolves when the agent is heard from again.
"""

from __future__ import annotations

from collections.abc import Sequence

from streams.alerts.evaluators.base import Evaluator
from streams.alerts.incidents import AlertEvent
from streams.alerts.rules import AbsenceRule
from streams.alerts.state import Activity, Incident

#: Activity timestamps are persisted at this granularity (bounds changelog writes).
SEEN_GRANULARITY_MS = 250
AGENTS_INDEX = "agents"


class AbsenceEvaluator(Evaluator):

    def heard(self, out: list[AlertEvent], rules: Sequence[AbsenceRule], source: str,
              agent: str, event_time: int, arrival_ms: int | None) -> None:
        """The agent was heard from on `source`: note it; resolve its absences."""
        wall = arrival_ms if arrival_ms is not None else event_time
        seen = self.state.get(Activity, agent)
        if seen is None:
            self.state.index_add(AGENTS_INDEX, agent)
            seen = Activity()
        ev0, wall0 = seen.last.get(source, (-1, -1))
        if event_time - ev0 >= SEEN_GRANULARITY_MS or wall - wall0 >= SEEN_GRANULARITY_MS:
            self.state.put(agent, Activity(
                {**seen.last, source: (max(ev0, event_time), max(wall0, wall))}))
        for rule in rules:
            if source in rule.sources and rule.match.matches({"agent": agent}):
                labels = {"agent": agent}
                fp, _ = self.incidents.fingerprint(rule, labels)
                if self.state.has(Incident, fp):  # the agent is back: resolve
                    self.incidents.observe(out, rule, labels, False, event_time, 0.0, False)

    def sweep(self, out: list[AlertEvent], rules: Sequence[AbsenceRule], now: int,
              wall: bool) -> None:
        """Check every rule for every agent heard of, at `now` (event or wall time)."""
        agents = self.state.index(AGENTS_INDEX)
        for rule in rules:
            for agent in agents:
                self.check(out, rule, agent, now, wall)

    def check(self, out: list[AlertEvent], rule: AbsenceRule, agent: str, now: int,
              wall: bool) -> None:
        """Fire only; an absence resolves when the agent is heard from again."""
        if not rule.match.matches({"agent": agent}):
            return
        self.evaluations += 1
        seen = self.state.get(Activity, agent) or Activity()
        marks = [seen.last[s] for s in rule.sources if s in seen.last]
        if not marks:
            return
        if wall:
            if not rule.wall_clock:
                return
            last = max(m[1] for m in marks)
        else:
            last = max(m[0] for m in marks)
        silent = now - last
        if silent > rule.after:
            self.incidents.observe(out, rule, {"agent": agent}, True, now, silent / 1000.0, True,
                                   {"silent_for_s": f"{silent / 1000.0:.1f}",
                                    "clock": "wall" if wall else "event"})
