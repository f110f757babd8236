"""A local Kafka cluster: `clawstream up --brokers 3`, three KRaft nodes on loopback.

The same Maven-fetched jars as the single broker (`clawstream.broker`), each node a detached
`kafka.Kafka` process with combined broker+controller roles, node ids 1..n, and every node a
voter of a static controller quorum (`controller.quorum.voters`). Node i listens for clients
on `port + 2(i-1)` and for controllers beside it (`+1`): 9092/9093, 9094/9095, 9096/9097.
Secured like the single broker, with its PKI and admin (one per data folder): SASL_SSL
(SCRAM-SHA-512) for clients and between brokers, SASL_SSL PLAIN to the controllers, the
StandardAuthorizer; every node's storage is formatted once with the same cluster id and the
admin's SCRAM credential. Internal topics (offsets, transaction state) get 3 replicas and
min.insync.replicas 2, as the event topics do (`clawstream.admin.ensure_topics`).

Layout (`<data_dir>/kafka-cluster-<port>/`):
    cluster.json      node count, ports, cluster id (written at the first start)
    node-<id>/        one broker's folder, as `clawstream.broker` lays it out
Each JVM gets a smaller heap than the single broker's (three of them share the machine).
"""

from __future__ import annotations

import json
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clawstream.broker import BrokerError, LocalBroker, _split_hostport
from clawstream.broker_properties import Quorum, new_cluster_id
from clawstream.kafka.security import local_broker_secured
from clawstream.procs import file_lock
from clawstream.settings import Settings

log = logging.getLogger(__name__)

#: heap of one node of a local cluster (the single broker has 768m to itself)
NODE_HEAP = "-Xmx512m"
CLUSTER_FILE = "cluster.json"


class ClusterNode(LocalBroker):
    """One node of a `LocalCluster`: a LocalBroker with a node id, the quorum and the
    cluster's id."""

    heap = NODE_HEAP

    def __init__(self, settings: Settings, node_id: int, port: int, quorum: Quorum,
                 cluster_id: str, data_dir: Path, *, secure: bool = True) -> None:
        super().__init__(settings, port, quorum.controller_ports[node_id - 1], data_dir,
                         secure=secure)
        self.node_id = node_id
        self.quorum = quorum
        self.cluster_id = cluster_id

    def __repr__(self) -> str:
        return f"ClusterNode({self.node_id}, {self.bootstrap}, dir={self.dir})"

    def _node(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "quorum": self.quorum}

    def _quorum_args(self) -> list[str]:
        return ["-t", self.cluster_id]  # the static voters are in the properties

    def kill(self) -> int | None:
        """SIGKILL (a crash, for failover tests); returns the pid killed."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            self._wait_gone(pid, 10)
            self._reap()
        return pid


@dataclass(frozen=True)
class NodeState:
    node_id: int
    address: str
    pid: int | None
    answers: bool


class LocalCluster:
    """`nodes` brokers on loopback from `port` up, under `<data_dir>/kafka-cluster-<port>`."""

    def __init__(self, settings: Settings, nodes: int = 3, port: int = 9092,
                 data_dir: Path | str | None = None, *, secure: bool = True) -> None:
        if nodes < 1:
            raise BrokerError(f"a cluster needs at least one node, not {nodes}")
        self.settings = settings
        self.secure = secure
        self.dir = (Path(data_dir) if data_dir else
                    Path(settings.data_dir) / f"kafka-cluster-{port}").resolve()
        recorded = _read(self.dir / CLUSTER_FILE)
        if recorded and recorded["nodes"] != nodes:
            raise BrokerError(f"{self.dir} holds a cluster of {recorded['nodes']} nodes, not "
                              f"{nodes}: start it with --brokers {recorded['nodes']}, or remove "
                              "that folder to start afresh")
        self.cluster_id = recorded["cluster_id"] if recorded else new_cluster_id()
        ports = [port + 2 * i for i in range(nodes)]
        self.quorum = Quorum(tuple(p + 1 for p in ports))
        self.nodes = [ClusterNode(settings, i, p, self.quorum, self.cluster_id,
                                  self.dir / f"node-{i}", secure=secure)
                      for i, p in enumerate(ports, 1)]

    @property
    def bootstrap(self) -> str:
        """Every node's address: a client still bootstraps with one of them down."""
        return ",".join(n.bootstrap for n in self.nodes)

    def __repr__(self) -> str:
        return f"LocalCluster({self.bootstrap}, dir={self.dir})"

    def node(self, node_id: int) -> ClusterNode:
        return self.nodes[node_id - 1]

    def client_settings(self) -> Settings:
        """Settings of an admin client of the cluster (all its addresses, the admin's
        credential when secured)."""
        return self.nodes[0].client_settings().model_copy(
            update={"bootstrap_servers": self.bootstrap})

    def pids(self) -> list[int | None]:
        return [n.pid() for n in self.nodes]

    def is_running(self) -> bool:
        return any(p is not None for p in self.pids())

    def start(self, timeout: float = 120) -> str:
        """Start the nodes that are not running (all first: a node answers only once a
        majority of controllers is up), wait until each answers; returns the bootstrap."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with file_lock(self.dir / ".lock"):
            (self.dir / CLUSTER_FILE).write_text(json.dumps({
                "nodes": len(self.nodes), "ports": [n.port for n in self.nodes],
                "controller_ports": list(self.quorum.controller_ports),
                "cluster_id": self.cluster_id}) + "\n")
            for node in self.nodes:
                with file_lock(node.dir / ".lock"):
                    if node.pid() is None:
                        node._spawn()
        for node in self.nodes:
            node.start(timeout)
        # a client given any one node's address, or all of them, finds the credentials
        self.nodes[0].security.mark_broker(self.bootstrap,
                                           "SASL_SSL" if self.secure else "PLAINTEXT")
        return self.bootstrap

    def stop(self, timeout: float | None = None) -> list[int]:
        """Stop every running node; the node ids stopped. All are asked at once: one after
        the other, the last node's controlled shutdown would wait for a controller quorum
        that left with the others (30 s, then SIGKILL)."""
        running = [(n, pid) for n, pid in zip(self.nodes, self.pids(), strict=True) if pid]
        for _, pid in running:
            os.kill(pid, signal.SIGTERM)
        for node, _ in running:
            node.stop(timeout)
        return [n.node_id for n, _ in running]

    def state(self, timeout: float = 3.0) -> list[NodeState]:
        return [NodeState(n.node_id, n.bootstrap, n.pid(),
                          n.pid() is not None and n.answers(timeout)) for n in self.nodes]


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except (OSError, ValueError):
        return None


def local_cluster_for(settings: Settings) -> LocalCluster | None:
    """The local cluster one of whose nodes `settings.bootstrap_servers` names (started here
    before: its `cluster.json` is under the data folder), or None."""
    try:
        ports = {_split_hostport(b)[1] for b in settings.bootstrap_servers.split(",")
                 if b.strip()}
    except BrokerError:
        return None
    for path in sorted(Path(settings.data_dir).glob(f"kafka-cluster-*/{CLUSTER_FILE}")):
        info = _read(path)
        if info and ports & set(info.get("ports", [])):
            first = settings.model_copy(
                update={"bootstrap_servers": f"127.0.0.1:{info['ports'][0]}"})
            return LocalCluster(settings, info["nodes"], info["ports"][0], path.parent,
                                secure=local_broker_secured(first))
    return None
