"""The one dead-letter path: input a handler cannot use goes to `claw.dlq.v1` with the reason.

Handlers raise `InvalidMessage(reason, detail)` for a message they cannot use (a record that
breaks a rule), or the contract's `DecodeError` (undecodable, the wrong type on a topic:
`Serde.decode_as`); `DeadLetterQueue.each` runs a handler over a batch and gives every such
message to `DeadLetterQueue.send`, which writes the original key and bytes with the reason
and origin in headers (`schemas.headers`) and goes on. The message is never lost: its dead letter is
acknowledged before the offsets behind it are committed (`flush`). A limit stops a runaway
(as arroyo's DLQ limit does): when every message for a long stretch is invalid, something is
wrong upstream (a wrong schema, a topic mix-up), and stopping says so louder than a DLQ
filling up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import Message

from clawstream.kafka.config import KafkaSettings, Role
from clawstream.kafka.producer import DeliveryError, Headers, OnDelivery, ReliableProducer
from schemas.headers import dlq_headers
from schemas.serde import DecodeError
from schemas.topics import DLQ

log = logging.getLogger(__name__)


class DlqSettings(KafkaSettings, Protocol):
    dlq_max_consecutive: int

    def topic(self, name: str) -> str: ...


class InvalidMessage(Exception):
    """A message that cannot be used; `reason` is a short code, `detail` says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class TooManyInvalid(RuntimeError):
    """The dead-letter limit was passed: stop rather than dead-letter everything."""


@dataclass(frozen=True)
class DlqLimit:
    """At most `max_consecutive` invalid messages in a row (0: no limit)."""

    max_consecutive: int = 0


class DeadLetterQueue:
    """Dead letters of one component to one topic, through a reliable producer."""

    def __init__(self, producer: ReliableProducer, topic: str, component: str,
                 limit: DlqLimit = DlqLimit(),
                 on_sent: Callable[[str], None] | None = None) -> None:
        self.producer = producer
        self.topic = topic
        self.component = component
        self.limit = limit
        self.on_sent = on_sent
        self._consecutive = 0

    def each(self, messages: Iterable[Message], handle: Callable[[Message], object]) -> None:
        """`handle` every message; one it finds invalid (it raised `InvalidMessage` or a
        `DecodeError`) is dead-lettered, and the next one is handled."""
        for msg in messages:
            try:
                handle(msg)
            except (InvalidMessage, DecodeError) as exc:
                self.send(msg, exc.reason, exc.detail)
            else:
                self._consecutive = 0

    def send(self, msg: Message, reason: str, detail: str) -> None:
        """Dead-letter a consumed message as it came, with the reason."""
        log.warning("DLQ %s[%s]@%s (%s): %s: %s", msg.topic(), msg.partition(), msg.offset(),
                    self.component, reason, detail[:200])
        self._consecutive += 1
        if self.limit.max_consecutive and self._consecutive > self.limit.max_consecutive:
            raise TooManyInvalid(
                f"{self._consecutive} invalid messages in a row (last on {msg.topic()}: "
                f"{reason}: {detail[:200]}); stopping (dead-letter limit)")
        self.producer.produce(self.topic, msg.value(), msg.key(), headers=dlq_headers(
            reason=reason, detail=detail, topic=msg.topic() or "",
            partition=msg.partition() or 0, offset=msg.offset() or 0,
            failed_by=self.component))
        if self.on_sent is not None:
            self.on_sent(reason)

    def reject(self, value: bytes | None, key: bytes | None, *, reason: str, detail: str,
               topic: str, extra_headers: Headers = (),
               on_delivery: OnDelivery | None = None) -> None:
        """Dead-letter input that never was on a topic (an item the ingest gateway refused):
        `topic` is where it was headed, partition and offset are -1. No limit applies (the
        sender gets the reason back; a stream of bad input is its problem, not upstream's)."""
        log.debug("DLQ item for %s (%s): %s: %s", topic, self.component, reason, detail[:200])
        headers = [*dlq_headers(reason=reason, detail=detail, topic=topic, partition=-1,
                                offset=-1, failed_by=self.component), *extra_headers]
        self.producer.produce(self.topic, value, key, headers=headers, on_delivery=on_delivery)
        if self.on_sent is not None:
            self.on_sent(reason)

    def ok(self) -> None:
        """A valid message came: the run of invalid ones is over."""
        self._consecutive = 0

    def flush(self, timeout: float = 60.0) -> None:
        """Every dead letter acknowledged (before the offsets behind them are committed)."""
        self.producer.flush(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is left; a failure is logged (offsets behind it were not committed, so
        the messages are read, and dead-lettered, again)."""
        try:
            self.flush(timeout)
        except DeliveryError as exc:
            log.error("dead letters of %s not delivered: %s", self.component, exc)


def dead_letter_queue(settings: DlqSettings, role: Role, component: str, *,
                      on_sent: Callable[[str], None] | None = None) -> DeadLetterQueue:
    """The DLQ of one component, with its own reliable producer (batched: dead letters are
    rare and flushed before commits)."""
    producer = ReliableProducer(settings, role, f"{component}-dlq", {"linger.ms": 20})
    return DeadLetterQueue(producer, settings.topic(DLQ), component,
                           DlqLimit(settings.dlq_max_consecutive), on_sent)
