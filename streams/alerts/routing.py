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


#: Label groups whose partitions a Router remembers at most (then forgotten all at once).
GROUPS_KEPT = 100_000


class Router:
    """Routes inputs over `partitions`. Per rule set in force it keeps the fleet rules'
    partitions and the group rules by input type, and remembers each label group's
    partition (two sha1 per group rule and input otherwise)."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._rules_id = -1
        self._fleet: list[tuple[int, str]] = []
        self._fleet_names: frozenset[str] = frozenset()
        self._by_type: dict[str, list[Any]] = {}
        self._groups: dict[tuple[str, tuple[Any, ...]], int] = {}

    def _use(self, rules: RuleSet) -> None:
        if id(rules) == self._rules_id:
            return
        enabled = rules.enabled()
        self._fleet = [(fleet_rule_partition(r.name, self.partitions), r.name)
                       for r in enabled if is_fleet_rule(r)]
        self._fleet_names = frozenset(name for _, name in self._fleet)
        self._by_type = {t: [r for r in enabled if r.kind in kinds]
                         for t, kinds in GROUP_KINDS.items()}
        self._groups = {}  # (a reload may change a rule's `by`)
        self._rules_id = id(rules)

    def _group(self, rule: Any, key: tuple[Any, ...], labels: dict[str, str]) -> int:
        found = self._groups.get((rule.name, key))
        if found is None:
            if len(self._groups) >= GROUPS_KEPT:
                self._groups = {}
            found = self._groups[(rule.name, key)] = group_partition(
                rule.name, labels, self.partitions)
        return found

    def fleet_only(self, names: list[str], rules: RuleSet) -> bool:
        """Are these routed rules all fleet-wide ones (the copy can be a `fleet_record`)?"""
        self._use(rules)
        return all(n in self._fleet_names for n in names)

    def routes(self, event_type: str, rec: dict[str, Any],
               rules: RuleSet) -> dict[int, list[str]]:
        """partition -> names of the rules it evaluates this input for. Every input goes
        to each absence rule's partition: its activity and event time are what the
        fleet-wide rules and the event clock read."""
        self._use(rules)
        out: dict[int, list[str]] = {}
        for p, name in self._fleet:
            out.setdefault(p, []).append(name)
        group_rules = self._by_type.get(event_type)
        if not group_rules:
            return out
        if event_type == "outcome":
            olabels = outcome_labels(rec)
            for rule in group_rules:
                if rule.match.matches(olabels):
                    p = self._group(rule, tuple(olabels[k] for k in rule.by),
                                    {k: olabels[k] for k in rule.by})
                    out.setdefault(p, []).append(rule.name)
            return out
        scope = aggregate_scope(rec)
        for rule in group_rules:
            if selected(rule, rec, scope):
                size = int(rec.get("window_size_ms", 0))
                p = self._group(rule, (scope["agent"], scope["app"], scope["action_kind"], size),
                                {**scope, "window": window_label(size)})
                out.setdefault(p, []).append(rule.name)
        return out


def routes(event_type: str, rec: dict[str, Any], rules: RuleSet,
           partitions: int) -> dict[int, list[str]]:
    """`Router.routes` without remembering (tests, one-off questions)."""
    return Router(partitions).routes(event_type, rec, rules)


#: What the fleet-wide rules and the event clock read of an input (`fleet_record`).
FLEET_FIELDS = ("window_end", "scope_agent", "scope_app", "scope_action_kind")


def fleet_record(rec: dict[str, Any]) -> dict[str, Any]:
    """An input cut to what a partition that evaluates only fleet-wide rules reads (the
    agent, its event time, an aggregate's scope and end): every input goes there, so its
    copies are kept small."""
    env = rec["envelope"]
    out: dict[str, Any] = {k: rec[k] for k in FLEET_FIELDS if k in rec}
    out["envelope"] = {"agent_id": env["agent_id"], "event_time": env["event_time"]}
    return out


def owned_fleet_rules(rules: RuleSet, partition: int, partitions: int) -> list[str]:
    """The fleet-wide rules a partition evaluates (for the share a worker shows)."""
    return [r.name for r in rules.enabled() if is_fleet_rule(r)
            and fleet_rule_partition(r.name, partitions) == partition]
