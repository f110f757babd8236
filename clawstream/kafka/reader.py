"""One-off reads of known offsets: partitions assigned by hand, positions given, no commits.

For what is not a consumer group's work: the sink's resume probe (is the message at offset
o the one ClickHouse stored?) and a state restore from a changelog (every record of a
partition up to its end). The client's configuration comes from the runtime like every
other client's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from clawstream.kafka.config import KafkaSettings, Role, client_config

log = logging.getLogger(__name__)

#: Messages per fetch at most, and how long one fetch waits.
BATCH = 10_000
POLL_S = 0.2


class PartitionReader:
    """A consumer that reads offset ranges of partitions it assigns itself. `group` only
    names the client to the broker (nothing is committed). A position that does not exist
    (the topic was deleted and created again, or retention removed it) ends that
    partition's read rather than silently reading elsewhere, unless `auto.offset.reset` is
    overridden."""

    def __init__(self, settings: KafkaSettings, role: Role, group: str,
                 overrides: Mapping[str, Any] | None = None) -> None:
        self.consumer = Consumer(client_config(settings, role, "consumer", {
            "group.id": group, "enable.partition.eof": True, "auto.offset.reset": "error",
            **(overrides or {})}))

    def __enter__(self) -> PartitionReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.consumer.close()

    def watermarks(self, topic: str, partition: int, timeout: float = 30.0) -> tuple[int, int]:
        """(low, high): the first offset still stored and the next offset to be written."""
        low, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                        timeout=timeout)
        return int(low), int(high)

    def read(self, ranges: Mapping[tuple[str, int], tuple[int, int]],
             timeout: float | None = None) -> Iterator[Message]:
        """The messages with start <= offset < end of each (topic, partition), in offset
        order per partition. A partition is done at `end`, at its current end, or when
        `start` cannot be read; the whole read stops after `timeout` seconds (None: never)."""
        pending = {key: (start, end) for key, (start, end) in ranges.items() if end > start}
        if not pending:
            return
        consumer = self.consumer
        consumer.assign([TopicPartition(t, p, start) for (t, p), (start, _e) in pending.items()])
        deadline = None if timeout is None else time.monotonic() + timeout

        def done(key: tuple[str, int]) -> None:
            pending.pop(key, None)
            consumer.pause([TopicPartition(*key)])

        while pending and (deadline is None or time.monotonic() < deadline):
            for m in consumer.consume(BATCH, POLL_S):
                key = (m.topic() or "", m.partition() or 0)
                err = m.error()
                if err is not None:
                    if m.topic() is not None and key in pending:
                        if err.code() != KafkaError._PARTITION_EOF:
                            log.info("%s[%d] cannot be read from %d: %s", key[0], key[1],
                                     pending[key][0], err)
                        done(key)
                    else:
                        log.warning("one-off read: %s", err)
                    continue
                if key not in pending:
                    continue
                start, end = pending[key]
                offset = m.offset() or 0
                if offset >= start and offset < end:
                    yield m
                if offset >= end - 1:
                    done(key)
