"""The trial (`clawstream.trial`) on a three-broker cluster while a broker fails.

A real-time fleet, two workers of one group and the sink run against a `LocalCluster`; at a
given moment a broker fault happens: kill -9 of the broker that leads the most partitions
(restarted a while later), a rolling restart of every broker (one at a time, each back in
every ISR before the next goes), or one broker stopped for a while. Then what users rely on
is checked: every event once in ClickHouse, every closed window equal to its recount from the
raw events, no incident the failover caused (AgentSilent, LostOutcomes, late events), nothing
lost by the SDK. A monitor samples the cluster's metadata meanwhile: how long some partition
had no live leader, and when every replica was back in sync (the time to recover).
`tests/test_cluster_faults.py` and `bench/bench_cluster_faults.py` run it.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from clawstream.broker_cluster import ClusterNode, LocalCluster
from clawstream.settings import Settings
from clawstream.trial import TrialConfig, TrialResult, run_trial
from schemas.topics import EVENT_TOPICS

#: rules a failover could fire by itself (a stalled pipeline, events read late or twice)
FAILOVER_RULES = ("AgentSilent", "LostOutcomes", "LateEvents", "AgentClockSkew")
#: the broker's own topics whose replicas count too
INTERNAL_TOPICS = ("__consumer_offsets", "__transaction_state")

Kind = Literal["kill-busiest", "rolling-restart", "stop"]


@dataclass(frozen=True)
class BrokerFault:
    """What happens to the brokers, `at_s` seconds into the fleet's run."""

    kind: Kind
    at_s: float = 15.0
    down_s: float = 30.0  # kill-busiest: restarted this long after; stop: stopped this long

    def __str__(self) -> str:
        return {"kill-busiest": f"kill -9 of the busiest broker, restarted {self.down_s:.0f}s "
                                "later",
                "rolling-restart": "rolling restart of all three brokers",
                "stop": f"one broker stopped for {self.down_s:.0f}s"}[self.kind]


#: the three scenarios of the acceptance (issue #17)
SCENARIOS: dict[str, BrokerFault] = {
    "busiest-kill": BrokerFault("kill-busiest", down_s=30.0),
    "rolling-restart": BrokerFault("rolling-restart"),
    "stop-60s": BrokerFault("stop", down_s=60.0),
}


def consecutive_free_ports(n: int) -> int:
    """The first of `n` consecutive loopback ports nothing listens on (a cluster's nodes and
    controllers take port, port+1, ...)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + n > 65535:
            continue
        socks: list[socket.socket] = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no run of free ports")


def trial_env(cluster: LocalCluster, namespace: str, data_dir: Path) -> dict[str, str]:
    """The environment of a trial's processes (sink, workers, SDK) on the cluster: every
    node's address, the cluster admin's client config, their own namespace and data folder,
    no fixed ports."""
    from clawstream.security.local import LocalSecurity

    admin = LocalSecurity.of(cluster.settings).store.path("admin")
    return {
        "CLAWSTREAM_BOOTSTRAP_SERVERS": cluster.bootstrap,
        "CLAWSTREAM_KAFKA_CLIENT_CONFIG": str(admin) if cluster.secure else "",
        "CLAWSTREAM_TOPIC_NAMESPACE": namespace,
        "CLAWSTREAM_DATA_DIR": str(data_dir),
        "CLAWSTREAM_CHDB_ENDPOINT_PORT": "0",
        "CLAWSTREAM_SINK_METRICS_PORT": "0",
        "CLAWSTREAM_WORKER_METRICS_PORT": "0",
        "CLAWSTREAM_SDK_METRICS_PORT": "0",
    }


@dataclass
class Health:
    """What the monitor saw: seconds (from the fault's start) some partition had no live
    leader in all, and when the last node was back with every ISR whole."""

    samples: int = 0
    leaderless_s: float = 0.0
    recovered_s: float | None = None


class Monitor:
    """Samples the cluster's metadata every `every` seconds from the fault's start: which
    partitions (the namespace's and the broker's own) lack a live leader or a replica in
    sync. Recovered: every node running and every ISR whole, after the fault's end."""

    def __init__(self, cluster: LocalCluster, namespace: str, every: float = 0.5) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.every = every
        self.health = Health()
        self.t0 = 0.0
        self.fault_done = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cluster-monitor")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def sample(self) -> tuple[bool, bool]:
        """(some partition without a live leader, some partition under-replicated)."""
        from clawstream.admin import admin_client

        live = {n.node_id for n in self.cluster.nodes if n.pid() is not None}
        md = admin_client(self.cluster.client_settings()).list_topics(timeout=5)
        parts = [p for name, t in md.topics.items()
                 if name.startswith(self.namespace) or name in INTERNAL_TOPICS
                 for p in t.partitions.values()]
        leaderless = any(p.leader not in live for p in parts)
        under = any(len(p.isrs) < len(p.replicas) for p in parts) or len(live) < len(
            self.cluster.nodes)
        return leaderless, under

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            try:
                leaderless, under = self.sample()
            except Exception:  # no answer in time (the metadata request hit the dead node)
                leaderless, under = True, True
            now = time.monotonic()
            self.health.samples += 1
            if leaderless:
                self.health.leaderless_s += now - last
            last = now
            if self.fault_done.is_set() and not under:
                self.health.recovered_s = now - self.t0
                return
            self._stop.wait(self.every)


def busiest(cluster: LocalCluster, namespace: str) -> ClusterNode:
    """The node that leads the most partitions of the namespace's event topics."""
    from clawstream.admin import partition_health

    leaders = [p.leader for p in partition_health(cluster.client_settings(),
                                                  [namespace + t for t in EVENT_TOPICS])]
    return cluster.node(max(sorted(set(leaders)), key=leaders.count))


def wait_whole(cluster: LocalCluster, monitor: Monitor, timeout: float = 120.0) -> None:
    """Until every ISR is whole (a rolling restart takes the next node only then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if monitor.sample() == (False, False):
                return
        except Exception:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the ISRs were not whole within {timeout:.0f}s")


def break_brokers(cluster: LocalCluster, fault: BrokerFault, namespace: str,
                  monitor: Monitor) -> list[str]:
    """Do the fault (the monitor starts with it); the log lines of what was done."""
    log: list[str] = []

    def note(what: str) -> None:
        log.append(f"{time.monotonic() - monitor.t0:6.1f}s after the fault: {what}")

    try:
        victim = busiest(cluster, namespace)
        monitor.start()
        if fault.kind in ("kill-busiest", "stop"):
            if fault.kind == "stop":
                victim.stop()
                note(f"broker {victim.node_id} stopped (clean shutdown)")
            else:
                victim.kill()
                note(f"kill -9 of broker {victim.node_id} (led the most partitions)")
            time.sleep(fault.down_s)
            note(f"starting broker {victim.node_id} again")
            victim.start(timeout=120)
            note(f"broker {victim.node_id} answers again")
        else:
            for node in cluster.nodes:
                node.stop()
                note(f"broker {node.node_id} stopped")
                node.start(timeout=120)
                wait_whole(cluster, monitor)
                note(f"broker {node.node_id} back, every ISR whole")
    except Exception as exc:  # in the log: the checks afterwards say what it did
        note(f"the fault failed: {exc!r}")
    finally:
        monitor.fault_done.set()
    return log


@dataclass
class FaultResult:
    """A scenario's figures (what `bench/bench_cluster_faults.py` prints)."""

    scenario: str
    trial: TrialResult
    health: Health
    sent: int = 0
    unique: int = 0  # distinct events of the fleet in ClickHouse (as read, FINAL)
    read_twice: int = 0  # rows read beyond one per event id (FINAL): what a user would see
    stored_copies: int = 0  # rows stored beyond one per event id, before merges
    incidents: dict[str, int] = field(default_factory=dict)  # FAILOVER_RULES that fired
    sdk_lost: int = 0

    @property
    def ok(self) -> bool:
        r = self.trial.report
        return (self.unique == self.sent and self.read_twice == 0 and r.ok
                and r.late_events == 0 and not self.incidents and self.sdk_lost == 0)

    def figures(self) -> dict[str, Any]:
        r = self.trial.report
        return {
            "scenario": self.scenario, "sent": self.sent, "in_clickhouse": self.unique,
            "read_twice": self.read_twice, "stored_copies": self.stored_copies,
            "windows_checked": r.windows_checked + r.fleet_windows_checked,
            "windows_mismatched": len(r.windows_differing) + len(r.windows_missing),
            "late_events": r.late_events, "false_lost_outcomes": r.false_lost_outcomes,
            "false_incidents": sum(self.incidents.values()), "incidents": self.incidents,
            "sdk_lost": self.sdk_lost,
            "sdk_spooled": sum(self.trial.fleet.get("spooled", {}).values()),
            "leaderless_s": round(self.health.leaderless_s, 1),
            "recovered_s": None if self.health.recovered_s is None
            else round(self.health.recovered_s, 1),
            "ok": self.ok,
        }


def count_in_clickhouse(settings: Settings, prefix: str) -> tuple[int, int, int]:
    """(distinct event ids, rows read beyond one per id, rows stored beyond one per id) of
    the fleet's raw events (the correlator's lost outcomes apart)."""
    from consumers.analytics.accuracy import CORRELATOR, RAW_TABLES
    from consumers.clickhouse import query

    params = {"p": prefix, "c": CORRELATOR}
    where = "WHERE startsWith(agent_id, {p:String}) AND producer != {c:String}"
    read = query(settings, f"SELECT uniqExact(event_id), count() FROM events {where}",
                 params).rows[0]
    stored = sum(int(query(settings, f"SELECT count() FROM {table} {where}", params).rows[0][0])
                 for _t, table, _a, _k in RAW_TABLES)
    unique = int(read[0])
    return unique, int(read[1]) - unique, stored - unique


def failover_incidents(settings: Settings) -> dict[str, int]:
    """Incidents of FAILOVER_RULES that fired (distinct incident ids per rule)."""
    from consumers.clickhouse import query

    rows = query(settings, "SELECT rule, uniqExact(incident_id) FROM alerts WHERE "
                 "state = 'firing' AND rule IN {r:Array(String)} GROUP BY rule",
                 {"r": list(FAILOVER_RULES)}).rows
    return {str(rule): int(n) for rule, n in rows if int(n)}


def run_cluster_trial(cluster: LocalCluster, settings: Settings, scenario: str,
                      fault: BrokerFault, cfg: TrialConfig, log_dir: Path,
                      progress: Any = lambda _m: None) -> FaultResult:
    """The trial with `cfg` (two workers, say) and `fault` on `cluster`; `settings` are the
    processes' (`trial_env` exported). The checks are FaultResult's; nothing is asserted."""
    namespace = settings.topic_namespace
    monitor = Monitor(cluster, namespace)
    try:
        trial = run_trial(settings, cfg, log_dir, progress, fault=(
            fault.at_s, lambda: break_brokers(cluster, fault, namespace, monitor)))
        deadline = time.monotonic() + 180
        while monitor.health.recovered_s is None and time.monotonic() < deadline:
            time.sleep(0.5)  # (normally long since recovered)
    finally:
        monitor.stop()
    out = FaultResult(scenario, trial, monitor.health, sent=sum(trial.sent.values()))
    out.unique, out.read_twice, out.stored_copies = count_in_clickhouse(settings,
                                                                        cfg.agent_prefix)
    out.incidents = failover_incidents(settings)
    out.sdk_lost = sum(trial.fleet["failed"].values()) + sum(trial.fleet["pending"].values())
    return out
