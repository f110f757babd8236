"""The alert engines of one worker: one per alert partition it is assigned, and its share.

Each partition of the alerting input has its own `AlertEngine` (its own event clock, read
marks, counters and incidents: `streams.alerts.routing` says which rules it evaluates),
whose state is that partition's keys (``<partition>#...``) of the one changelog-backed table;
faust writes them to the changelog partition of the input being processed, the same number,
so the partition's state moves with it when the group rebalances. On revocation a worker
drops the engines and the local keys of the partitions it lost (the new owner recovers them
from the changelog; a partition that comes back is recovered afresh, not mixed with stale
keys). Prometheus shows each worker's share: `clawstream_alerts_partitions_assigned` and,
per partition, `clawstream_alerts_partition_assigned{partition}` (1 here, 0 elsewhere) and
the fleet-wide rules it evaluates, `clawstream_alerts_fleet_rules{partition}`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, MutableMapping
from typing import Any

from prometheus_client import Counter, Gauge

from streams.alerts import AlertEngine, RuleBook
from streams.alerts.routing import fleet_rule_partition, owned_fleet_rules
from streams.alerts.state import Prefixed

log = logging.getLogger("clawstream.alerting")

PARTITIONS_ASSIGNED = Gauge(
    "clawstream_alerts_partitions_assigned",
    "Alert input partitions this worker evaluates (its share of the alert rules).")
PARTITION_ASSIGNED = Gauge(
    "clawstream_alerts_partition_assigned",
    "1 if this worker evaluates the alert partition, else 0.", ["partition"])
FLEET_RULES = Gauge(
    "clawstream_alerts_fleet_rules",
    "Fleet-wide (absence) rules evaluated in an alert partition of this worker.", ["partition"])
PARTITION_INPUTS = Counter(
    "clawstream_alerts_partition_inputs_total",
    "Inputs evaluated per alert partition by this worker.", ["partition"])


class ShardEngines:
    """The engines of the alert partitions this worker holds, over one shared table."""

    def __init__(self, book: RuleBook, table: MutableMapping[str, Any], topic: str,
                 partitions: int) -> None:
        self.book = book
        self.table = table
        self.topic = topic
        self.partitions = partitions
        self.engines: dict[int, AlertEngine] = {}
        self.assigned: frozenset[int] = frozenset()

    def engine(self, partition: int) -> AlertEngine:
        found = self.engines.get(partition)
        if found is None:
            n = self.partitions
            found = self.engines[partition] = AlertEngine(
                self.book, Prefixed(self.table, str(partition)),
                owns_fleet_rule=lambda name: fleet_rule_partition(name, n) == partition)
        return found

    def all(self) -> list[AlertEngine]:
        """The engines of the partitions held (for the firing gauge)."""
        return [self.engines[p] for p in sorted(self.engines)]

    def revoked(self, partitions: Iterable[int], local: MutableMapping[str, Any] | None) -> None:
        """Forget the engines and local keys of partitions this worker lost. `local`: the
        table's store (written without changelog), None to keep the keys."""
        lost = set(partitions)
        for p in lost:
            self.engines.pop(p, None)
        if lost:
            log.info("alerting hands partitions %s over (their state stays in the changelog)",
                     sorted(lost))
        if local is not None and lost:
            prefixes = tuple(f"{p}#" for p in lost)
            for key in [k for k in list(local) if isinstance(k, str) and k.startswith(prefixes)]:
                local.pop(key, None)

    def set_assigned(self, partitions: Iterable[int]) -> bool:
        """The partitions this worker holds now; updates the share gauges. True if changed."""
        now = frozenset(partitions)
        changed = now != self.assigned
        self.assigned = now
        self.show()
        if changed:
            log.info("alerting evaluates partitions %s of %d", sorted(now), self.partitions)
        return changed

    def show(self) -> None:
        """Set the share gauges (again after a rules reload: the fleet rules may change)."""
        PARTITIONS_ASSIGNED.set(len(self.assigned))
        for p in range(self.partitions):
            mine = p in self.assigned
            PARTITION_ASSIGNED.labels(str(p)).set(1 if mine else 0)
            FLEET_RULES.labels(str(p)).set(
                len(owned_fleet_rules(self.book.rules, p, self.partitions)) if mine else 0)

    def counted(self, partition: int) -> None:
        PARTITION_INPUTS.labels(str(partition)).inc()
