"""Secure by default: a private broker started as `clawstream up` starts it (SASL_SSL, SCRAM,
ACLs), one credential per role, each role doing its job and refused what it must not do,
clear errors for the wrong password, an unknown CA and a plaintext client, and a revoked
credential refused on a connection already open. Real broker, real TLS."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient
from ports import free_ports

from clawstream.broker import LocalBroker
from clawstream.kafka.config import client_config
from clawstream.security.credentials import Credential
from clawstream.security.local import LocalSecurity
from clawstream.security.pki import ensure_pki
from clawstream.security.provision import add_credential, provision_roles, revoke_credential
from clawstream.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A private secured broker with the roles' credentials; settings of its admin."""
    data = tmp_path_factory.mktemp("secure")
    # every log line of the module's clients, at DEBUG: the last test scans it for secrets
    debug_log = logging.FileHandler(data / "python-debug.log")
    debug_log.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(debug_log)
    root.setLevel(logging.DEBUG)
    logging.getLogger("clawstream.librdkafka").setLevel(logging.DEBUG)
    port, controller = free_ports(2)
    base = Settings(data_dir=data, bootstrap_servers=f"127.0.0.1:{port}",
                    kafka_client_config=None, _env_file=None)
    broker = LocalBroker(base, port=port, controller_port=controller)
    broker.start(timeout=120)
    try:
        provision_roles(base)
        from clawstream.admin import create_topics

        create_topics(base)
        yield base
    finally:
        broker.stop()
        root.removeHandler(debug_log)
        root.setLevel(old_level)
        logging.getLogger("clawstream.librdkafka").setLevel(logging.WARNING)


def as_role(settings: Settings, name: str) -> Settings:
    path = LocalSecurity.of(settings).store.path(name)
    return settings.model_copy(update={"kafka_client_config": path})


def produce(settings: Settings, topic: str, n: int = 1) -> list[KafkaError | None]:
    results: list[KafkaError | None] = []
    p = Producer(client_config(settings, "agent", "producer", {
        "on_delivery": lambda err, _m: results.append(err), "message.timeout.ms": 10_000}))
    for i in range(n):
        p.produce(topic, key=b"agent-1", value=f"v{i}".encode())
    p.flush(15)
    return results


def first_error(consumer: Consumer, seconds: float = 15) -> KafkaError | None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is not None and m.error() is not None:
            return m.error()
    return None


def test_keys_and_credentials_are_private(secured: Settings) -> None:
    local = LocalSecurity.of(secured)
    for secret in (local.pki.ca_key, local.pki.broker_pem, *local.store.dir.glob("*.json")):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    assert stat.S_IMODE(local.dir.stat().st_mode) == 0o700
    broker_props = next(Path(secured.data_dir).glob("kafka-*/server.properties"))
    assert stat.S_IMODE(broker_props.stat().st_mode) == 0o600


def test_an_agent_writes_raw_events_and_nothing_else(secured: Settings) -> None:
    agent = as_role(secured, "agent")
    assert produce(agent, "claw.actions.v1") == [None]
    refused = produce(agent, "claw.alerts.v1")
    assert [e.code() for e in refused if e] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    c = Consumer(client_config(agent, "agent", "consumer", {"group.id": "agent-reads"}))
    c.subscribe(["claw.actions.v1"])
    try:
        err = first_error(c)
    finally:
        c.close()
    assert err is not None and err.code() in (KafkaError.GROUP_AUTHORIZATION_FAILED,
                                              KafkaError.TOPIC_AUTHORIZATION_FAILED)
    # nothing reached the alerts topic
    from clawstream.admin import message_count

    assert message_count(secured, "claw.alerts.v1") == 0


def test_the_worker_cannot_delete_a_topic_and_the_sink_cannot_write_derived(
        secured: Settings) -> None:
    worker = as_role(secured, "worker")
    admin = AdminClient(client_config(worker, "worker", "admin"))
    with pytest.raises(Exception, match="TOPIC_AUTHORIZATION_FAILED"):
        admin.delete_topics(["claw.frames.v1"])["claw.frames.v1"].result(15)
    sink = as_role(secured, "sink")
    assert [e.code() for e in produce(sink, "claw.aggregates.v1") if e] == [
        KafkaError.TOPIC_AUTHORIZATION_FAILED]
    assert produce(worker, "claw.aggregates.v1") == [None]  # what the worker is for


def test_wrong_password_unknown_ca_and_plaintext_fail_clearly_and_fast(
        secured: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = Credential.from_file(LocalSecurity.of(secured).store.path("agent"))
    wrong = tmp_path / "wrong.json"
    data = json.loads(good.to_json())
    data["password"] = "not-the-password"
    wrong.write_text(json.dumps(data))
    other_ca, _ = ensure_pki(tmp_path / "other-ca")
    unknown_ca = tmp_path / "unknown-ca.json"
    unknown_ca.write_text(json.dumps({**json.loads(good.to_json()),
                                      "ca_pem": other_ca.ca_pem()}))
    cases = {
        "credential": secured.model_copy(update={"kafka_client_config": wrong}),
        "TLS": secured.model_copy(update={"kafka_client_config": unknown_ca}),
        "plaintext": secured.model_copy(update={"kafka_client_config": None,
                                                "kafka_security_protocol": "PLAINTEXT"}),
    }
    for what, settings in cases.items():
        caplog.clear()
        t0 = time.monotonic()
        results = produce(settings, "claw.actions.v1")
        assert results and results[0] is not None, what  # nothing written
        said = " ".join(r.getMessage() for r in caplog.records)
        if what != "plaintext":
            assert what in said, (what, said)
        assert time.monotonic() - t0 < 15, what


def test_a_revoked_credential_is_refused_on_an_open_connection(secured: Settings) -> None:
    name = f"laptop-{uuid.uuid4().hex[:6]}"
    cred = add_credential(secured, "agent", name, None)
    assert "password" not in repr(cred) or cred.password.get_secret_value() not in repr(cred)
    agent = as_role(secured, name)
    results: list[KafkaError | None] = []
    p = Producer(client_config(agent, "agent", "producer", {
        "on_delivery": lambda err, _m: results.append(err), "message.timeout.ms": 10_000}))
    p.produce("claw.actions.v1", key=b"a", value=b"before")
    p.flush(15)
    assert results == [None]
    revoke_credential(secured, name)
    assert not LocalSecurity.of(secured).store.path(name).exists()
    time.sleep(1)
    p.produce("claw.actions.v1", key=b"a", value=b"after")  # same producer, same connection
    p.flush(15)
    assert results[1] is not None and results[1].code() in (
        KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError._MSG_TIMED_OUT,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED), results


def test_a_client_config_file_is_all_an_agent_machine_needs(
        secured: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "agent.json"
    add_credential(secured, "agent", f"box-{uuid.uuid4().hex[:6]}", out)
    for key in [k for k in os.environ if k.startswith("CLAWSTREAM_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CLAWSTREAM_KAFKA_CLIENT_CONFIG", str(out))
    alone = Settings(_env_file=None)
    assert alone.bootstrap_servers == secured.bootstrap_servers
    assert produce(alone, "claw.heartbeats.v1") == [None]


def read_event_ids(settings: Settings, topics: list[str], want: set[str],
                   timeout: float = 60) -> set[str]:
    """Event ids on `topics` (read as admin from the beginning) until `want` are all seen."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from schemas.serde import Serde

    serde = Serde()
    c = Consumer(client_config(settings, "admin", "consumer", {"group.id": f"r-{uuid.uuid4()}"}))
    got: set[str] = set()
    try:
        c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in topics
                  for p in c.list_topics(t, timeout=10).topics[t].partitions])
        deadline = time.monotonic() + timeout
        while not want <= got and time.monotonic() < deadline:
            for m in c.consume(1000, 0.5):
                if m.error() is None and m.value()[:2] == b"\xc3\x01":  # (others: not events)
                    got.add(serde.decode(m.value()).record["envelope"]["event_id"])
    finally:
        c.close()
    return got


def test_a_revoked_agent_spools_says_why_and_delivers_with_a_new_credential(
        secured: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from producers.sdk import AgentClient
    from producers.sdk.transport import CREDENTIAL_REFUSED
    from producers.settings import SdkSettings

    conf_file = tmp_path / "agent.json"  # the agent machine's one file
    first = f"rv-{uuid.uuid4().hex[:6]}"
    add_credential(secured, "agent", first, conf_file)
    agent = SdkSettings(_env_file=None, bootstrap_servers=secured.bootstrap_servers,
                        kafka_client_config=conf_file, data_dir=tmp_path / "sdk")
    refusals_before = CREDENTIAL_REFUSED._value.get()
    client = AgentClient(agent, "agent-revoked")
    sent: list[str] = []
    try:
        def send(n: int) -> None:
            for i in range(n):
                sent.append(client.action("click", app="a", plan_id="p", step_index=i % 5,
                                          target="ok"))
                time.sleep(0.005)

        send(100)
        assert client.flush(15) == 0 and client.stats()["credential_refused"] is None
        revoke_credential(secured, first)
        t0 = time.monotonic()
        while client.stats()["credential_refused"] is None and time.monotonic() - t0 < 15:
            send(20)
        refused_after = time.monotonic() - t0
        send(200)  # the agent keeps going: to the spool
        stats = client.stats()
        assert stats["credential_refused"], stats
        assert refused_after < 10, "the refusal is said within seconds"
        assert stats["spool_messages"] > 0 and stats["failed"] == {}, stats
        assert CREDENTIAL_REFUSED._value.get() > refusals_before
        said = " ".join(r.getMessage() for r in caplog.records if r.levelname == "ERROR")
        assert "refuses this agent's credential" in said and "spool" in said, said

        add_credential(secured, "agent", f"rv-{uuid.uuid4().hex[:6]}", conf_file)  # new one
        send(100)
        assert client.flush(60) == 0, client.stats()
        stats = client.stats()
        assert stats["credential_refused"] is None and stats["spool_messages"] == 0, stats
        assert stats["failed"] == {}, stats
    finally:
        client.close()
    topic = secured.topic("claw.actions.v1")
    got = read_event_ids(secured, [topic], set(sent))
    assert set(sent) <= got, f"{len(set(sent) - got)} of {len(sent)} events lost"


def test_no_secret_in_any_log_or_file_of_the_run(secured: Settings) -> None:
    """Last in the module: after every role, a wrong password, an unknown CA, revocations and
    an SDK client that spooled, no password or private key shows in the Python log (DEBUG),
    the broker's logs, or any file of the data folder but the secret stores themselves
    (0600: the credentials, the PKI's keys, the broker's properties)."""
    local = LocalSecurity.of(secured)
    secrets_: set[str] = set()
    for path in local.store.dir.glob("*.json"):
        secrets_.add(Credential.from_file(path).password.get_secret_value())
    for key in (local.pki.ca_key, local.pki.broker_pem):
        pem = key.read_text()
        body = pem.split("PRIVATE KEY-----")[1].split("-----END")[0].strip()
        secrets_.add(body.splitlines()[0])  # the first line of the key's base64
    assert len(secrets_) >= 4
    stores = {local.store.dir, local.pki.dir}
    scanned = 0
    for path in Path(secured.data_dir).rglob("*"):
        if not path.is_file() or path.name == "server.properties" or any(
                path.is_relative_to(d) for d in stores):
            continue
        text = path.read_bytes().decode("utf-8", "replace")
        scanned += 1
        for secret in secrets_:
            assert secret not in text, f"a secret in {path}"
    names = {p.name for p in Path(secured.data_dir).rglob("*.log")}
    assert {"python-debug.log", "server.log"} <= names and scanned >= 3, names
