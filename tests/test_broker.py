"""The local Kafka broker and topic administration.

Unit tests check the generated configuration; integration tests run a PRIVATE broker on free
ports in tmp_path (never the shared one on 9092) and the topic table on the shared broker.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from ports import free_ports

from clawstream import broker as broker_mod
from clawstream.admin import create_topics, delete_topics, describe_topics, ensure_topics
from clawstream.broker import (
    BrokerError,
    LocalBroker,
    broker_answers,
    ensure_broker,
    local_broker_for,
    log4j2_properties,
    new_cluster_id,
    render_properties,
    server_properties,
)
from clawstream.settings import Settings
from schemas.topics import TOPICS


def _parse_props(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.partition("=")
            out[k] = v.replace("\\\\", "\\")
    return out


def _free_pair() -> int:
    """A port p with p+1 also free (the CLI puts the controller on port+1)."""
    for _ in range(100):
        (p,) = free_ports(1)
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", p + 1))
            return p
        except OSError:
            continue
    raise RuntimeError("no free port pair")


# --- unit: generated configuration -----------------------------------------------------------


def test_server_properties_single_node_kraft_on_loopback(tmp_path: Path) -> None:
    props = _parse_props(render_properties(server_properties(19092, 19093, tmp_path / "d")))
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.listener.names"] == "CONTROLLER"
    # --standalone formatting conflicts with a static voter set
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert "controller.quorum.voters" not in props
    assert props["log.dirs"] == str(tmp_path / "d")
    # one broker: internal topics must not ask for 3 replicas
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "false"
    assert props["num.partitions"] == "6"


def test_log4j2_config_writes_to_the_given_file(tmp_path: Path) -> None:
    text = log4j2_properties(tmp_path / "server.log")
    assert f"fileName = {tmp_path / 'server.log'}" in text
    assert "rootLogger.level = INFO" in text


def test_cluster_id_is_kafka_uuid_shaped() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert len(cid) == 22 and not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_local_broker_for_uses_the_settings_port(tmp_path: Path) -> None:
    s = Settings(bootstrap_servers="localhost:29092", data_dir=tmp_path)
    b = local_broker_for(s)
    assert (b.port, b.controller_port, b.bootstrap) == (29092, 29093, "127.0.0.1:29092")
    assert b.dir == (tmp_path / "kafka-29092").resolve()


def test_remote_bootstrap_is_never_started_locally(tmp_path: Path) -> None:
    s = Settings(bootstrap_servers="kafka.example.invalid:9092", data_dir=tmp_path)
    with pytest.raises(BrokerError, match="not a loopback"):
        local_broker_for(s)


def test_missing_java_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker_mod.shutil, "which", lambda name: None)
    with pytest.raises(BrokerError, match="java not found"):
        broker_mod.java_binary()


def test_jars_marker_must_match_version_and_pom(tmp_path: Path) -> None:
    s = Settings(cache_dir=tmp_path, kafka_version="4.1.1")
    assert not broker_mod.jars_ready(s)
    marker = broker_mod.libs_dir(s).parent / broker_mod.MARKER
    marker.parent.mkdir(parents=True)
    marker.write_text("stale\n")
    assert not broker_mod.jars_ready(s)
    marker.write_text(broker_mod._pom_digest("4.1.1"))
    assert broker_mod.jars_ready(s)


def test_nothing_listening_does_not_answer() -> None:
    (port,) = free_ports(1)
    assert not broker_answers(f"127.0.0.1:{port}", timeout=1)


# --- integration: a private broker's lifecycle -----------------------------------------------


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clawstream.cli", *args],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=180, check=False,
    )


@pytest.mark.integration
@pytest.mark.slow
def test_private_broker_up_reuse_down_restart(tmp_path: Path) -> None:
    port = _free_pair()
    bootstrap = f"127.0.0.1:{port}"
    env = {
        "CLAWSTREAM_BOOTSTRAP_SERVERS": bootstrap,
        "CLAWSTREAM_DATA_DIR": str(tmp_path),
        "CLAWSTREAM_TOPIC_NAMESPACE": "",
    }
    settings = Settings(bootstrap_servers=bootstrap, data_dir=tmp_path)
    broker = LocalBroker(settings, port=port, controller_port=port + 1)
    assert not broker.is_running()
    try:
        # `clawstream up` starts a detached broker that outlives the command
        r = _cli(env, "up", "--no-topics")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "started" in r.stdout
        pid = broker.pid()
        assert pid is not None and broker.answers()
        assert os.getsid(pid) != os.getsid(0), "broker must run in its own session"
        assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
        for fd in (1, 2):  # nothing holds the caller's terminal or pipes open
            assert os.readlink(f"/proc/{pid}/fd/{fd}") == str(broker.console_log)
        assert "Kafka Server started" in broker.server_log.read_text()

        # a second ensure_broker reuses the running one
        assert ensure_broker(settings) == bootstrap
        assert broker.pid() == pid

        ns = f"b{uuid.uuid4().hex[:6]}."
        create_topics(broker.client_settings(), namespace=ns, specs=["claw.actions.v1"])

        r = _cli(env, "down")
        assert r.returncode == 0, r.stdout + r.stderr
        assert not broker.is_running()
        assert not broker.pid_file.exists()
        assert not broker_answers(bootstrap, timeout=1)
        assert "shut down completed" in broker.server_log.read_text()
        r = _cli(env, "down")
        assert r.returncode == 0 and "no broker started by clawstream" in r.stdout

        # storage is formatted once: a restart keeps the topic
        assert broker.start(timeout=90) == bootstrap
        info = describe_topics(broker.client_settings(), ns, ["claw.actions.v1"])[0]
        assert info.exists and info.partitions == TOPICS["claw.actions.v1"].partitions
    finally:
        broker.stop()
    assert not broker.is_running()


@pytest.mark.integration
def test_start_refuses_a_port_taken_by_someone_else(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        (cport,) = free_ports(1)
        b = LocalBroker(Settings(data_dir=tmp_path), port=port, controller_port=cport)
        with pytest.raises(BrokerError, match="already in use"):
            b.start(timeout=10)
        assert not b.is_running()


@pytest.mark.integration
def test_a_broker_that_dies_on_start_reports_its_log(tmp_path: Path) -> None:
    port = _free_pair()
    data = tmp_path / "kafka" / "data"
    data.mkdir(parents=True)
    # storage of another node: the broker refuses it and exits
    (data / "meta.properties").write_text(
        "version=1\nnode.id=7\ncluster.id=AAAAAAAAAAAAAAAAAAAAAA\n"
    )
    b = LocalBroker(Settings(data_dir=tmp_path), port=port, controller_port=port + 1,
                    data_dir=tmp_path / "kafka", secure=False)  # (secured: refused earlier)
    with pytest.raises(BrokerError, match="exited during start") as err:
        b.start(timeout=60)
    assert "node id" in str(err.value)  # the log tail says why
    assert not b.is_running()


# --- integration: the topic table on the shared broker ---------------------------------------


@pytest.mark.integration
def test_create_topics_is_idempotent_and_matches_the_table(kafka_bootstrap: str) -> None:
    ns = f"t{uuid.uuid4().hex[:10]}."
    try:
        first = ensure_topics(kafka_bootstrap, ns)
        assert sorted(first.created) == sorted(ns + n for n in TOPICS)
        assert first.existing == []
        second = ensure_topics(kafka_bootstrap, ns)
        assert second.created == [] and sorted(second.existing) == sorted(first.created)
        assert create_topics(kafka_bootstrap, ns) == [ns + n for n in TOPICS]

        infos = {i.name[len(ns):]: i for i in describe_topics(kafka_bootstrap, ns)}
        assert set(infos) == set(TOPICS)
        for name, spec in TOPICS.items():
            info = infos[name]
            assert info.exists, name
            assert info.partitions == spec.partitions, name
            assert info.cleanup_policy == spec.cleanup_policy, name
            for key, value in spec.config().items():
                assert info.configs[key] == value, (name, key)
            if spec.cleanup_policy == "delete":
                assert info.retention_ms == spec.retention_ms, name
    finally:
        delete_topics(kafka_bootstrap, [ns + n for n in TOPICS])


@pytest.mark.integration
def test_topics_of_other_namespaces_are_untouched(kafka_bootstrap: str) -> None:
    a, b = f"a{uuid.uuid4().hex[:8]}.", f"b{uuid.uuid4().hex[:8]}."
    try:
        create_topics(kafka_bootstrap, a, specs=["claw.dlq.v1"])
        assert [i.exists for i in describe_topics(kafka_bootstrap, b, ["claw.dlq.v1"])] == [False]
        assert ensure_topics(kafka_bootstrap, b, ["claw.dlq.v1"]).created == [b + "claw.dlq.v1"]
    finally:
        delete_topics(kafka_bootstrap, [a + "claw.dlq.v1", b + "claw.dlq.v1"])
