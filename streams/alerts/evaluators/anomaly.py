"""Anomaly rules: a window metric's z-score against its own EWMA mean and variance (pure).

Nothing is judged before `warmup` windows; a window is anomalous when its z-score passes
`z` in the rule's direction, and fires after `for` anomalous windows in a row.
"""

from __future__ import annotations

import math
from typing import Any

from streams.alerts.evaluators.base import Evaluator
from streams.alerts.evaluators.windows import window_input
from streams.alerts.incidents import AlertEvent
from streams.alerts.rules import AnomalyRule
from streams.alerts.state import Ewma


class AnomalyEvaluator(Evaluator):

    def evaluate(self, out: list[AlertEvent], rule: AnomalyRule, rec: dict[str, Any],
                 scope: dict[str, str]) -> None:
        seen = window_input(self.incidents, rule, rec, scope)
        if seen is None:
            return
        st = self.state.get(Ewma, seen.fingerprint) or Ewma()
        if seen.end <= st.end:
            return
        x = seen.value
        z = 0.0
        if st.n >= rule.warmup:
            std = max(math.sqrt(st.var), rule.min_std)
            z = (x - st.mean) / std
        anomalous = st.n >= rule.warmup and (
            (rule.direction in ("up", "both") and z >= rule.z)
            or (rule.direction in ("down", "both") and z <= -rule.z)
        )
        if st.n == 0:
            mean, var = x, 0.0
        else:
            diff = x - st.mean
            incr = rule.alpha * diff
            mean = st.mean + incr
            var = (1 - rule.alpha) * (st.var + diff * incr)
        b = st.b + 1 if anomalous else 0
        self.state.put(seen.fingerprint, Ewma(st.n + 1, mean, var, seen.end, b))
        if st.n < rule.warmup:
            return
        self.incidents.observe(out, rule, seen.labels, anomalous, seen.end, x, b >= rule.for_,
                               {"zscore": f"{z:.2f}", "ewma_mean": f"{st.mean:.4g}"})
