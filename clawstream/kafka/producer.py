"""The reliable producer: one confluent-kafka producer whose `flush` fails loudly.

What every writer of derived data, state and dead letters needs: produce without blocking
(waiting for room when librdkafka's queue is full), serve delivery reports, and a `flush`
that raises when any message was not acknowledged, so the caller makes state durable or
commits input offsets only after its outputs are safe. Delivery reports come for failures
only: a Python callback per delivered message costs GIL time for nothing. A writer that must
answer someone once *its* messages are acknowledged (the ingest gateway answers each HTTP
request) passes `per_message_reports=True` and an `on_delivery` callback to `produce`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from clawstream.kafka.config import KafkaSettings, Role, client_config

#: message headers: (name, value) pairs, a value str, bytes or None (as confluent-kafka takes)
Headers = Sequence[tuple[str, str | bytes | None]]
#: one message's delivery report: (error or None, the message)
OnDelivery = Callable[[KafkaError | None, Message], None]


class DeliveryError(RuntimeError):
    """Messages that Kafka did not acknowledge (the caller must not commit past them)."""


class ReliableProducer:
    def __init__(self, settings: KafkaSettings, role: Role, client_id: str,
                 overrides: Mapping[str, Any] | None = None, *,
                 per_message_reports: bool = False) -> None:
        self.errors: list[str] = []
        self.producer = Producer(client_config(settings, role, "producer", {
            "client.id": client_id,
            "queue.buffering.max.messages": 1_000_000,
            # successes are reported only to the `on_delivery` callbacks given to `produce`
            "delivery.report.only.error": not per_message_reports,
            "on_delivery": self._delivered,
            **(overrides or {}),
        }))

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.errors.append(f"{msg.topic()}[{msg.partition()}]: {err}")

    def produce(self, topic: str, value: bytes | None, key: bytes | None = None, *,
                partition: int = -1, headers: Headers | None = None,
                on_delivery: OnDelivery | None = None) -> None:
        """Queue one message (waits for room when the queue is full). `on_delivery`, when
        given, gets this message's report instead of `errors` (its successes too if the
        producer was made with `per_message_reports`)."""
        pairs = headers if headers is None or isinstance(headers, list) else list(headers)
        while True:
            try:
                if on_delivery is None:
                    self.producer.produce(topic, value=value, key=key, partition=partition,
                                          headers=pairs)
                else:
                    self.producer.produce(topic, value=value, key=key, partition=partition,
                                          headers=pairs, on_delivery=on_delivery)
                return
            except BufferError:
                self.producer.poll(0.05)

    def produce_many(self, messages: Sequence[tuple[str, bytes, bytes | None]], *,
                     headers: Headers | None = None,
                     on_delivery: OnDelivery | None = None) -> None:
        """Queue (topic, value, key) messages with the same `headers` and `on_delivery` (one
        list of headers and one callback for all: a batch writer's loop without the per-message
        overheads of `produce`)."""
        pairs = headers if headers is None or isinstance(headers, list) else list(headers)
        producer = self.producer
        produce = producer.produce
        for topic, value, key in messages:
            while True:
                try:
                    if on_delivery is None:
                        produce(topic, value, key, headers=pairs)
                    else:
                        produce(topic, value, key, headers=pairs, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.05)

    def poll(self) -> None:
        """Serve delivery reports without waiting."""
        self.producer.poll(0)

    def pending(self) -> int:
        return len(self.producer)

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until every queued message is acknowledged; DeliveryError if one was not."""
        if len(self.producer) == 0 and not self.errors:
            return
        remaining = self.producer.flush(timeout)
        if remaining or self.errors:
            errors, self.errors = self.errors, []
            raise DeliveryError(f"{remaining} messages still pending, failures: {errors[:3]}")

    async def flush_async(self, timeout: float = 60.0) -> None:
        """`flush` off the event loop."""
        if len(self.producer) == 0 and not self.errors:
            return
        await asyncio.get_running_loop().run_in_executor(None, self.flush, timeout)
