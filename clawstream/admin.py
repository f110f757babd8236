"""Topic administration from the one topic table (`schemas.topics.TOPICS`).

`create_topics` is idempotent: topics that exist are left alone (and reported as existing),
missing ones are created with the table's partitions and broker-side configs, and the call
returns only once every topic has a leader for every partition, so a producer started right
after never sees UNKNOWN_TOPIC_OR_PART. The few configs the pipeline's correctness rests on
(`ENFORCED_CONFIGS`: the event topics' broker-side timestamps) are set on existing topics
too, so a broker set up by an older version is brought in line.

Replication adapts to the cluster: min(3, brokers) replicas, and min.insync.replicas 2 at 3
(`clawstream.broker_properties.replication`), counted among the brokers the cluster has now.
`partition_health` is what `clawstream status` shows of it: leaders, ISR, under-replicated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    OffsetSpec,
)

from clawstream.broker_properties import replication
from clawstream.kafka.config import KafkaSettings, client_config
from schemas.topics import TIMESTAMP_TYPE, TOPICS, TopicSpec

log = logging.getLogger(__name__)

#: Topic configs set on existing topics as well: what the semantics rest on, not tuning (a
#: retention an operator changed by hand is theirs to keep).
ENFORCED_CONFIGS = (TIMESTAMP_TYPE,)


@dataclass
class TopicsResult:
    """What `ensure_topics` did: physical names created now and those already there."""

    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)

    @property
    def all(self) -> list[str]:
        return self.created + self.existing


@dataclass(frozen=True)
class TopicInfo:
    """A topic as the broker sees it (None/0 fields when it does not exist)."""

    name: str
    exists: bool
    partitions: int = 0
    cleanup_policy: str | None = None
    retention_ms: int | None = None
    configs: dict[str, str] = field(default_factory=dict)


def _specs(specs: Iterable[TopicSpec | str] | None) -> list[TopicSpec]:
    if specs is None:
        return list(TOPICS.values())
    return [TOPICS[s] if isinstance(s, str) else s for s in specs]


def settings_for(target: str | KafkaSettings) -> KafkaSettings:
    """Settings for `target`: settings as they are; for a bare address, this process's
    settings pointed at it (so a secured local broker's admin credential is found)."""
    if not isinstance(target, str):
        return target
    from clawstream.settings import get_settings

    return get_settings().model_copy(update={"bootstrap_servers": target})


def admin_client(target: str | KafkaSettings) -> AdminClient:
    """An AdminClient (config from the Kafka runtime) for settings or a bootstrap address."""
    return AdminClient(client_config(settings_for(target), "admin", "admin"))


_admin = admin_client


def ensure_topics(
    bootstrap: str | KafkaSettings,
    namespace: str = "",
    specs: Iterable[TopicSpec | str] | None = None,
    *,
    timeout: float = 30.0,
) -> TopicsResult:
    """Create the missing topics of the table under `namespace`; existing ones are fine."""
    admin = _admin(bootstrap)
    wanted = {namespace + s.name: s for s in _specs(specs)}
    md = admin.list_topics(timeout=timeout)
    present = set(md.topics)
    result = TopicsResult(existing=[n for n in wanted if n in present])
    rf, min_isr = replication(len(md.brokers))
    durability = {"min.insync.replicas": str(min_isr)} if rf > 1 else {}
    new = [
        NewTopic(name, num_partitions=s.partitions, replication_factor=rf,
                 config={**s.config(), **durability})
        for name, s in wanted.items()
        if name not in present
    ]
    if new:
        futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
        for name, fut in futures.items():
            try:
                fut.result()
                result.created.append(name)
            except KafkaException as exc:
                err = exc.args[0]
                if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    result.existing.append(name)  # created concurrently by someone else
                else:
                    raise
        _wait_for_leaders(admin, [n.topic for n in new], timeout)
    _enforce_configs(admin, {n: wanted[n] for n in result.existing}, timeout)
    if result.created:
        log.debug("created %d topic(s): %s", len(result.created), ", ".join(result.created))
    return result


def _enforce_configs(admin: AdminClient, existing: dict[str, TopicSpec], timeout: float) -> None:
    """Set the `ENFORCED_CONFIGS` of the table on existing topics where they differ."""
    wanted = {name: {k: v for k, v in spec.config().items() if k in ENFORCED_CONFIGS}
              for name, spec in existing.items()}
    wanted = {name: cfg for name, cfg in wanted.items() if cfg}
    if not wanted:
        return
    futures = admin.describe_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, n) for n in wanted], request_timeout=timeout)
    changes = []
    for res, fut in futures.items():
        have = fut.result()
        diff = {k: v for k, v in wanted[res.name].items()
                if k not in have or have[k].value != v}
        if diff:
            log.info("topic %s: setting %s", res.name, diff)
            changes.append(ConfigResource(ConfigResource.Type.TOPIC, res.name, incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                for k, v in diff.items()]))
    if changes:
        for fut in admin.incremental_alter_configs(changes, request_timeout=timeout).values():
            fut.result()


def replication_factor(target: str | KafkaSettings, timeout: float = 10.0) -> int:
    """The replication factor topics get on the cluster at `target`: min(3, its brokers)."""
    return replication(len(_admin(target).list_topics(timeout=timeout).brokers))[0]


@dataclass(frozen=True)
class PartitionHealth:
    """One partition's replicas as the cluster's metadata has them (leader -1: offline)."""

    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]

    @property
    def under_replicated(self) -> bool:
        return len(self.isr) < len(self.replicas)


def partition_health(target: str | KafkaSettings, topics: Iterable[str],
                     timeout: float = 10.0) -> list[PartitionHealth]:
    """Leader, replicas and in-sync replicas of every partition of `topics` (those that
    exist), in topic and partition order."""
    md = _admin(target).list_topics(timeout=timeout)
    return [PartitionHealth(t, p.id, p.leader, tuple(p.replicas), tuple(p.isrs))
            for t in topics if t in md.topics
            for p in sorted(md.topics[t].partitions.values(), key=lambda p: p.id)]


def create_topics(
    bootstrap: str | KafkaSettings, namespace: str = "",
    specs: Iterable[TopicSpec | str] | None = None
) -> list[str]:
    """Idempotently create the table's topics; returns every physical name, in table order."""
    wanted = [namespace + s.name for s in _specs(specs)]
    ensure_topics(bootstrap, namespace, specs)
    return wanted


def _wait_for_leaders(admin: AdminClient, names: list[str], timeout: float) -> None:
    """Wait until each topic is in metadata with a leader on every partition."""
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending:
        md = admin.list_topics(timeout=max(1.0, deadline - time.monotonic()))
        for name in list(pending):
            t = md.topics.get(name)
            if t is not None and t.error is None and t.partitions and all(
                p.leader >= 0 for p in t.partitions.values()
            ):
                pending.discard(name)
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics without leaders after {timeout:.0f}s: {sorted(pending)}")
        time.sleep(0.1)


def describe_topics(
    bootstrap: str | KafkaSettings,
    namespace: str = "",
    specs: Iterable[TopicSpec | str] | None = None,
    *,
    timeout: float = 15.0,
) -> list[TopicInfo]:
    """The table's topics as the broker has them: partitions and effective configs."""
    admin = _admin(bootstrap)
    names = [namespace + s.name for s in _specs(specs)]
    md = admin.list_topics(timeout=timeout)
    present = [n for n in names if n in md.topics]
    configs: dict[str, dict[str, str]] = {}
    if present:
        futures = admin.describe_configs(
            [ConfigResource(ConfigResource.Type.TOPIC, n) for n in present],
            request_timeout=timeout,
        )
        for res, fut in futures.items():
            configs[res.name] = {k: v.value for k, v in fut.result().items() if v.value is not None}
    out = []
    for n in names:
        if n not in md.topics:
            out.append(TopicInfo(n, exists=False))
            continue
        cfg = configs.get(n, {})
        retention = cfg.get("retention.ms")
        out.append(
            TopicInfo(
                n,
                exists=True,
                partitions=len(md.topics[n].partitions),
                cleanup_policy=cfg.get("cleanup.policy"),
                retention_ms=int(retention) if retention is not None else None,
                configs=cfg,
            )
        )
    return out


def delete_topics(bootstrap: str | KafkaSettings, names: Iterable[str],
                  timeout: float = 30.0) -> None:
    """Delete topics (tests clean their namespaces up); missing ones are ignored."""
    names = list(names)
    if not names:
        return
    admin = _admin(bootstrap)  # keep a reference: futures fail if the handle is destroyed
    futures = admin.delete_topics(names, operation_timeout=timeout)
    for fut in futures.values():
        try:
            fut.result()
        except KafkaException as exc:
            err = exc.args[0]
            if not (isinstance(err, KafkaError)
                    and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
                raise


def _offsets(admin: AdminClient, topics: Iterable[str], spec: OffsetSpec,
             timeout: float) -> dict[tuple[str, int], int]:
    """(topic, partition) -> offset of every partition of `topics` (missing topics: none)."""
    from confluent_kafka import TopicPartition

    md = admin.list_topics(timeout=timeout)
    tps = [TopicPartition(t, p) for t in topics if t in md.topics
           for p in md.topics[t].partitions]
    if not tps:
        return {}
    futs = admin.list_offsets({tp: spec for tp in tps}, request_timeout=timeout)
    return {(tp.topic, tp.partition): f.result(timeout).offset for tp, f in futs.items()}


def message_count(bootstrap: str | KafkaSettings, topic: str, timeout: float = 10.0) -> int:
    """Messages a topic holds now (end minus start offsets over its partitions)."""
    admin = _admin(bootstrap)
    starts = _offsets(admin, [topic], OffsetSpec.earliest(), timeout)
    ends = _offsets(admin, [topic], OffsetSpec.latest(), timeout)
    return sum(end - starts[k] for k, end in ends.items())


def group_lag(bootstrap: str | KafkaSettings, group: str, topics: Iterable[str],
              timeout: float = 10.0) -> int:
    """Messages of `topics` (physical names, every partition) that `group` has not committed:
    what a lag dashboard shows; a partition the group never committed counts from its start."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    admin = _admin(bootstrap)
    topics = list(topics)
    starts = _offsets(admin, topics, OffsetSpec.earliest(), timeout)
    ends = _offsets(admin, topics, OffsetSpec.latest(), timeout)
    if not ends:
        return 0
    tps = [TopicPartition(t, p) for t, p in ends]
    res = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, tps)], request_timeout=timeout)[group].result(timeout)
    done = {(tp.topic, tp.partition): tp.offset for tp in res.topic_partitions or []
            if tp.offset >= 0}
    return sum(end - max(done.get(k, starts[k]), starts[k]) for k, end in ends.items())


def delete_namespace(bootstrap: str | KafkaSettings, namespace: str,
                     timeout: float = 30.0) -> list[str]:
    """Delete every topic whose name starts with `namespace` (the table's and the workers'
    internal ones); returns their names. For throw-away environments (tests, benchmarks):
    each partition holds open files on the broker, so namespaces left behind add up."""
    if not namespace:
        raise ValueError("refusing to delete the topics of the empty namespace")
    names = [t for t in _admin(bootstrap).list_topics(timeout=timeout).topics
             if t.startswith(namespace)]
    delete_topics(bootstrap, names, timeout)
    return names
