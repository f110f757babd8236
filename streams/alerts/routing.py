"""Which partitions of the alert input evaluate an input, and for which rules (pure).

The alert rules spread over the partitions of the alerting input topic, and so over the
workers of the group, each partition with its own engine and state. A rule over a label set
goes where its group hashes: (rule, the aggregate's scope and window) for threshold and
anomaly, (rule, its `by` labels) for streak and circuit breaker, so one group's counters,
breaker and incidents live in one partition and one worker. An absence rule ("agent silent
while others talk") needs every agent's activity and the event clock of the whole fleet, so
it goes where its name hashes, and every input is sent there too. One input is thus sent to
each partition that has a rule for it, once, with the names of those rules; wall-clock
ticks go to every partition. The hash is sha1 (stable across processes and versions), not
Python's `hash`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from streams.alerts.evaluators.base import outcome_labels
from streams.alerts.evaluators.windows import aggregate_scope, selected, window_label
from streams.alerts.incidents import fingerprint
from streams.alerts.rules import AbsenceRule, RuleSet

#: Rule kinds evaluated per label group (the others, absence, need the whole fleet).
GROUP_KINDS = {"aggregate": ("threshold", "anomaly"),
               "outcome": ("streak", "circuit_breaker")}


def shard_of(key: str, partitions: int) -> int:
    """The partition of a routing key (stable: sha1, not the per-process `hash`)."""
    return int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big") % partitions


def fleet_rule_partition(rule: str, partitions: int) -> int:
    """Where a rule that needs the whole fleet (absence) is evaluated."""
    return shard_of(rule, partitions)


def group_partition(rule: str, labels: dict[str, str], partitions: int) -> int:
    """Where a rule is evaluated for one label group (its state's and incident's labels)."""
    return shard_of(fingerprint(rule, labels), partitions)


def is_fleet_rule(rule: Any) -> bool:
    return isinstance(rule, AbsenceRule)


def group_labels(event_type: str, rule: Any, rec: dict[str, Any],
                 olabels: dict[str, str] | None = None) -> dict[str, str] | None:
    """The label group of `rule` an input belongs to; None when the rule skips the input."""
    if event_type == "aggregate":
        scope = aggregate_scope(rec)
        if not selected(rule, rec, scope):
            return None
        return {**scope, "window": window_label(int(rec.get("window_size_ms", 0)))}
    labels = olabels if olabels is not None else outcome_labels(rec)
    if not rule.match.matches(labels):
        return None
    return {k: labels[k] for k in rule.by}


def routes(event_type: str, rec: dict[str, Any], rules: RuleSet,
           partitions: int) -> dict[int, list[str]]:
    """partition -> names of the rules it evaluates this input for (rules in file order).
    Every input goes to each absence rule's partition: its activity and event time are what
    the fleet-wide rules and the event clock read."""
    out: dict[int, list[str]] = {}
    kinds = GROUP_KINDS.get(event_type, ())
    olabels = outcome_labels(rec) if event_type == "outcome" else None
    for rule in rules.enabled():
        if is_fleet_rule(rule):
            p = fleet_rule_partition(rule.name, partitions)
        elif rule.kind in kinds:
            labels = group_labels(event_type, rule, rec, olabels)
            if labels is None:
                continue
            p = group_partition(rule.name, labels, partitions)
        else:
            continue
        out.setdefault(p, []).append(rule.name)
    return out


def owned_fleet_rules(rules: RuleSet, partition: int, partitions: int) -> list[str]:
    """The fleet-wide rules a partition evaluates (for the share a worker shows)."""
    return [r.name for r in rules.enabled() if is_fleet_rule(r)
            and fleet_rule_partition(r.name, partitions) == partition]
