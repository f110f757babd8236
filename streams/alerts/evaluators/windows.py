"""What the window rules (threshold, anomaly) read of a WindowAggregate (pure)."""

from __future__ import annotations

from typing import Any, NamedTuple

from streams.alerts.incidents import Incidents
from streams.alerts.rules import FAILED_STATUSES, AnomalyRule, ThresholdRule

WindowRule = ThresholdRule | AnomalyRule


def window_label(size_ms: int) -> str:
    if size_ms % 3_600_000 == 0:
        return f"{size_ms // 3_600_000}h"
    if size_ms % 60_000 == 0:
        return f"{size_ms // 60_000}m"
    if size_ms % 1000 == 0:
        return f"{size_ms // 1000}s"
    return f"{size_ms}ms"


def aggregate_metric(rec: dict[str, Any], metric: str) -> float | None:
    """A number read from a WindowAggregate record; None when the window has no data for it."""
    outcomes: dict[str, int] = rec.get("outcomes") or {}
    total = sum(outcomes.values())
    if metric == "outcomes_total":
        return float(total)
    if metric == "failure_rate":
        if total == 0:
            return None
        return sum(outcomes.get(s, 0) for s in FAILED_STATUSES) / total
    if metric == "success_rate":
        sr: float | None = rec.get("success_rate")
        if sr is None and total:
            sr = outcomes.get("success", 0) / total
        return sr
    if metric == "late_events":
        counts = rec.get("counts") or {}
        return float(rec.get("late_events", counts.get("late", 0)) or 0)
    if metric.startswith("counts."):
        return float((rec.get("counts") or {}).get(metric[7:], 0))
    if metric.startswith("outcomes."):
        return float(outcomes.get(metric[9:], 0))
    v = rec.get(metric)
    return None if v is None else float(v)


def aggregate_scope(rec: dict[str, Any]) -> dict[str, str]:
    """The labels of the scope an aggregate is about ('*': all)."""
    return {
        "agent": rec.get("scope_agent", "*"),
        "app": rec.get("scope_app", "*"),
        "action_kind": rec.get("scope_action_kind", "*"),
    }


class WindowInput(NamedTuple):
    """What a window rule needs of an aggregate it applies to."""

    value: float
    labels: dict[str, str]
    fingerprint: str  # of (rule, full labels): the key of the rule's state for this scope
    end: int  # the window's end


def selected(rule: WindowRule, rec: dict[str, Any], scope: dict[str, str]) -> bool:
    if rule.window_kind and rec.get("window_kind") != rule.window_kind:
        return False
    if rule.window_ms is not None and rec.get("window_size_ms") != rule.window_ms:
        return False
    if not rule.match.matches(scope):
        return False
    if rule.min_outcomes:
        outcomes: dict[str, int] = rec.get("outcomes") or {}
        return sum(outcomes.values()) >= rule.min_outcomes
    return True


def window_input(incidents: Incidents, rule: WindowRule, rec: dict[str, Any],
                 scope: dict[str, str]) -> WindowInput | None:
    """The aggregate as the rule sees it, or None when the rule does not apply to it."""
    if not selected(rule, rec, scope):
        return None
    x = aggregate_metric(rec, rule.metric)
    if x is None:
        return None
    labels = {**scope, "window": window_label(int(rec.get("window_size_ms", 0)))}
    return WindowInput(x, labels, incidents.fingerprint(rule, labels)[0],
                       int(rec["window_end"]))
