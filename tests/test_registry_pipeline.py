"""With a schema registry configured, every part speaks the Confluent framing: the SDK writes
it, the sink and the worker read it (and write their own outputs in it). Real broker, real
registry (Apicurio, Confluent-compatible API), real ClickHouse engine."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
from sink_helpers import producer as plain_producer
from streams_helpers import read_topic

from clawstream.settings import Settings
from consumers import clickhouse as ch
from consumers.sink import Sink
from producers.sdk import AgentClient
from schemas.serde import CONFLUENT_MAGIC, Serde
from schemas.topics import DLQ, EVENT_TOPICS

pytestmark = pytest.mark.integration


def test_sdk_writes_confluent_framing_and_the_sink_lands_it(
        cs_settings: Settings, registry_url: str) -> None:
    settings = cs_settings.model_copy(update={"schema_registry_url": registry_url})
    sent: Counter[str] = Counter()
    with AgentClient(settings, "agent-reg") as c:
        for i in range(20):
            f = c.frame(np.full((60, 80, 3), 10 * i, dtype=np.uint8), app="notepad",
                        change_ratio=0.1)
            c.detection(f, [{"kind": "button", "bbox": (1, 2, 30, 20), "text": "OK",
                             "confidence": 0.9, "ocr_confidence": 0.8, "source": "ocr"}])
            a = c.action("click", app="notepad", plan_id="p", step_index=i, target="OK")
            c.outcome(a, "success", 12.0 + i, app="notepad", action_kind="click")
            c.heartbeat(cpu_percent=5.0)
            sent.update(["frame", "detection", "action", "outcome", "heartbeat"])
        assert c.flush(30) == 0

    # on the wire: Confluent framing (magic 0 + a schema id the registry hands out)
    registry_serde = Serde.for_registry(settings.schema_registry_url)
    wire: Counter[str] = Counter()
    values = [m.value() for logical in EVENT_TOPICS
              for m in read_topic(settings, logical, timeout=20, idle=0.5)]
    for value in values:
        assert value[0] == CONFLUENT_MAGIC
        decoded = registry_serde.decode(value)
        assert decoded.wire_format == "confluent"
        wire[decoded.schema.event_type] += 1
    assert wire == sent

    # a reader without the registry refuses them with a reason instead of guessing
    with pytest.raises(Exception, match="schema registry"):
        Serde().decode(values[0])

    stats = Sink(settings, serve_metrics_endpoint=False).run(until_idle=4)
    assert stats.rows >= sum(sent.values())
    got = dict(ch.query(settings, "SELECT event_type, count() FROM events "
                                  "GROUP BY event_type").rows)
    assert got == dict(sent)
    assert read_topic(settings, DLQ, timeout=5, idle=0.5) == []


def test_single_object_and_confluent_messages_land_side_by_side(
        cs_settings: Settings, registry_url: str) -> None:
    """A fleet half-migrated to a registry: the sink takes both wire formats on one topic."""
    from schemas.samples import sample

    settings = cs_settings.model_copy(update={"schema_registry_url": registry_url})
    confluent, single = Serde.for_registry(settings.schema_registry_url), Serde()
    topic = settings.topic("claw.actions.v1")
    p = plain_producer(settings)
    ids = []
    for i in range(10):
        rec = sample("action", random.Random(i), agent_id="agent-mix", seq=i)
        ids.append(rec["envelope"]["event_id"])
        value = (confluent if i % 2 else single).encode("action", rec, topic=topic)
        p.produce(topic, key=b"agent-mix", value=value)
    assert p.flush(30) == 0
    Sink(settings, serve_metrics_endpoint=False).run(until_idle=4)
    rows = ch.query(settings, "SELECT toString(event_id) FROM actions ORDER BY seq").rows
    assert [r[0] for r in rows] == ids
