"""A private secured three-node cluster on free loopback ports (never the shared broker's),
for the test modules that need one: started once per module, stopped after."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from clawstream.broker_cluster import LocalCluster
from clawstream.cluster_trial import consecutive_free_ports
from clawstream.settings import Settings


def private_cluster(data: Path) -> Iterator[LocalCluster]:
    """Start the cluster under `data`, yield it, stop it (and kill a node a failed test
    left half-started)."""
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
        for n in c.nodes:
            n.kill()
