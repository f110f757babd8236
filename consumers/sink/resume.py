"""Resuming where ClickHouse already is: the sink's exactly-once effect after a crash.

Each row stores its Kafka topic/partition/offset. When partitions are assigned, the sink
starts past the highest offset already in ClickHouse if that lies within one batch of the
committed offset (the crash hit between insert and commit), so it does not even re-insert
what ReplacingMergeTree would deduplicate anyway. A probe reads the message at that offset
and compares its event id with the stored row's, so that the rows of a topic deleted and
created again (its offsets restart) never make the sink skip new messages.
"""

from __future__ import annotations

import logging

from confluent_kafka import OFFSET_INVALID, Consumer, TopicPartition

from clawstream.kafka.reader import PartitionReader
from clawstream.settings import Settings
from consumers.sink.routing import Routing
from consumers.sink.writer import SharedClient
from schemas.serde import DecodeError, Serde

log = logging.getLogger(__name__)
#: how long the probe waits for the messages it reads
PROBE_TIMEOUT_S = 5.0


class Resume:
    """The on-assign positions of the sink's partitions; what it skipped goes to `skipped`
    ("topic[partition]" -> messages)."""

    def __init__(self, settings: Settings, client: SharedClient, routing: Routing,
                 serde: Serde, skipped: dict[str, int]) -> None:
        self.settings = settings
        self.client = client
        self.routing = routing
        self.serde = serde
        self.skipped = skipped

    def positions(self, consumer: Consumer,
                  partitions: list[TopicPartition]) -> list[TopicPartition]:
        """Where to start: past offsets already inserted by a run that died before
        committing them, else the committed offsets."""
        stored = self.clickhouse_offsets({p.topic for p in partitions})
        if not stored:
            return partitions
        committed = consumer.committed(partitions, timeout=15)
        slack = max(self.settings.sink_batch_rows, 1)
        candidates: dict[tuple[str, int], tuple[int, int]] = {}  # -> (base, offset in CH)
        for tp in committed:
            in_ch = stored.get((tp.topic, tp.partition))
            if in_ch is None:
                continue
            base = tp.offset
            if base == OFFSET_INVALID or base < 0:
                base, _high = consumer.get_watermark_offsets(
                    TopicPartition(tp.topic, tp.partition), timeout=10)
            if base <= in_ch + 1 <= base + slack:
                candidates[(tp.topic, tp.partition)] = (base, in_ch)
        confirmed = self.same_messages({k: v[1] for k, v in candidates.items()})
        out = []
        for tp in committed:
            pos = tp.offset
            key = (tp.topic, tp.partition)
            if key in confirmed:
                base, in_ch = candidates[key]
                skipped = in_ch + 1 - base
                if skipped:
                    log.info("resume %s[%d] at %d: %d messages already in ClickHouse",
                             tp.topic, tp.partition, in_ch + 1, skipped)
                    self.skipped[f"{tp.topic}[{tp.partition}]"] = skipped
                pos = in_ch + 1
            out.append(TopicPartition(tp.topic, tp.partition, pos))
        return out

    def clickhouse_offsets(self, topics: set[str]) -> dict[tuple[str, int], int]:
        """Highest Kafka offset per (topic, partition) present in the primary tables."""
        out: dict[tuple[str, int], int] = {}
        for topic in topics:
            spec = self.routing.primary_of(topic)
            if spec is None:
                continue
            rows = self.client.rows(
                f"SELECT kafka_partition, max(kafka_offset) FROM {spec.table} "
                "WHERE kafka_topic = {t:String} GROUP BY kafka_partition", {"t": topic})
            for partition, offset in rows:
                out[(topic, int(partition))] = int(offset)
        return out

    def same_messages(self, offsets: dict[tuple[str, int], int],
                      timeout: float = PROBE_TIMEOUT_S) -> set[tuple[str, int]]:
        """The partitions whose Kafka message at the given offset is the one ClickHouse
        stored (a topic deleted and created again restarts its offsets)."""
        stored: dict[tuple[str, int], str] = {}
        for (topic, partition), offset in offsets.items():
            spec = self.routing.primary_of(topic)
            if spec is None:
                continue
            rows = self.client.rows(
                f"SELECT toString(event_id) FROM {spec.table} WHERE kafka_topic = "
                "{t:String} AND kafka_partition = {p:UInt16} AND kafka_offset = {o:UInt64} "
                "LIMIT 1", {"t": topic, "p": partition, "o": offset})
            if rows:
                stored[(topic, partition)] = str(rows[0][0])
        if not stored:
            return set()
        confirmed: set[tuple[str, int]] = set()
        with PartitionReader(self.settings, "sink",
                             f"{self.settings.sink_group}-resume-probe") as probe:
            for msg in probe.read({key: (offsets[key], offsets[key] + 1) for key in stored},
                                  timeout):
                key = (msg.topic() or "", msg.partition() or 0)
                try:
                    event_id = self.serde.decode(msg.value()).record["envelope"]["event_id"]
                except DecodeError:
                    continue
                if str(event_id) == stored[key]:
                    confirmed.add(key)
        return confirmed
