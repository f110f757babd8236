"""Threshold rules: a window metric compared with a value, `for` windows in a row (pure)."""

from __future__ import annotations

from typing import Any

from streams.alerts.evaluators.base import Evaluator
from streams.alerts.evaluators.windows import window_input
from streams.alerts.incidents import AlertEvent
from streams.alerts.rules import ThresholdRule, compare
from streams.alerts.state import WindowRun


class ThresholdEvaluator(Evaluator):

    def evaluate(self, out: list[AlertEvent], rule: ThresholdRule, rec: dict[str, Any],
                 scope: dict[str, str]) -> None:
        """Judge one aggregate; a window at or before the last judged is skipped (a replay
        or an out-of-order window is judged once)."""
        seen = window_input(self.incidents, rule, rec, scope)
        if seen is None:
            return
        run = self.state.get(WindowRun, seen.fingerprint) or WindowRun()
        if seen.end <= run.end:
            return
        breaching = compare(rule.op, seen.value, rule.value)
        n = run.n + 1 if breaching else 0
        self.state.put(seen.fingerprint, WindowRun(n, seen.end))
        self.incidents.observe(out, rule, seen.labels, breaching, seen.end, seen.value,
                               n >= rule.for_, {"windows_breaching": str(n),
                                                "threshold": f"{rule.op} {rule.value:g}"})
