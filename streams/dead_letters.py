"""Decode, else dead-letter: what every stream module does with a message it reads.

Each reader decodes a message as the type its topic carries (`Serde.decode_as`: DecodeError
"wrong-topic" for another type) and gives what it cannot use, with the reason, to the
runtime's dead-letter queue (`clawstream.kafka.deadletter`): the same headers, the same limit
and the same metrics hook everywhere. The event-time processor hands its own consumed
messages over and flushes them with its outputs before each commit. A faust agent hands its
event over as a `FaustMessage` and waits until the dead letter is acknowledged before it
goes on (`dead_letter`): faust acks an event when its agent takes the next one and commits
acked offsets later, so the dead letter is on Kafka before its offset can be committed.
Why the DLQ's own reliable producer flushed, rather than faust's producer: a faust send
that fails does not stop faust's commit (its producer's flush before a commit waits but does
not report failures), while the reliable producer's flush raises, which crashes the agent
before the event is acked; and it is the one dead-letter path of every other reader.
"""

from __future__ import annotations

from typing import Any, cast

from confluent_kafka import Message

from clawstream.kafka.deadletter import DeadLetterQueue
from schemas.topics import EVENT_TYPE_BY_SCHEMA, TOPICS


def carried_types(topic: str) -> tuple[str, ...]:
    """The event types a (logical) topic carries."""
    schema = TOPICS[topic].schema
    return (EVENT_TYPE_BY_SCHEMA[schema],) if schema else ()


class FaustMessage:
    """A faust event seen as the consumed message the dead-letter queue writes out."""

    __slots__ = ("_event",)

    def __init__(self, event: Any) -> None:
        self._event = event

    def topic(self) -> str:
        topic: str = self._event.message.topic
        return topic

    def partition(self) -> int:
        partition: int = self._event.message.partition
        return partition

    def offset(self) -> int:
        offset: int = self._event.message.offset
        return offset

    def key(self) -> bytes | None:
        key: bytes | None = self._event.message.key
        return key

    def value(self) -> bytes | None:
        value: bytes | None = self._event.message.value
        return value


async def dead_letter(dlq: DeadLetterQueue, event: Any, reason: str, detail: str) -> None:
    """Dead-letter a faust event and wait until Kafka has it (before the agent acks it)."""
    dlq.send(cast(Message, FaustMessage(event)), reason, detail)
    await dlq.producer.flush_async()
