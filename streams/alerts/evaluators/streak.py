"""Streak rules: `count` failed outcomes in a row per label set fire; a success resolves
(pure). Outcomes of other statuses (skipped, ...) neither extend nor break a streak."""

from __future__ import annotations

from streams.alerts.evaluators.base import Evaluator, outcome_failed
from streams.alerts.incidents import AlertEvent
from streams.alerts.rules import StreakRule
from streams.alerts.state import Incident, Streak


class StreakEvaluator(Evaluator):

    def evaluate(self, out: list[AlertEvent], rule: StreakRule, olabels: dict[str, str],
                 now: int) -> None:
        """Judge one outcome (`olabels`: its labels and `_status`)."""
        failed = outcome_failed(rule, olabels)
        if failed is None:
            return
        labels: dict[str, str] = {k: olabels[k] for k in rule.by}
        fp, _ = self.incidents.fingerprint(rule, labels)
        streak = self.state.get(Streak, fp)
        n = streak.n if streak is not None else 0
        if failed:
            n += 1
            self.state.put(fp, Streak(n))
            if n >= rule.count:
                self.incidents.observe(out, rule, labels, True, now, float(n), True,
                                       {"consecutive_failures": str(n)})
            else:
                self.evaluations += 1
        else:
            if n:
                self.state.delete(Streak, fp)
            if n >= rule.count or self.state.has(Incident, fp):
                self.incidents.observe(out, rule, labels, False, now, 0.0, False)
            else:
                self.evaluations += 1
