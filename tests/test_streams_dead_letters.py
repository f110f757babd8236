"""Decode, else dead-letter (no broker): each reader's topic carries one event type, a record
of another type is a 'wrong-topic' dead letter, and a faust event is dead-lettered with the
same headers as a consumed message."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace
from typing import Any

import pytest

from clawstream.kafka.deadletter import DeadLetterQueue
from schemas.headers import DLQ_REASON, FAILED_BY, SOURCE_OFFSET, SOURCE_TOPIC, parse_headers
from schemas.samples import sample
from schemas.serde import DecodeError, Serde
from schemas.topics import EVENT_TOPICS, HEARTBEATS, OUTCOMES, STATE_DELTAS
from streams.dead_letters import FaustMessage, carried_types, dead_letter


class Recorder:
    """Stands in for the reliable producer: keeps what was produced and flushed."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, Any, Any]] = []
        self.flushed = 0

    def produce(self, topic: str, value: Any, key: Any = None, *, partition: int = -1,
                headers: Any = None) -> None:
        self.sent.append((topic, value, key, headers))

    async def flush_async(self, timeout: float = 60.0) -> None:
        self.flushed = len(self.sent)


def test_every_event_topic_carries_its_one_type() -> None:
    assert carried_types(OUTCOMES) == ("outcome",)
    assert carried_types(STATE_DELTAS) == ("state_delta",)
    assert all(len(carried_types(t)) == 1 for t in EVENT_TOPICS)


def test_a_record_of_another_type_is_a_wrong_topic_dead_letter() -> None:
    serde = Serde()
    data = serde.encode("heartbeat", sample("heartbeat", random.Random(1)))
    assert serde.decode_as(data, carried_types(HEARTBEATS), HEARTBEATS).record
    with pytest.raises(DecodeError) as err:
        serde.decode_as(data, carried_types(OUTCOMES), OUTCOMES)
    assert err.value.reason == "wrong-topic"


def test_a_faust_event_is_dead_lettered_and_flushed_before_it_is_acked() -> None:
    producer = Recorder()
    dlq = DeadLetterQueue(producer, "claw.dlq.v1", "alerting")  # type: ignore[arg-type]
    event = SimpleNamespace(message=SimpleNamespace(
        topic="claw.outcomes.v1", partition=3, offset=17, key=b"agent-1", value=b"junk"))
    asyncio.run(dead_letter(dlq, event, "bad-magic", "first bytes are not Avro"))
    ((topic, value, key, headers),) = producer.sent
    assert (topic, value, key) == ("claw.dlq.v1", b"junk", b"agent-1")
    h = parse_headers(headers)
    assert (h[DLQ_REASON], h[SOURCE_TOPIC], h[SOURCE_OFFSET], h[FAILED_BY]) == (
        "bad-magic", "claw.outcomes.v1", "17", "alerting")
    assert producer.flushed == 1  # on Kafka before the agent moves on (and faust acks)
    assert FaustMessage(event).partition() == 3
