"""Exactly-once processing (CLAWSTREAM_PROCESSING_GUARANTEE=exactly_once) against the real
broker: a worker killed with -9 during heavy output, or frozen past its session timeout while
another takes over. With the option on, no derived record appears twice (by id) on any derived
topic read with read_committed, and the derived topics hold transactions; with it off, what
the README promises: a record may repeat on the topic (the kill -9 always makes some), with
the same id and identity (its window, session, late or lost event), its figures the replay's;
ClickHouse holds each window once, as its last copy."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from streams_helpers import T0, Emitter, WorkerProcess, committed_lag, worker_log

from clawstream.kafka.config import client_config
from clawstream.settings import Settings
from consumers import clickhouse as ch
from consumers.sink import Sink
from schemas.serde import Serde
from schemas.topics import EVENT_TOPICS
from streams.app import input_group

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Record = dict[str, Any]
#: what the event-time processor derives (lost outcomes ride on claw.outcomes.v1)
DERIVED = ("claw.aggregates.v1", "claw.sessions.v1", "claw.late.v1", "claw.outcomes.v1")
#: What a repeat has the same, per derived topic: what its id stands for. A window's or a
#: session's figures (and its envelope's session and close time) are the replay's: an event
#: read on one side of the watermark the first time may be on the other side in the replay
#: (counted where it was late, the close watermark later), so they may differ. A late event
#: is the raw event, a lost outcome is made from its action: the whole record.
IDENTITY: dict[str, Callable[[Record], Any]] = {
    "claw.aggregates.v1": lambda r: (
        r["envelope"], r["window_kind"], r["window_size_ms"], r["window_step_ms"],
        r["window_start"], r["window_end"], r["scope_agent"], r["scope_app"],
        r["scope_action_kind"]),
    "claw.sessions.v1": lambda r: (r["envelope"]["agent_id"], r["session_start"]),
    "claw.late.v1": lambda r: r,
    "claw.outcomes.v1": lambda r: r,
}


def read_topic(settings: Settings, logical: str, isolation: str = "read_committed",
               timeout: float = 120.0) -> tuple[list[Message], int]:
    """Every message of a topic visible to `isolation`, up to where each partition ends now
    (an open transaction, say a killed producer's, holds a read_committed reader of its
    partition until the broker aborts it), and how many offsets the partitions span. The
    partitions are assigned, not subscribed to: no group to join (readers run side by side)."""
    topic = settings.topic(logical)
    conf = client_config(settings, "admin", "consumer", {
        "group.id": "eos-check", "enable.partition.eof": True, "auto.offset.reset": "earliest",
        "enable.auto.commit": False})
    conf["isolation.level"] = isolation  # what this check compares (no override may set it)
    c = Consumer(conf)
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
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
        span = 0
        for p in parts:
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            span += high - low
        return out, span
    finally:
        c.close()


def wait_for_open_transaction(settings: Settings, logical: str, timeout: float) -> bool:
    """Wait until a transaction holds records on the topic, not yet committed (a partition's
    last stable offset below its end), so that a kill now leaves output to emit again; False
    if none was seen in `timeout` seconds. (Killed just after a commit, with nothing written
    since, the worker would leave nothing uncommitted and the kill would show nothing.)"""
    topic = settings.topic(logical)
    clients = {}
    for isolation in ("read_uncommitted", "read_committed"):
        conf = client_config(settings, "admin", "consumer", {"group.id": "eos-check"})
        conf["isolation.level"] = isolation  # read_committed: the end is the stable offset
        clients[isolation] = Consumer(conf)
    try:
        parts = list(clients["read_committed"].list_topics(topic, timeout=10)
                     .topics[topic].partitions)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in parts:
                ends = [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                        for c in clients.values()]
                if ends[0] > ends[1]:
                    return True
            time.sleep(0.05)
        return False
    finally:
        for c in clients.values():
            c.close()


def copies_by_id(settings: Settings, logical: str,
                 isolation: str = "read_committed") -> tuple[dict[str, list[Record]], int]:
    """The records of a derived topic by event id, in the order they were written, and how
    many offsets of the topic hold no record visible to `isolation` (transaction markers,
    aborted records)."""
    serde = Serde()
    out: dict[str, list[Record]] = defaultdict(list)
    messages, span = read_topic(settings, logical, isolation)
    for m in sorted(messages, key=lambda m: (m.partition(), m.offset())):
        rec = serde.decode(m.value()).record
        if logical == "claw.outcomes.v1" and rec.get("status") != "lost":
            continue  # the agents' own outcomes (one each); the worker adds the lost ones
        out[rec["envelope"]["event_id"]].append(rec)
    return out, span - len(messages)


def copies_of_derived(settings: Settings, isolation: str = "read_committed",
                      ) -> dict[str, tuple[dict[str, list[Record]], int]]:
    """`copies_by_id` of every derived topic, the topics read side by side."""
    with ThreadPoolExecutor(len(DERIVED)) as pool:
        return dict(zip(DERIVED, pool.map(lambda t: copies_by_id(settings, t, isolation),
                                          DERIVED), strict=True))


def repeats(by_id: dict[str, list[Record]]) -> int:
    return sum(len(c) - 1 for c in by_id.values())


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
            if guarantee == "exactly_once":  # in the middle of a transaction with output
                wait_for_open_transaction(cs_settings, "claw.aggregates.v1", timeout=10)
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
        # the successor took over and caught up: every event the fleet sent processed and
        # committed (with transactions, with the outputs: all it emitted is visible). Below 0:
        # lost outcomes the worker wrote to claw.outcomes.v1 since, read and committed too
        lag = committed_lag(cs_settings, input_group(cs_settings), EVENT_TOPICS, timeout=180)
        assert lag <= 0, f"the worker that took over left {lag} events unprocessed"
        time.sleep(3.0)  # the fleet merge's last windows
    finally:
        stop.set()
        if disruption == "freeze":
            worker.thaw()
        worker.stop()
        if second is not None:
            second.stop()
    repeated: dict[str, int] = {}
    unseen: dict[str, int] = {}  # offsets without a visible record
    total = 0
    committed = copies_of_derived(cs_settings)
    for logical in DERIVED:
        by_id, unseen[logical] = committed[logical]
        total += len(by_id)
        identity = IDENTITY[logical]
        for copies in by_id.values():
            first = identity(copies[0])
            differ = [identity(c) for c in copies[1:] if identity(c) != first]
            assert not differ, f"{logical}: a repeat is another record: {first} vs {differ}"
        repeated[logical] = repeats(by_id)
    assert total > 500, "too little output to say anything"
    print(f"{guarantee}/{disruption}: {total} derived records, repeated {repeated}, "
          f"offsets without a committed record {unseen}")
    if disruption == "kill9":  # the kill re-emitted what its last persist did not cover
        uncommitted = sum(repeats(by_id) for by_id, _unseen
                          in copies_of_derived(cs_settings, "read_uncommitted").values())
        assert uncommitted > 0, "the kill made no record twice: the test shows nothing"
    if guarantee == "exactly_once":
        assert not any(repeated.values()), f"records twice on read_committed: {repeated}"
        # the outputs went in transactions (their commit markers take offsets)
        assert unseen["claw.aggregates.v1"] > 0, "no transaction on claw.aggregates.v1"
        return
    # at-least-once: no transactions; repeats are on the topics (kill -9: always some)
    assert not any(unseen.values()), f"offsets without a record at least once: {unseen}"
    if disruption == "kill9":
        assert any(repeated.values()), "no repeat at least once after kill -9"
    # ClickHouse stores each window once: its last copy (ReplacingMergeTree by insert time)
    aggregates = committed["claw.aggregates.v1"][0]  # (the workers are stopped: as above)
    sink = Sink(cs_settings, topics=["claw.aggregates.v1"], serve_endpoint=False,
                serve_metrics_endpoint=False)
    sink.run(until_idle=5.0, max_seconds=120)
    rows = ch.query(cs_settings, "SELECT count(), uniqExact(event_id) FROM window_aggregates")
    assert rows.rows == [(len(aggregates), len(aggregates))]
    stored = ch.query(cs_settings, "SELECT toString(event_id), toJSONString(counts), "
                      "late_events, toUnixTimestamp64Milli(watermark) FROM window_aggregates")
    last = {i: c[-1] for i, c in aggregates.items()}
    differ = [(row, last[row[0]]) for row in stored.rows
              if (json.loads(row[1]), row[2], row[3])
              != (last[row[0]]["counts"], last[row[0]]["late_events"],
                  last[row[0]]["watermark"])]
    assert not differ, f"ClickHouse holds another copy than the last: {differ[:3]}"
