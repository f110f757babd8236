"""The alert evaluation engine: decoded events in, Alert lifecycle events out. No I/O.

All evaluation state lives in one flat `MutableMapping[str, JSON value]` (a dict in tests, a
changelog-backed faust Table in the worker), read and written as typed records
(`streams.alerts.state`): values are replaced, never mutated in place, so every change
reaches the changelog and a restarted worker continues where the last one stopped instead of
firing the same incident again. Event ids are uuid5 of fingerprint, incident and state, so
replaying the same input after a crash yields the same ids and downstream dedups them.

The engine routes each input to the evaluator of each rule kind that reads it
(`streams.alerts.evaluators`: threshold and anomaly over window aggregates, streak and
circuit breaker over outcomes, absence over every agent's activity), which drive the
incidents (`streams.alerts.incidents`). Absence rules are checked against an event clock over
the input partitions (`streams.alerts.clock`: held back by partitions with a backlog) and,
on wall-clock ticks, against arrival time.

The worker runs one engine per alert partition (`streams.alerts.routing`): each input
comes with the names of the rules that partition evaluates for it (`rules`), and an engine
sweeps only the absence rules it owns (`owns_fleet_rule`); one that owns none keeps no event
clock and no activity, only the offsets read. With neither, one engine evaluates everything.

Agents' clocks are not trusted: an input's time counts for no more than its arrival (the Kafka
timestamp), so one agent whose clock runs ahead can neither move the clock past what has
arrived (making every other agent look silent) nor look active in the future itself.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, MutableMapping
from typing import Any

from streams.alerts.clock import SWEEP_EVERY_MS, AlertClock
from streams.alerts.evaluators import (
    AbsenceEvaluator,
    AnomalyEvaluator,
    BreakerEvaluator,
    StreakEvaluator,
    ThresholdEvaluator,
)
from streams.alerts.evaluators.absence import SEEN_GRANULARITY_MS
from streams.alerts.evaluators.base import outcome_labels
from streams.alerts.evaluators.windows import aggregate_metric, aggregate_scope, window_label
from streams.alerts.incidents import ALERT_NS, AlertEvent, Incidents, event_id, fingerprint
from streams.alerts.rules import (
    AbsenceRule,
    AnomalyRule,
    CircuitBreakerRule,
    RuleBook,
    RuleSet,
    StreakRule,
    ThresholdRule,
)
from streams.alerts.state import AlertStore, Incident, ReadMark
from streams.windowing.clock import NEVER

__all__ = [
    "ALERT_NS",
    "SEEN_GRANULARITY_MS",
    "SWEEP_EVERY_MS",
    "AlertEngine",
    "AlertEvent",
    "aggregate_metric",
    "at_most",
    "event_id",
    "fingerprint",
    "outcome_labels",
    "window_label",
]


def at_most(rec: dict[str, Any], t: int) -> dict[str, Any]:
    """The record with its envelope's event time capped at t (itself when already)."""
    env = rec["envelope"]
    if env["event_time"] <= t:
        return rec
    return {**rec, "envelope": {**env, "event_time": t}}


class AlertEngine:
    """Evaluates every rule kind over decoded events; state in a flat mapping."""

    def __init__(
        self, rules: RuleSet | RuleBook, store: MutableMapping[str, Any] | None = None,
        owns_fleet_rule: Callable[[str], bool] | None = None,
    ) -> None:
        """`owns_fleet_rule(name)`: does this engine evaluate that absence rule? (One of the
        engines a worker runs per alert partition, `streams.alerts.routing`; None: all.)"""
        self.book = rules if isinstance(rules, RuleBook) else RuleBook(rules)
        self.owns_fleet_rule = owns_fleet_rule
        self.store: MutableMapping[str, Any] = {} if store is None else store
        self.state = AlertStore(self.store)
        self.incidents = Incidents(self.state, self.book)
        self.clock = AlertClock(self.state)
        self.thresholds = ThresholdEvaluator(self.state, self.incidents)
        self.anomalies = AnomalyEvaluator(self.state, self.incidents)
        self.streaks = StreakEvaluator(self.state, self.incidents)
        self.breakers = BreakerEvaluator(self.state, self.incidents)
        self.absences = AbsenceEvaluator(self.state, self.incidents)
        self._kinds: dict[type[Any], list[Any]] = {}
        self._kinds_version = -1

    @property
    def rules(self) -> RuleSet:
        return self.book.rules

    @property
    def evaluations(self) -> int:
        """Rule evaluations done (for the benchmark)."""
        return (self.incidents.evaluations + self.streaks.evaluations
                + self.breakers.evaluations + self.absences.evaluations)

    def _enabled(self, kind: type[Any], only: Collection[str] | None = None) -> list[Any]:
        """Enabled rules of a kind (absence: those this engine owns), recomputed only when
        the rule book was reloaded; `only`: of these names (an input's routed rules)."""
        if self._kinds_version != self.book.version:
            self._kinds = {
                cls: self.book.rules.enabled(name) for cls, name in (
                    (ThresholdRule, "threshold"), (AnomalyRule, "anomaly"),
                    (AbsenceRule, "absence"), (StreakRule, "streak"),
                    (CircuitBreakerRule, "circuit_breaker"))}
            if self.owns_fleet_rule is not None:
                owns = self.owns_fleet_rule
                self._kinds[AbsenceRule] = [r for r in self._kinds[AbsenceRule] if owns(r.name)]
            self._kinds_version = self.book.version
        found = self._kinds[kind]
        return found if only is None or not found else [r for r in found if r.name in only]

    # -- entry points ---------------------------------------------------------------------
    def process(
        self,
        event_type: str,
        rec: dict[str, Any],
        arrival_ms: int | None = None,
        source: tuple[str, int, int] | list[Any] | None = None,
        behind: bool = False,
        rules: Collection[str] | None = None,
    ) -> list[AlertEvent]:
        """Evaluate one input (`rules`: only the rules of these names, None: all).
        `source` = (topic, partition, offset) of the Kafka message:
        an input at or below the last offset seen for its partition is a redelivery (the
        worker crashed before committing) and is ignored, so streaks and breakers never
        count a message twice. `behind`: the partition had more messages after this one when
        it was read (its backlog holds the event clock back, see `streams.alerts.clock`).
        `arrival_ms`: when it reached Kafka; an event time ahead of it is taken as that."""
        if arrival_ms is not None and event_type != "aggregate":
            rec = at_most(rec, arrival_ms)
        clock = None
        if source is not None:
            partition = f"{source[0]}|{source[1]}"
            last = self.clock.last_read(partition)
            if last is not None and source[2] <= last.offset:
                return []
            if self.owns_fleet_rule is not None and not self._enabled(AbsenceRule):
                # no absence rule here, nothing reads the event clock: keep only the offset
                self.state.put(partition, ReadMark(source[2], last.high, last.behind)
                               if last is not None else ReadMark(source[2]))
                clock = NEVER
            else:
                t = (rec["window_end"] if event_type == "aggregate"
                     else rec["envelope"]["event_time"])
                if arrival_ms is not None:
                    t = min(t, arrival_ms)
                clock = self.clock.read(partition, last, t, behind, source[2])
        if event_type == "aggregate":
            return self.on_aggregate(rec, arrival_ms, clock, rules)
        if event_type == "outcome":
            return self.on_outcome(rec, arrival_ms, clock, rules)
        if event_type == "heartbeat":
            return self.on_heartbeat(rec, arrival_ms, clock, rules)
        return []

    # `clock` (in the three below): the event clock after this input, from `process`; None
    # means the input's own event time (inputs from one ordered source, e.g. in tests).
    # `only`: the names of the rules to evaluate (None: all).
    def on_heartbeat(self, rec: dict[str, Any], arrival_ms: int | None = None,
                     clock: int | None = None,
                     only: Collection[str] | None = None) -> list[AlertEvent]:
        out: list[AlertEvent] = []
        env = rec["envelope"]
        self._heard(out, "heartbeat", env["agent_id"], env["event_time"], arrival_ms, clock,
                    only)
        return out

    def on_outcome(self, rec: dict[str, Any], arrival_ms: int | None = None,
                   clock: int | None = None,
                   only: Collection[str] | None = None) -> list[AlertEvent]:
        out: list[AlertEvent] = []
        env = rec["envelope"]
        now = env["event_time"]
        streaks, breakers = self._enabled(StreakRule, only), self._enabled(CircuitBreakerRule, only)
        if streaks or breakers:
            labels = outcome_labels(rec)
            for streak in streaks:
                self.streaks.evaluate(out, streak, labels, now)
            for breaker in breakers:
                self.breakers.evaluate(out, breaker, labels, now, arrival_ms)
        self._heard(out, "outcome", env["agent_id"], now, arrival_ms, clock, only)
        return out

    def on_aggregate(self, rec: dict[str, Any], arrival_ms: int | None = None,
                     clock: int | None = None,
                     only: Collection[str] | None = None) -> list[AlertEvent]:
        out: list[AlertEvent] = []
        scope = aggregate_scope(rec)
        for threshold in self._enabled(ThresholdRule, only):
            self.thresholds.evaluate(out, threshold, rec, scope)
        for anomaly in self._enabled(AnomalyRule, only):
            self.anomalies.evaluate(out, anomaly, rec, scope)
        if scope["agent"] != "*":
            self._heard(out, "aggregate", scope["agent"], rec["window_end"], arrival_ms, clock,
                        only)
        else:
            self._advance_clock(out, rec["window_end"] if clock is None else clock)
        return out

    def tick(self, wall_ms: int) -> list[AlertEvent]:
        """Wall-clock evaluation: absence when nothing arrives, breaker half-open, renotify."""
        out: list[AlertEvent] = []
        self.absences.sweep(out, self._enabled(AbsenceRule), wall_ms, wall=True)
        self.breakers.tick(out, wall_ms)
        for fp in list(self.state.index("firing")):
            inc = self.state.get(Incident, fp)
            if inc is None:
                self.state.index_remove("firing", fp)
                continue
            rule = self.incidents.rule(inc.rule)
            if rule is None:  # rule removed by a reload: close its incidents
                self.incidents.resolve(out, fp, inc, wall_ms, kind=inc.kind,
                                       note="rule removed")
                continue
            self.incidents.notify_if_due(out, rule, fp, inc, wall_ms)
        return out

    # -- the event clock ------------------------------------------------------------------
    def _heard(self, out: list[AlertEvent], source: str, agent: str, event_time: int,
               arrival_ms: int | None, clock: int | None,
               only: Collection[str] | None = None) -> None:
        """Note the agent's activity for the absence rules evaluated here (an engine
        that owns none keeps no activity, so its ticks find no one silent)."""
        absences = self._enabled(AbsenceRule, only)
        if absences or self.owns_fleet_rule is None:
            self.absences.heard(out, absences, source, agent, event_time, arrival_ms)
        self._advance_clock(out, event_time if clock is None else clock)

    def _advance_clock(self, out: list[AlertEvent], t: int) -> None:
        if t == NEVER:  # (an engine without absence rules keeps no clock)
            return
        if self.clock.advance(t):
            self.absences.sweep(out, self._enabled(AbsenceRule), t, wall=False)

    # -- views ----------------------------------------------------------------------------
    def firing(self) -> list[dict[str, Any]]:
        """Incidents currently firing (for the gauge and the CLI)."""
        return self.incidents.firing()
