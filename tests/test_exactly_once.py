"""Exactly-once processing (CLAWSTREAM_PROCESSING_GUARANTEE=exactly_once) against the real
broker: a worker killed with -9 during heavy output, or frozen past its session timeout while
another takes over. With the option on, no derived record appears twice (by id) on any derived
topic read with read_committed; with it off, what the README promises: a record may repeat on
the topic, always with the same content, and ClickHouse shows it once."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError
from streams_helpers import T0, Emitter, WorkerProcess, worker_log

from clawstream.settings import Settings
from consumers import clickhouse as ch
from consumers.sink import Sink
from schemas.serde import Serde

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: what the event-time processor derives (lost outcomes ride on claw.outcomes.v1)
DERIVED = ("claw.aggregates.v1", "claw.sessions.v1", "claw.late.v1", "claw.outcomes.v1")
#: what a re-emission may change: when it was made (the envelope's producer fields, the
#: watermark it was closed at)
VOLATILE = ("envelope", "watermark")


def read_committed(settings: Settings, logical: str, timeout: float = 120.0) -> list[Any]:
    """Every committed message of a topic, up to where each partition ends now (an open
    transaction, say a killed producer's, holds its partition until the broker aborts it)."""
    topic = settings.topic(logical)
    c = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": "eos-check",
                  "isolation.level": "read_committed", "enable.partition.eof": True,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        c.subscribe([topic])
        out, ended, deadline = [], set(), time.monotonic() + timeout
        while len(ended) < len(parts) and time.monotonic() < deadline:
            for m in c.consume(5000, 0.5):
                err = m.error()
                if err is None:
                    out.append(m)
                    ended.discard(m.partition())
                elif err.code() == KafkaError._PARTITION_EOF:
                    ended.add(m.partition())
        assert len(ended) == len(parts), f"{logical}: not read to its end in {timeout} s"
        return out
    finally:
        c.close()


def copies_by_id(settings: Settings, logical: str) -> dict[str, list[dict[str, Any]]]:
    serde = Serde()
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in read_committed(settings, logical):
        rec = serde.decode(m.value()).record
        if logical == "claw.outcomes.v1" and rec.get("status") != "lost":
            continue  # the agents' own outcomes (one each); the worker adds the lost ones
        out[rec["envelope"]["event_id"]].append(rec)
    return out


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
@pytest.mark.parametrize("disruption", ["kill9", "freeze"])
def test_no_derived_record_twice_with_exactly_once(cs_settings: Settings, guarantee: str,
                                                   disruption: str) -> None:
    em = Emitter(cs_settings)
    rng = random.Random(17)
    agents = [f"agent-{i}" for i in range(24)]
    stop = threading.Event()
    speed = 20  # event time runs 20x the wall clock: windows close all the time
    start = time.monotonic()

    def produce() -> None:
        while not stop.is_set():
            now = T0 + int((time.monotonic() - start) * 1000 * speed)
            for agent in agents:
                if rng.random() < 0.5:
                    aid = em.emit("action", agent, now, kind="click")
                    if rng.random() < 0.9:  # the rest become lost outcomes
                        em.emit("outcome", agent, now + 50, action_id=aid, duration_ms=50.0)
                else:
                    em.emit("frame", agent, now - rng.randint(0, 8_000))  # some late
            em.producer.poll(0)
            time.sleep(0.02)

    env = {"CLAWSTREAM_PROCESSING_GUARANTEE": guarantee, "CLAWSTREAM_TUMBLING_WINDOWS_S": "1,10",
           "CLAWSTREAM_SESSION_GAP_S": "5", "CLAWSTREAM_OUTCOME_TIMEOUT_S": "5"}
    log = worker_log(cs_settings)
    worker = WorkerProcess(cs_settings, log, env).start()
    second: WorkerProcess | None = None
    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 90
        while "assigned" not in worker.log() and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(8.0)  # heavy output under way
        if disruption == "kill9":
            worker.kill9()
            worker = WorkerProcess(cs_settings, log, env).start()
        else:
            worker.freeze()
            second = WorkerProcess(cs_settings, log.with_suffix(".second.log"), env).start()
            time.sleep(20.0)  # > the session timeout: the second takes everything over
            worker.thaw()
        time.sleep(15.0)
        stop.set()
        thread.join()
        em.flush()
        time.sleep(10.0)
    finally:
        stop.set()
        if disruption == "freeze":
            worker.thaw()
        worker.stop()
        if second is not None:
            second.stop()
    repeated: dict[str, int] = {}
    total = 0
    for logical in DERIVED:
        by_id = copies_by_id(cs_settings, logical)
        total += len(by_id)
        for copies in by_id.values():  # a repeat is the same record (its watermark aside)
            same = [{k: v for k, v in c.items() if k not in VOLATILE} for c in copies]
            assert all(c == same[0] for c in same[1:]), f"{logical}: a repeat differs"
        repeated[logical] = sum(len(c) - 1 for c in by_id.values())
    assert total > 500, "too little output to say anything"
    print(f"{guarantee}/{disruption}: {total} derived records, repeated {repeated}")
    if guarantee == "exactly_once":
        assert not any(repeated.values()), f"records twice on read_committed: {repeated}"
        return
    # at-least-once: repeats may be on the topics; ClickHouse stores each window once
    aggregates = copies_by_id(cs_settings, "claw.aggregates.v1")
    sink = Sink(cs_settings, topics=["claw.aggregates.v1"], serve_endpoint=False,
                serve_metrics_endpoint=False)
    sink.run(until_idle=5.0, max_seconds=120)
    rows = ch.query(cs_settings, "SELECT count(), uniqExact(event_id) FROM window_aggregates")
    assert rows.rows == [(len(aggregates), len(aggregates))]
