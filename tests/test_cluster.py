"""A local three-node Kafka cluster (`clawstream up --brokers 3`): its configuration, and a
private secured cluster on free ports that loses a node to `kill -9` while the SDK writes.

Unit tests check the nodes' properties and the replication rule; the integration test starts
three real KRaft nodes (SASL_SSL, SCRAM, ACLs) in tmp_path, never the shared broker's ports.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from ports import consecutive_free_ports

from clawstream.admin import (
    create_topics,
    describe_topics,
    message_count,
    partition_health,
    replication_factor,
)
from clawstream.broker_cluster import LocalCluster, local_cluster_for
from clawstream.broker_properties import (
    Quorum,
    render_properties,
    replication,
    secure_properties,
    server_properties,
)
from clawstream.security.local import LocalSecurity
from clawstream.security.pki import ensure_pki
from clawstream.security.provision import provision_roles
from clawstream.settings import Settings
from schemas.topics import ACTIONS, TOPICS, TopicSpec


def test_replication_is_min_3_and_two_in_sync_at_3() -> None:
    assert [replication(n) for n in (0, 1, 2, 3, 5)] == [(1, 1), (1, 1), (2, 1), (3, 2), (3, 2)]


def test_a_node_of_three_is_a_voter_with_replicated_internal_topics(tmp_path: Path) -> None:
    quorum = Quorum((19093, 19095, 19097))
    props = server_properties(19094, 19095, tmp_path, node_id=2, quorum=quorum)
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097")
    assert "controller.quorum.bootstrap.servers" not in props
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095"
    for key in ("default.replication.factor", "offsets.topic.replication.factor",
                "transaction.state.log.replication.factor"):
        assert props[key] == "3", key
    assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"
    # the single broker keeps one copy of everything
    single = server_properties(19092, 19093, tmp_path)
    assert single["offsets.topic.replication.factor"] == single["min.insync.replicas"] == "1"


def test_a_secured_node_talks_sasl_ssl_to_the_others(tmp_path: Path) -> None:
    pki, _ = ensure_pki(tmp_path / "pki")
    props = secure_properties(19094, 19095, tmp_path, pki, "pw", node_id=2,
                              quorum=Quorum((19093, 19095, 19097)))
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert props["controller.quorum.voters"].startswith("1@127.0.0.1:19093")
    assert "127.0.0.1" in pki.broker_names()  # every node's address is in the certificate
    assert "pw" in render_properties(props)


def test_cluster_layout_ports_and_lookup(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, bootstrap_servers="127.0.0.1:29094", _env_file=None)
    c = LocalCluster(s, 3, 29092)
    assert c.bootstrap == "127.0.0.1:29092,127.0.0.1:29094,127.0.0.1:29096"
    assert [(n.node_id, n.port, n.controller_port) for n in c.nodes] == [
        (1, 29092, 29093), (2, 29094, 29095), (3, 29096, 29097)]
    assert c.nodes[1].dir == (tmp_path / "kafka-cluster-29092" / "node-2").resolve()
    assert local_cluster_for(s) is None  # never started: no cluster.json
    c.dir.mkdir(parents=True)
    (c.dir / "cluster.json").write_text(
        '{"nodes": 3, "ports": [29092, 29094, 29096], "cluster_id": "x"}')
    found = local_cluster_for(s)
    assert found is not None and found.bootstrap == c.bootstrap and found.cluster_id == "x"


# --- integration: a private secured cluster loses a node -------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    data = tmp_path_factory.mktemp("cluster")
    base = consecutive_free_ports(6)
    settings = Settings(data_dir=data, bootstrap_servers=f"127.0.0.1:{base}",
                        kafka_client_config=None, _env_file=None)
    c = LocalCluster(settings, 3, base)
    t0 = time.monotonic()
    try:
        c.start(timeout=150)
        print(f"3-node cluster up in {time.monotonic() - t0:.1f}s")
        yield c
    finally:
        c.stop()
        for n in c.nodes:  # a node a failed test left killed or half-started
            n.kill()


def _status(c: LocalCluster, ns: str) -> str:
    env = {**os.environ, "CLAWSTREAM_BOOTSTRAP_SERVERS": c.nodes[0].bootstrap,
           "CLAWSTREAM_DATA_DIR": str(c.settings.data_dir), "CLAWSTREAM_TOPIC_NAMESPACE": ns,
           "COLUMNS": "200"}
    env.pop("CLAWSTREAM_KAFKA_CLIENT_CONFIG", None)
    r = subprocess.run([sys.executable, "-m", "clawstream.cli", "status", "--no-lag"], env=env,
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _under_replicated(c: LocalCluster, topics: list[str]) -> int:
    return sum(p.under_replicated for p in partition_health(c.client_settings(), topics))


@pytest.mark.integration
@pytest.mark.slow
def test_the_sdk_loses_nothing_when_a_node_is_killed(cluster: LocalCluster) -> None:
    from producers.sdk import AgentClient
    from producers.settings import SdkSettings

    admin = cluster.client_settings()
    ns = f"c{uuid.uuid4().hex[:8]}."
    topics = create_topics(admin, ns)
    assert replication_factor(admin) == 3
    info = describe_topics(admin, ns, [ACTIONS])[0]
    assert info.configs["min.insync.replicas"] == "2"
    assert all(len(p.replicas) == 3 and len(p.isr) == 3
               for p in partition_health(admin, topics))

    # the agent writes with its own credential (SCRAM, least-privilege ACLs)
    provision_roles(admin.model_copy(update={"topic_namespace": ns}))
    local = LocalSecurity.of(admin)
    cred = local.store.for_role("agent", ns)
    assert cred is not None
    sdk = SdkSettings(bootstrap_servers=cluster.bootstrap, topic_namespace=ns,
                      kafka_security_protocol="SASL_SSL", kafka_sasl_username=cred.username,
                      kafka_sasl_password=cred.password, kafka_ssl_ca_location=local.pki.ca_cert,
                      data_dir=Path(cluster.settings.data_dir) / "agent", _env_file=None)
    topic = ns + ACTIONS
    sent = 0
    with AgentClient(sdk, "agent-c1") as agent:
        for i in range(300):
            agent.action("click", target=f"button-{i}")
            sent += 1
        assert agent.flush(30) == 0
        # the node that leads the most partitions of the topic dies mid-stream
        leaders = [p.leader for p in partition_health(admin, [topic])]
        victim = cluster.node(max(set(leaders), key=leaders.count))
        assert victim.kill() is not None
        t_kill = time.monotonic()
        for i in range(300):
            agent.action("type", target=f"field-{i}")
            sent += 1
            time.sleep(0.01)
        assert agent.flush(60) == 0
        stats = agent.stats()
    print(f"killed node {victim.node_id}; SDK stats {stats}")
    assert stats["delivered"].get("action") == sent, stats
    assert not any(stats["failed"].values()), stats
    assert message_count(admin, topic) == sent  # acks=all, min ISR 2: nothing lost, no copy

    # status: the dead node down, its partitions under-replicated (ISR 2 of 3)
    deadline = time.monotonic() + 30
    while _under_replicated(cluster, topics) == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    out = _status(cluster, ns)
    assert re.search(rf"│ {victim.node_id}\s+│ \S+\s+│ -\s+│ down", out), out
    m = re.search(r"under-replicated partitions: (\d+), offline partitions: (\d+)", out)
    assert m and int(m.group(1)) > 0 and m.group(2) == "0", out
    print(f"under-replicated {time.monotonic() - t_kill:.1f}s after the kill: {m.group(1)}")

    # back: the node catches up and every ISR is whole again
    t_restart = time.monotonic()
    victim.start(timeout=90)
    deadline = time.monotonic() + 60
    while _under_replicated(cluster, topics) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _under_replicated(cluster, topics) == 0
    print(f"ISR whole {time.monotonic() - t_restart:.1f}s after the restart")
    assert "under-replicated partitions: 0, offline partitions: 0" in _status(cluster, ns)
    assert len(TOPICS) == len(topics)


@pytest.mark.integration
@pytest.mark.slow
def test_internal_and_changelog_topics_are_replicated(cluster: LocalCluster) -> None:
    """The broker's consumer offsets, the worker's changelogs (the event-time state among
    them) and faust's own topics: 3 replicas, 2 in sync at least."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    from clawstream.kafka.config import client_config
    from streams.app import create_app, declare_changelogs
    from streams.worker_app import topic_replication

    admin = cluster.client_settings()
    ns = f"w{uuid.uuid4().hex[:8]}."
    create_topics(admin, ns, [ACTIONS])
    c = Consumer(client_config(admin, "admin", "consumer", {"group.id": ns + "g"}))
    deadline = time.monotonic() + 30
    try:  # a committed offset: the offsets topic exists (made on the first commit)
        while True:
            try:
                c.commit(offsets=[TopicPartition(ns + ACTIONS, 0, 0)], asynchronous=False)
                break
            except KafkaException:  # NOT_COORDINATOR while the offsets topic is made
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        c.close()
    worker = admin.model_copy(update={"topic_namespace": ns, "worker_app_id": ns + "app"})
    app = create_app(worker, modules=("streams.event_time",))
    changelogs = declare_changelogs(app, worker)
    assert any("event-time-state" in t for t in changelogs), changelogs
    assert topic_replication(worker) == 3  # faust's topic_replication_factor at start
    for p in partition_health(admin, ["__consumer_offsets", *changelogs]):
        assert len(p.replicas) == 3 and len(p.isr) >= 2, p
    for info in describe_topics(admin, specs=[TopicSpec(t, None) for t in changelogs]):
        assert info.configs["min.insync.replicas"] == "2", info.name
