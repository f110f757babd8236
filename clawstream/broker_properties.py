"""The configuration files of a local Kafka broker: server.properties (plain or with SASL_SSL,
SCRAM, TLS and ACLs), log4j2's, and the KRaft cluster id, as pure functions of ports, paths and
the PKI (`clawstream.broker` writes and runs them).

A node of a local cluster (`clawstream up --brokers 3`) is the same broker with a node id and
a static quorum (`Quorum`: every node is a controller voter, `controller.quorum.voters`), and
its internal topics replicated: replication factor min(3, nodes), min.insync.replicas 2 at 3.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from pathlib import Path

from clawstream.security.pki import Pki


@dataclass(frozen=True)
class Quorum:
    """The controller voters of a local cluster: node ids 1..n, node i's controller listener
    on `controller_ports[i - 1]` (loopback). Every node is a voter (combined roles)."""

    controller_ports: tuple[int, ...]

    @property
    def size(self) -> int:
        return len(self.controller_ports)

    @property
    def voters(self) -> str:
        return ",".join(f"{i}@127.0.0.1:{p}" for i, p in enumerate(self.controller_ports, 1))


def replication(nodes: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) of topics on a cluster of `nodes` brokers:
    min(3, nodes) copies; at 3, an acknowledged write is on 2 of them at least, so one node
    may fail (or restart) without refusing writes or losing acknowledged ones."""
    rf = max(1, min(3, nodes))
    return rf, 2 if rf >= 3 else 1


def server_properties(
    port: int, controller_port: int, log_dir: Path, *, num_partitions: int = 6,
    node_id: int = 1, quorum: Quorum | None = None,
) -> dict[str, str]:
    """Properties of a KRaft broker+controller listening on loopback only: a single node
    (no `quorum`: a standalone controller), or node `node_id` of `quorum`."""
    rf, min_isr = replication(quorum.size if quorum else 1)
    voters = ({"controller.quorum.voters": quorum.voters} if quorum else
              {"controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}"})
    return {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        **voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": str(num_partitions),
        # what any topic created without saying gets (faust's own, tools'), and the
        # broker's internal topics: consumer offsets, transaction state, share state
        "default.replication.factor": str(rf),
        "min.insync.replicas": str(min_isr),
        "offsets.topic.replication.factor": str(rf),
        "transaction.state.log.replication.factor": str(rf),
        "transaction.state.log.min.isr": str(min_isr),
        "share.coordinator.state.topic.replication.factor": str(rf),
        "share.coordinator.state.topic.min.isr": str(min_isr),
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        # small machines: fewer threads than the defaults sized for servers
        "num.network.threads": "2",
        "num.io.threads": "4",
    }


def secure_properties(port: int, controller_port: int, log_dir: Path, pki: Pki,
                      admin_password: str, *, node_id: int = 1,
                      quorum: Quorum | None = None) -> dict[str, str]:
    """Properties of the broker with SASL_SSL, SCRAM, TLS and ACLs (between brokers and to
    the controllers too: admin's SCRAM credential, admin's PLAIN one on the controllers)."""
    props = server_properties(port, controller_port, log_dir, node_id=node_id, quorum=quorum)
    scram = ('org.apache.kafka.common.security.scram.ScramLoginModule required '
             f'username="admin" password="{admin_password}";')
    plain = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
             f'username="admin" password="{admin_password}" user_admin="{admin_password}";')
    props.update({
        "listeners": f"SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"SASL_SSL://127.0.0.1:{port}",
        "inter.broker.listener.name": "SASL_SSL",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SASL_SSL",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scram,
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": plain,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(pki.broker_pem),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(pki.ca_cert),
        "ssl.endpoint.identification.algorithm": "https",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:admin",
        "allow.everyone.if.no.acl.found": "false",
    })
    return props


def java_quote(arg: str) -> str:
    """One argument of a Java @argfile (quoted; backslashes and quotes escaped)."""
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_properties(props: dict[str, str]) -> str:
    """Java properties text (values here never need escaping beyond backslashes)."""
    lines = ["# generated by clawstream.broker; edits are overwritten on start"]
    lines += [f"{k}={v.replace(chr(92), chr(92) * 2)}" for k, v in props.items()]
    return "\n".join(lines) + "\n"


def log4j2_properties(log_file: Path) -> str:
    """log4j2 config: INFO to a rolled file; chatty request/state-change loggers at WARN."""
    return f"""\
# generated by clawstream.broker
status = warn
name = clawstream-kafka
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = {log_file}
appender.file.filePattern = {log_file}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
"""


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, url-safe base64 without padding, not '-'-led."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid
