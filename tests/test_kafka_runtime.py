"""The one Kafka runtime (`clawstream.kafka`): every client's configuration comes from it, its
defaults are the guarantees the pipeline rests on, and the dead-letter limit stops a runaway."""

from __future__ import annotations

import ast
import asyncio
import time
from pathlib import Path

import pytest
from confluent_kafka import Message, TopicPartition

from clawstream.kafka.config import (
    HEARTBEAT_INTERVAL_S,
    SESSION_TIMEOUT_S,
    Bootstrap,
    client_config,
    faust_config,
)
from clawstream.kafka.consumer import BatchConsumer, GroupConsumer, next_offsets
from clawstream.kafka.deadletter import DeadLetterQueue, DlqLimit, InvalidMessage, TooManyInvalid
from clawstream.kafka.producer import ReliableProducer
from clawstream.kafka.reader import PartitionReader
from clawstream.kafka.transactions import TransactionalProducer
from clawstream.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("clawstream", "producers", "streams", "consumers", "schemas")
CLIENTS = {"Producer", "Consumer", "AdminClient", "SerializingProducer", "DeserializingConsumer"}


def test_producers_are_idempotent_and_acknowledged_by_all_replicas() -> None:
    conf = client_config(Bootstrap("h:1"), "worker", "producer", {"linger.ms": 50})
    assert conf["bootstrap.servers"] == "h:1"
    assert conf["enable.idempotence"] is True and conf["acks"] == "all"
    assert conf["linger.ms"] == 50


def test_consumers_commit_only_what_the_code_commits() -> None:
    conf = client_config(Bootstrap("h:1"), "sink", "consumer", {"group.id": "g"})
    assert conf["enable.auto.commit"] is False and conf["group.id"] == "g"
    assert conf["session.timeout.ms"] == SESSION_TIMEOUT_S * 1000
    assert conf["heartbeat.interval.ms"] == HEARTBEAT_INTERVAL_S * 1000


def test_connection_and_security_cannot_be_overridden_per_client() -> None:
    for key in ("bootstrap.servers", "security.protocol", "sasl.password"):
        with pytest.raises(ValueError, match="from the settings"):
            client_config(Bootstrap("h:1"), "agent", "producer", {key: "x"})


def test_no_producer_gives_up_acks_all_or_idempotence() -> None:
    for override in ({"acks": 1}, {"acks": "0"}, {"enable.idempotence": False}):
        with pytest.raises(ValueError, match="acks=all"):
            client_config(Bootstrap("h:1"), "agent", "producer", override)
    assert client_config(Bootstrap("h:1"), "tool", "producer", {"acks": -1})["acks"] == -1


def test_faust_apps_get_the_same_brokers_and_group_timings() -> None:
    conf = faust_config(Bootstrap("a:1, b:2"), "worker")
    assert conf["broker"] == ["kafka://a:1", "kafka://b:2"]
    assert conf["broker_session_timeout"] == SESSION_TIMEOUT_S
    assert conf["producer_acks"] == -1


def _client_configs_built_by_hand(path: Path) -> list[str]:
    """Client constructors given a dict literal, or the bootstrap key spelled out."""
    found = []
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in CLIENTS and node.args and isinstance(node.args[0], ast.Dict):
                found.append(f"{path}:{node.lineno} {name}({{...}})")
            if name == "App" and path.name != "app.py":
                found.append(f"{path}:{node.lineno} faust.App outside streams/app.py")
        if isinstance(node, ast.Constant) and node.value == "bootstrap.servers":
            found.append(f"{path}:{node.lineno} 'bootstrap.servers'")
    return found


def test_no_kafka_client_config_is_built_outside_the_runtime() -> None:
    """Not in the product, nor in the tests and benchmarks: a client built by hand would miss
    the security settings (and fail against the secured broker `make test` runs)."""
    offenders = []
    for package in (*PRODUCT, "tests", "bench"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.is_relative_to(ROOT / "clawstream" / "kafka") or path == Path(__file__):
                continue
            offenders += _client_configs_built_by_hand(path)
    assert offenders == []


def test_the_check_finds_a_config_built_by_hand(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from confluent_kafka import Producer\n"
                   "p = Producer({'bootstrap.servers': 'x'})\n")
    assert len(_client_configs_built_by_hand(bad)) == 2


class _Msg:
    """The parts of a consumed message a dead letter reads."""

    def __init__(self, offset: int) -> None:
        self._offset = offset

    def value(self) -> bytes:
        return b"\xff"

    def key(self) -> bytes:
        return b"k"

    def topic(self) -> str:
        return "claw.outcomes.v1"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


def test_the_dead_letter_limit_stops_a_runaway_and_a_valid_message_resets_it() -> None:
    # nothing listens there: produce() only queues, which is all this test needs
    producer = ReliableProducer(Bootstrap("127.0.0.1:9"), "tool", "dlq-limit-test")
    sent: list[str] = []
    dlq = DeadLetterQueue(producer, "claw.dlq.v1", "test", DlqLimit(max_consecutive=3),
                          on_sent=sent.append)
    msg: Message = _Msg(0)  # type: ignore[assignment]
    for _ in range(3):
        dlq.send(msg, "undecodable", "bad magic byte")
    dlq.ok()
    for _ in range(3):
        dlq.send(msg, "undecodable", "bad magic byte")
    with pytest.raises(TooManyInvalid, match="4 invalid messages in a row"):
        dlq.send(msg, "undecodable", "bad magic byte")
    assert sent == ["undecodable"] * 6  # (the one over the limit is not written)


def test_each_dead_letters_what_the_handler_rejects_and_goes_on() -> None:
    from schemas.serde import DecodeError

    producer = ReliableProducer(Bootstrap("127.0.0.1:9"), "tool", "dlq-each-test")
    sent: list[str] = []
    dlq = DeadLetterQueue(producer, "claw.dlq.v1", "test", DlqLimit(max_consecutive=2),
                          on_sent=sent.append)
    handled: list[int] = []

    def handle(m: Message) -> None:
        offset = m.offset() or 0
        if offset % 3 == 1:
            raise InvalidMessage("invalid-record", "breaks a rule")
        if offset % 3 == 2:
            raise DecodeError("bad-magic", "not avro")
        handled.append(offset)

    msgs: list[Message] = [_Msg(i) for i in range(9)]  # type: ignore[misc]
    dlq.each(msgs, handle)  # two invalid in a row at most: within the limit
    assert handled == [0, 3, 6]
    assert sent == ["invalid-record", "bad-magic"] * 3


@pytest.mark.integration
def test_group_consumer_starts_where_on_assign_says_and_commits_what_it_is_told(
    cs_settings: Settings,
) -> None:
    """The sink's resume (a hook that seeks on assignment), `at_end`, and a commit that is
    there when the consumer is gone."""
    topic = cs_settings.topic("claw.heartbeats.v1")
    _produce(cs_settings, topic, partition=0, n=10)
    group = cs_settings.topic("runtime-test")
    consumer = GroupConsumer(cs_settings, "sink", group, [topic],
                             overrides={"enable.partition.eof": True}, poll_s=0.1)
    read: list[tuple[int, int]] = []

    def on_assign(partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, 4 if tp.partition == 0 else tp.offset)
                for tp in partitions]

    def on_batch(batch: list[Message]) -> None:
        read.extend((m.partition() or 0, m.offset() or 0) for m in batch)
        consumer.commit_now(next_offsets(batch))
        if consumer.at_end() and not batch:
            consumer.stop()

    consumer.run(on_batch, on_revoke=lambda _p: [], on_lost=lambda _p: None,
                 on_assign=on_assign)
    assert read == [(0, o) for o in range(4, 10)]
    assert _committed(cs_settings, group, topic, 0) == 10


@pytest.mark.integration
def test_a_revocation_commits_its_transaction_with_the_group_generation_at_once(
    cs_settings: Settings,
) -> None:
    """The event-time processor's revocation: BatchConsumer's revoke callback waits for the
    event loop, where the owner commits its transaction with the group's metadata. Asked of
    the consumer then, that call waited for the callback (a deadlock until the revocation
    timed out, the group stuck meanwhile); it is the generation of the latest assignment, and
    the broker takes it."""
    topic = cs_settings.topic("claw.heartbeats.v1")
    _produce(cs_settings, topic, partition=0, n=5)
    group = cs_settings.topic("runtime-eos-test")
    source = BatchConsumer(cs_settings, "worker", group, [topic])
    out = TransactionalProducer(cs_settings, "worker", "runtime-test", f"{group}-txn")
    read: list[Message] = []
    took: list[float] = []

    async def on_batch(batch: list[Message]) -> None:
        read.extend(batch)
        if len(read) >= 5:
            source.core.stop()  # leaving the group revokes the partitions

    async def on_revoke(partitions: list[TopicPartition]) -> list[TopicPartition]:
        t0 = time.monotonic()
        await out.commit_async([TopicPartition(topic, 0, 5)], source.group_metadata())
        took.append(time.monotonic() - t0)
        return []

    async def on_lost(partitions: list[TopicPartition]) -> None:
        raise AssertionError("nothing is lost here")

    asyncio.run(asyncio.wait_for(source.run(on_batch, on_revoke, on_lost), 90))
    assert len(took) == 1 and took[0] < 10
    assert _committed(cs_settings, group, topic, 0) == 5


@pytest.mark.integration
def test_partition_reader_reads_offset_ranges_and_stops_where_nothing_is(
    cs_settings: Settings,
) -> None:
    topic = cs_settings.topic("claw.heartbeats.v1")
    _produce(cs_settings, topic, partition=0, n=10)
    with PartitionReader(cs_settings, "tool", cs_settings.topic("reader-test")) as reader:
        assert reader.watermarks(topic, 0) == (0, 10)
        got = [(m.partition(), m.offset(), m.value())
               for m in reader.read({(topic, 0): (2, 5), (topic, 1): (0, 3)}, timeout=30)]
        assert got == [(0, o, f"m{o}".encode()) for o in (2, 3, 4)]
    with PartitionReader(cs_settings, "tool", cs_settings.topic("reader-test")) as reader:
        t0 = time.monotonic()
        assert list(reader.read({(topic, 0): (50, 51)}, timeout=30)) == []  # no such offset
        assert time.monotonic() - t0 < 20


def _produce(settings: Settings, topic: str, partition: int, n: int) -> None:
    from confluent_kafka import Producer

    p = Producer(client_config(settings, "tool", "producer"))
    for i in range(n):
        p.produce(topic, value=f"m{i}".encode(), key=b"k", partition=partition)
    assert p.flush(30) == 0


def _committed(settings: Settings, group: str, topic: str, partition: int) -> int:
    from confluent_kafka import Consumer

    c = Consumer(client_config(settings, "tool", "consumer", {"group.id": group}))
    try:
        (tp,) = c.committed([TopicPartition(topic, partition)], timeout=10)
        return int(tp.offset)
    finally:
        c.close()
