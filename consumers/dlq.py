"""The dead-letter queue: bad input never stops the pipeline and is never lost.

A DLQ message carries the original bytes as value and the original key, plus headers naming
why and where it failed (the team's convention):
`clawstream.error.reason`, `clawstream.error.detail`, `clawstream.source.topic`,
`clawstream.source.partition`, `clawstream.source.offset`, `clawstream.failed.by`.
`dlq_headers` / `parse_headers` are pure and usable with any producer (Faust's too);
`DeadLetters` is the confluent-kafka producer the sink uses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from clawstream.settings import Settings
from schemas.topics import DLQ

log = logging.getLogger(__name__)

H_REASON = "clawstream.error.reason"
H_DETAIL = "clawstream.error.detail"
H_TOPIC = "clawstream.source.topic"
H_PARTITION = "clawstream.source.partition"
H_OFFSET = "clawstream.source.offset"
H_FAILED_BY = "clawstream.failed.by"
MAX_DETAIL = 2000


def dlq_headers(
    *, reason: str, detail: str, topic: str, partition: int, offset: int, failed_by: str
) -> list[tuple[str, bytes]]:
    """The DLQ headers for one failed message."""
    return [
        (H_REASON, reason.encode()),
        (H_DETAIL, detail[:MAX_DETAIL].encode("utf-8", "replace")),
        (H_TOPIC, topic.encode()),
        (H_PARTITION, str(partition).encode()),
        (H_OFFSET, str(offset).encode()),
        (H_FAILED_BY, failed_by.encode()),
    ]


def parse_headers(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """DLQ headers as a str dict (for readers, tests, a future DLQ replayer)."""
    return {k: (v or b"").decode("utf-8", "replace") for k, v in (headers or [])}


class DeadLetters:
    """Produces failed messages to the namespaced DLQ topic; `flush` before committing."""

    def __init__(
        self,
        settings: Settings,
        component: str,
        *,
        on_sent: Callable[[str], None] | None = None,
        producer: Producer | None = None,
    ) -> None:
        self.topic = settings.topic(DLQ)
        self.component = component
        self._on_sent = on_sent
        self._failed: list[str] = []
        self.producer = producer or Producer({
            "bootstrap.servers": settings.bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            "compression.type": "lz4",
            "client.id": f"{component}-dlq",
        })

    def send(
        self,
        value: bytes | None,
        key: bytes | None,
        *,
        reason: str,
        detail: str,
        topic: str,
        partition: int,
        offset: int,
    ) -> None:
        headers = dlq_headers(reason=reason, detail=detail, topic=topic, partition=partition,
                              offset=offset, failed_by=self.component)

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                self._failed.append(str(err))
            elif self._on_sent is not None:
                self._on_sent(reason)

        while True:
            try:
                self.producer.produce(self.topic, value=value, key=key, headers=headers,
                                      on_delivery=delivered)
                break
            except BufferError:
                self.producer.poll(0.1)
        self.producer.poll(0)

    def send_message(self, msg: Message, reason: str, detail: str) -> None:
        """Dead-letter a consumed message as it came."""
        self.send(msg.value(), msg.key(), reason=reason, detail=detail, topic=msg.topic() or "",
                  partition=msg.partition() or 0, offset=msg.offset() or 0)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every dead letter is acknowledged; raise if any was not.

        Callers commit source offsets only after this returns, so no bad message is lost.
        """
        remaining = self.producer.flush(timeout)
        if remaining or self._failed:
            failed, self._failed = self._failed, []
            raise RuntimeError(
                f"DLQ delivery failed ({remaining} pending, errors: {failed[:3]})"
            )

    def close(self, timeout: float = 10.0) -> None:
        try:
            self.flush(timeout)
        except RuntimeError as exc:
            log.error("%s", exc)


def describe(headers: Any) -> str:
    h = parse_headers(headers)
    return f"{h.get(H_REASON, '?')}: {h.get(H_DETAIL, '')}"
