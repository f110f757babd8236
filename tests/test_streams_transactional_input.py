"""An at-least-once worker reading event topics that a transactional producer wrote (an
exactly-once worker's lost outcomes on `claw.outcomes.v1` after the guarantee was switched
back, a gateway or tool writing in transactions): transaction markers take offsets but are no
events. They must neither be reported as events the worker never applied nor hold a
partition's clock as a backlog that never drains (its windows would never close)."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer
from streams_helpers import SERDE, T0, WorkerProcess, body, wait_for_record, worker_log

from clawstream.kafka.config import client_config, transactional
from clawstream.settings import Settings
from schemas.envelope import new_envelope

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AGENTS = [f"tx-agent-{i}" for i in range(6)]


def produce_in_transactions(settings: Settings, producer: Producer, rounds: range) -> None:
    """Each round one transaction: an action of every agent 10 s of event time further on,
    and a heartbeat; the last thing written on every partition is a commit marker."""
    for r in rounds:
        producer.begin_transaction()
        for agent in AGENTS:
            for t, et in ((T0 + r * 10_000 + 1_000, "action"),
                          (T0 + r * 10_000 + 9_000, "heartbeat")):
                rec = {"envelope": new_envelope(agent, "s", 2 * r + (et == "heartbeat") + 1,
                                                event_time=t), **body(et)}
                producer.produce(settings.topic(SERDE.contract.get(et).topic),
                                 key=agent.encode(), value=SERDE.encode(et, rec))
        producer.commit_transaction(30)


def wait_for_window(settings: Settings, start: int) -> None:
    """Every agent's 10 s window from `start` closed."""
    for agent in AGENTS:
        wait_for_record(settings, "claw.aggregates.v1",
                        lambda r, a=agent: (r["scope_agent"] == a
                                            and r["window_size_ms"] == 10_000
                                            and r["window_start"] == start),
                        timeout=120)


def test_markers_are_no_lost_events_and_hold_no_clock(cs_settings: Settings) -> None:
    producer = Producer(client_config(cs_settings, "admin", "producer", {
        "partitioner": "murmur2_random", **transactional(f"tx-input-{uuid.uuid4()}")}))
    producer.init_transactions(30)
    produce_in_transactions(cs_settings, producer, range(0, 3))
    worker = WorkerProcess(cs_settings, worker_log(cs_settings),
                           {"CLAWSTREAM_PROCESSING_GUARANTEE": "at_least_once"}).start()
    try:
        # a round's heartbeats (at 9 s) take each agent's clock past the end of the round
        # before it plus the 5 s lateness; no event follows the last markers
        wait_for_window(cs_settings, T0 + 10_000)
        # later batches start past the markers the earlier ones ended on
        produce_in_transactions(cs_settings, producer, range(3, 6))
        wait_for_window(cs_settings, T0 + 40_000)
        log = worker.log()
    finally:
        worker.stop()
    assert "were never applied" not in log, log[-3000:]
