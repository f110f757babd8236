"""Circuit-breaker rules per label set (pure): CLOSED -> OPEN -> HALF_OPEN -> CLOSED.

CLOSED counts the last `window_calls` outcomes and opens on `consecutive_failures` in a row
or on a failure rate of at least `failure_rate` over at least `minimum_calls`: the incident
fires. OPEN ignores outcomes (calls would have been rejected) for `wait` of event time, or
of wall time on a tick when nothing arrives, then goes HALF_OPEN; there a failure opens it
again and `half_open_successes` successes close it (the incident resolves). The moves
between OPEN and HALF_OPEN are transitions inside the one incident.
"""

from __future__ import annotations

from streams.alerts.evaluators.base import Evaluator, outcome_failed
from streams.alerts.incidents import AlertEvent
from streams.alerts.rules import CircuitBreakerRule
from streams.alerts.state import Breaker

OPEN_INDEX = "open"


class BreakerEvaluator(Evaluator):

    def evaluate(self, out: list[AlertEvent], rule: CircuitBreakerRule,
                 olabels: dict[str, str], now: int, arrival_ms: int | None) -> None:
        """One outcome (`olabels`: its labels and `_status`) at event time `now`."""
        failed = outcome_failed(rule, olabels)
        if failed is None:
            return
        self.evaluations += 1
        labels: dict[str, str] = {k: olabels[k] for k in rule.by}
        fp, _ = self.incidents.fingerprint(rule, labels)
        cb = self.state.get(Breaker, fp) or Breaker(rule.name)
        wall = arrival_ms if arrival_ms is not None else now
        if cb.state == "OPEN":
            if now - cb.opened_at < rule.wait:
                return  # calls while OPEN would have been rejected: not counted
            cb = self.half_open(out, rule, fp, cb, now)
        if cb.state == "HALF_OPEN":
            if failed:
                cb.state, cb.opened_at, cb.opened_wall, cb.ho_ok = "OPEN", now, wall, 0
                self.incidents.transition(out, rule, fp, "HALF_OPEN->OPEN", now, 1.0)
                self.state.index_add(OPEN_INDEX, fp)
            elif cb.ho_ok + 1 >= rule.half_open_successes:
                cb.state, cb.calls, cb.consec, cb.ho_ok = "CLOSED", [], 0, 0
                self.incidents.observe(out, rule, labels, False, now, 0.0, False)
            else:
                cb.ho_ok += 1
            self.state.put(fp, cb)
            return
        cb.calls = calls = [*cb.calls, 1 if failed else 0][-rule.window_calls:]
        cb.consec = consec = cb.consec + 1 if failed else 0
        rate = sum(calls) / len(calls)
        opens = consec >= rule.consecutive_failures or (
            len(calls) >= rule.minimum_calls and rate >= rule.failure_rate
        )
        if opens:
            cb.state, cb.opened_at, cb.opened_wall, cb.ho_ok = "OPEN", now, wall, 0
            self.state.put(fp, cb)
            self.state.index_add(OPEN_INDEX, fp)
            self.incidents.observe(out, rule, labels, True, now, rate, True, {
                "breaker_state": "OPEN", "transition": "CLOSED->OPEN",
                "failure_rate": f"{rate:.3f}", "consecutive_failures": str(consec),
                "calls": str(len(calls)),
            })
        else:
            self.state.put(fp, cb)

    def half_open(self, out: list[AlertEvent], rule: CircuitBreakerRule, fp: str, cb: Breaker,
                  now: int) -> Breaker:
        """OPEN for `wait`: try again (HALF_OPEN)."""
        cb.state, cb.ho_ok = "HALF_OPEN", 0
        self.state.put(fp, cb)
        self.state.index_remove(OPEN_INDEX, fp)
        self.incidents.transition(out, rule, fp, "OPEN->HALF_OPEN", now, None)
        return cb

    def tick(self, out: list[AlertEvent], wall_ms: int) -> None:
        """Wall-clock pass: breakers OPEN for `wait` of wall time go HALF_OPEN though no
        outcome came."""
        for fp in list(self.state.index(OPEN_INDEX)):
            cb = self.state.get(Breaker, fp)
            rule = self.incidents.rule(cb.rule) if cb is not None else None
            if cb is None or not isinstance(rule, CircuitBreakerRule):
                self.state.index_remove(OPEN_INDEX, fp)
                continue
            if cb.state == "OPEN" and wall_ms - cb.opened_wall >= rule.wait:
                self.half_open(out, rule, fp, cb, cb.opened_at + rule.wait)
