"""What every evaluator holds: the store, the incidents it drives, and a count of its work."""

from __future__ import annotations

from typing import Any

from streams.alerts.incidents import Incidents
from streams.alerts.rules import CircuitBreakerRule, StreakRule
from streams.alerts.state import AlertStore


class Evaluator:
    def __init__(self, state: AlertStore, incidents: Incidents) -> None:
        self.state = state
        self.incidents = incidents
        #: evaluations done without an incident to drive (the incidents count the others)
        self.evaluations = 0


def outcome_labels(rec: dict[str, Any]) -> dict[str, str]:
    """An outcome's labels as the outcome rules see them; `_status` is its status."""
    status = rec.get("status")
    return {
        "agent": rec["envelope"]["agent_id"],
        "app": rec.get("app") or "",
        "action_kind": str(rec.get("action_kind") or "other"),
        "executor": rec.get("executor") or "",
        "_status": str(status),
    }


def outcome_failed(rule: StreakRule | CircuitBreakerRule, olabels: dict[str, str]) -> bool | None:
    """Does the outcome count as a failure for the rule (True), a success (False), or not at
    all (None: another scope, or a status such as skipped that neither fails nor succeeds)?"""
    if not rule.match.matches(olabels):
        return None
    status = olabels["_status"]
    if status in rule.statuses:
        return True
    return False if status == "success" else None
