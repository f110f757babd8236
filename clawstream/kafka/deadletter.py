"""The one dead-letter path: input a handler cannot use goes to `claw.dlq.v1` with the reason.

Handlers raise `InvalidMessage(reason, detail)` for a message they cannot use (undecodable,
the wrong type on a topic, a record that breaks a rule); the loop gives it to
`DeadLetterQueue.send`, which writes the original key and bytes with the reason and origin in
headers (`schemas.headers`) and goes on. The message is never lost: its dead letter is
acknowledged before the offsets behind it are committed (`flush`). A limit stops a runaway
(as arroyo's DLQ limit does): when every message for a long stretch is invalid, something is
wrong upstream (a wrong schema, a topic mix-up), and stopping says so louder than a DLQ
filling up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Message

from clawstream.kafka.producer import ReliableProducer
from schemas.headers import dlq_headers


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

    def send(self, msg: Message, reason: str, detail: str) -> None:
        """Dead-letter a consumed message as it came, with the reason."""
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

    def ok(self) -> None:
        """A valid message came: the run of invalid ones is over."""
        self._consecutive = 0

    def flush(self, timeout: float = 60.0) -> None:
        """Every dead letter acknowledged (before the offsets behind them are committed)."""
        self.producer.flush(timeout)
