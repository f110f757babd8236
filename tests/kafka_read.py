"""Reading topics back in tests: every partition assigned from its beginning, so there is no
consumer group to join and no rebalance to wait for (a subscribed reader that lost a race
with its group could wait out its whole timeout and report events as missing), and reading
goes at least up to the end offsets the partitions had when it started."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from clawstream.admin import settings_for
from clawstream.kafka.config import client_config


@retry(retry=retry_if_exception_type(KafkaException), stop=stop_after_delay(30),
       wait=wait_fixed(0.5), reraise=True)
def end_offset(c: Consumer, tp: TopicPartition) -> int:
    """High watermark of a partition (retried: a fresh topic's leader may not be known yet)."""
    return c.get_watermark_offsets(tp, timeout=10)[1]


def _reader(bootstrap: str) -> Consumer:
    # a group id is required by the client even though nothing joins or commits
    return Consumer(client_config(settings_for(bootstrap), "tool", "consumer", {
                                  "group.id": f"reader-{uuid.uuid4()}",
                     "enable.auto.commit": False}))


def _partitions(c: Consumer, topics: Iterable[str]) -> list[TopicPartition]:
    tps = []
    for topic in topics:
        md = c.list_topics(topic, timeout=10)
        tps += [TopicPartition(topic, p, OFFSET_BEGINNING)
                for p in sorted(md.topics[topic].partitions)]
    return tps


def end_offsets(bootstrap: str, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """End offset of every partition of `topics` (what a complete read must reach)."""
    c = _reader(bootstrap)
    try:
        return {(tp.topic, tp.partition): end_offset(c, tp) for tp in _partitions(c, topics)}
    finally:
        c.close()


def read_messages(bootstrap: str, topics: Iterable[str], *, min_count: int = 0,
                  timeout: float = 60.0, idle: float = 0.0) -> list[Any]:
    """Every message of `topics` (error-free `confluent_kafka.Message`s, in partition order):
    at least up to the end offsets they had when called, then until `min_count` arrived and
    nothing more came for `idle` seconds, or `timeout` passed."""
    c = _reader(bootstrap)
    try:
        tps = _partitions(c, topics)
        behind = {(tp.topic, tp.partition): end_offset(c, tp) for tp in tps}
        behind = {k: high for k, high in behind.items() if high > 0}
        c.assign(tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() < deadline:
            got = [m for m in c.consume(5000, 0.2) if m.error() is None]
            out.extend(got)
            for m in got:
                k = (m.topic(), m.partition())
                if k in behind and m.offset() + 1 >= behind[k]:
                    del behind[k]
            if got:
                last = time.monotonic()
            elif not behind and len(out) >= min_count and time.monotonic() - last >= idle:
                break
        return out
    finally:
        c.close()


def read_decoded(bootstrap: str, topics: Iterable[str], *, min_count: int = 0,
                 timeout: float = 60.0, idle: float = 0.0) -> list[tuple[str, bytes | None, Any]]:
    """`read_messages`, decoded: (topic, key, `schemas.serde.Decoded`) per message."""
    from schemas.serde import Serde

    serde = Serde()
    return [(m.topic(), m.key(), serde.decode(m.value()))
            for m in read_messages(bootstrap, topics, min_count=min_count, timeout=timeout,
                                   idle=idle)]
