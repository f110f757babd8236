"""Cluster figures in one run, on private brokers this script starts and stops itself:
windows throughput with 1 and 2 workers on a three-broker cluster, exactly-once against
at-least-once there, and SDK throughput at replication factor 3 (the cluster) against 1 (one
broker). No absolute targets: on a 2-core machine three brokers, the workers and the
producer share the cores, so what is printed are ratios measured side by side, each figure
with the load average at the time.

1. Windows. N events (bench_windows' type mix, 50 agents, event time in order) are
   pre-loaded into the event topics (6 partitions each, 3 replicas, min ISR 2) of a
   private secured cluster; then `clawstream worker --modules streams.event_time` drains
   them, each run in a consumer group of its own: 1 worker at-least-once, 2 workers
   at-least-once (the group's partitions split between them), 1 worker exactly-once. The
   one-worker runs share one copy; each two-worker run gets a copy of its own, written in a
   Kafka transaction committed once both workers hold partitions (or the first to join would
   drain much of it alone). Transaction markers take offsets in those topics (and the
   exactly-once runs' lost outcomes bring some to claw.outcomes.v1): the workers step over
   them in either guarantee (`tests/test_streams_transactional_input.py`). A run's
   rate counts from the group's first offset commit to the commit of the last event (as
   bench_windows measures it, but once every worker holds partitions), with the workers'
   CPU time per event, which the machine's other load disturbs less. Rounds alternate the
   order (3 rounds; medians and the ratios within each round are printed), after an
   uncounted warm-up of each guarantee on a smaller namespace.
2. SDK. `AgentClient.emit` of Action/Outcome events until acknowledged (acks=all), as
   bench_sdk measures it, on topics with 3 replicas on the cluster, 1 replica on a private
   single broker, and 1 replica on the cluster (what replication itself costs, the three
   JVMs being the same); rounds alternate after an uncounted warm-up of each.

    .venv/bin/python bench/bench_cluster.py            # 2 cores: 4.5 min at load 5, 10 at 20
    .venv/bin/python bench/bench_cluster.py --quick    # ~2 min: 150k events, 1 round

`make bench` runs it too: it ignores the shared broker and starts (and stops) its own.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from bench_sdk import bodies, run_sdk  # noqa: E402
from bench_windows import (  # noqa: E402
    MODULES,
    build_events,
    committed_total,
    partitions,
    preload,
    start,
    stop,
)
from confluent_kafka import Consumer, KafkaException, Producer  # noqa: E402
from confluent_kafka.admin import NewTopic  # noqa: E402

from clawstream.admin import admin_client, create_topics, partition_health  # noqa: E402
from clawstream.broker import LocalBroker  # noqa: E402
from clawstream.broker_cluster import LocalCluster  # noqa: E402
from clawstream.cluster_trial import consecutive_free_ports  # noqa: E402
from clawstream.kafka.config import client_config, transactional  # noqa: E402
from clawstream.settings import Settings  # noqa: E402
from producers.settings import sdk_settings  # noqa: E402
from schemas.topics import ACTIONS, OUTCOMES, PLANS, TOPICS  # noqa: E402
from streams.app import input_group  # noqa: E402

#: (label, workers, processing guarantee) of the windows runs, in first-round order
WINDOW_RUNS = (("1 worker, at-least-once", 1, "at_least_once"),
               ("2 workers, at-least-once", 2, "at_least_once"),
               ("1 worker, exactly-once", 1, "exactly_once"))
SDK_TARGETS = ("RF 1, one broker", "RF 3, three brokers", "RF 1, three brokers")


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def worker_env(admin: Settings, ns: str, app_id: str, guarantee: str,
               data_dir: Path) -> dict[str, str]:
    """The environment of a `clawstream worker` of the private cluster, as its admin (what
    make bench does on the shared broker), whatever the calling environment names."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CLAWSTREAM_KAFKA_")}
    return env | {
        "CLAWSTREAM_BOOTSTRAP_SERVERS": admin.bootstrap_servers,
        "CLAWSTREAM_KAFKA_CLIENT_CONFIG": str(admin.kafka_client_config),
        "CLAWSTREAM_TOPIC_NAMESPACE": ns, "CLAWSTREAM_WORKER_APP_ID": app_id,
        "CLAWSTREAM_DATA_DIR": str(data_dir), "CLAWSTREAM_PROCESSING_GUARANTEE": guarantee,
        "CLAWSTREAM_WORKER_METRICS_PORT": "0", "CLAWSTREAM_CHDB_ENDPOINT_PORT": "0"}


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used (Linux /proc)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Drain:
    """One windows run: events/s, the workers' CPU µs per event, partitions each held."""

    rate: float
    cpu_us: float
    held: list[int]


def drain(admin: Settings, ns: str, workers: int, guarantee: str, n: int,
          tmp: Path, *, measure: bool = True, gate: Producer | None = None) -> Drain:
    """`workers` worker processes of one fresh group draining the `n` events pre-loaded
    under `ns`. The clock starts at the first offset commit seen once every worker holds
    partitions: the steady rate of the group, not how long a second Python process takes
    to start and join. The workers' CPU time over the same span is what other work on the
    machine disturbs least."""
    app_id = f"bench-{ns.rstrip('.')}-{uuid.uuid4().hex[:6]}"
    settings = admin.model_copy(update={"topic_namespace": ns, "worker_app_id": app_id,
                                        "processing_guarantee": guarantee})
    env = worker_env(admin, ns, app_id, guarantee, tmp / app_id)
    tps = partitions(settings)
    c = Consumer(client_config(settings, "tool", "consumer", {
        "group.id": input_group(settings), "enable.auto.commit": False}))
    logs = [tmp / f"{app_id}-{i}.log" for i in range(workers)]
    procs = [start([sys.executable, "-m", "clawstream.cli", "worker", "--modules", MODULES],
                   env, log) for log in logs]
    try:
        t_first = first_total = None
        cpu_first = 0.0
        pids = [p.pid for p in procs]
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                total = committed_total(c, tps)
            except KafkaException:  # NOT_COORDINATOR while the offsets topic is made or moves
                time.sleep(0.5)
                continue
            now = time.perf_counter()
            if total >= n:
                if t_first is None or first_total is None or total == first_total:
                    if not measure:  # a warm-up: drained is all it has to be
                        return Drain(0.0, 0.0, held(logs))
                    raise RuntimeError(f"drained before every worker held partitions: {logs}")
                done = total - first_total
                return Drain(done / max(now - t_first, 1e-9),
                             (cpu_seconds(pids) - cpu_first) / done * 1e6, held(logs))
            if gate is not None and all(held(logs)):
                gate.commit_transaction(60)  # every worker in the group: the events appear
                gate = None
            if t_first is None and total > 0 and all(held(logs)):
                t_first, first_total, cpu_first = now, total, cpu_seconds(pids)
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a worker exited, see {logs}")
            time.sleep(0.2)
        raise RuntimeError(f"the workers did not finish in time, see {logs}")
    finally:
        c.close()
        for p in procs:
            stop(p)


def held(logs: list[Path]) -> list[int]:
    """The partitions each worker was assigned last (its log's last "assigned N partitions")."""
    out = []
    for log in logs:
        found = re.findall(r"assigned (\d+) partitions", log.read_text(errors="replace"))
        out.append(int(found[-1]) if found else 0)
    return out


Events = list[tuple[str, str, bytes]]


def loaded_namespace(admin: Settings, events: Events, *,
                     gated: bool = False) -> tuple[str, Producer | None]:
    """A fresh namespace whose event topics hold `events`. Gated: written in one Kafka
    transaction left open, and that producer, whose commit releases them all at once (every
    reader, the workers too, reads committed only: librdkafka's default): so that a group's
    workers can all join before any of them reads, however long their start takes."""
    ns = f"benchc{uuid.uuid4().hex[:6]}."
    create_topics(admin, namespace=ns)
    t = time.perf_counter()
    target = admin.model_copy(update={"topic_namespace": ns})
    gate = None
    if gated:
        gate = Producer(client_config(target, "tool", "producer", {
            "linger.ms": 20, "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 2_000_000, **transactional(f"{ns}preload"),
            "transaction.timeout.ms": 600_000}))
        gate.init_transactions(60)
        gate.begin_transaction()
        for topic, agent, value in events:
            while True:
                try:
                    gate.produce(target.topic(topic), key=agent.encode(), value=value)
                    break
                except BufferError:
                    gate.poll(0.05)
        assert gate.flush(120) == 0
    else:
        preload(target, events)
    replicas = {len(p.replicas) for p in partition_health(admin, [ns + "claw.actions.v1"])}
    print(f"{'gated ' if gated else ''}preloaded {len(events):,} events into the 3-broker "
          f"cluster in {time.perf_counter() - t:.1f} s (replicas {sorted(replicas)}, {load()})",
          flush=True)
    return ns, gate


def windows(cluster: LocalCluster, args: argparse.Namespace,
            tmp: Path) -> dict[str, list[Drain]]:
    """Every windows run by label, in round order (see the module doc), after an uncounted
    warm-up (an at-least-once and an exactly-once worker side by side on a small namespace:
    the brokers' offset and transaction coordinators loaded, their JIT warm). Runs of one
    worker share one namespace; each run of two gets a gated one of its own."""
    admin = cluster.client_settings()
    events = build_events(args.events, 50, 1_767_225_600_000)
    warm, _ = loaded_namespace(admin, events[: args.events // 5])
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda g: drain(admin, warm, 1, g, args.events // 5, tmp, measure=False),
                      ("at_least_once", "exactly_once")))
    shared, _ = loaded_namespace(admin, events)
    runs: dict[str, list[Drain]] = {label: [] for label, _, _ in WINDOW_RUNS}
    for r in range(args.rounds):
        for label, workers, guarantee in WINDOW_RUNS if r % 2 == 0 else WINDOW_RUNS[::-1]:
            ns, gate = (shared, None) if workers == 1 else loaded_namespace(admin, events,
                                                                            gated=True)
            d = drain(admin, ns, workers, guarantee, args.events, tmp, gate=gate)
            runs[label].append(d)
            print(f"round {r + 1}  {label:<26} {d.rate:>9,.0f} events/s   "
                  f"{d.cpu_us:5.1f} µs CPU/event   partitions held {d.held}   ({load()})",
                  flush=True)
    return runs


def sdk_topics(target: Settings, ns: str, rf: int | None) -> None:
    """The SDK's topics under `ns`: as clawstream creates them, or with `rf` replicas."""
    if rf is None:
        create_topics(target, namespace=ns, specs=[ACTIONS, OUTCOMES, PLANS])
        return
    admin = admin_client(target)  # held until the futures resolve
    futures = admin.create_topics(
        [NewTopic(ns + name, num_partitions=TOPICS[name].partitions, replication_factor=rf,
                  config=TOPICS[name].config()) for name in (ACTIONS, OUTCOMES, PLANS)],
        operation_timeout=30)
    for fut in futures.values():
        fut.result()
    deadline = time.monotonic() + 30  # every partition led before the clock starts
    while any(p.leader < 0 for p in partition_health(target, [ns + ACTIONS, ns + OUTCOMES])):
        if time.monotonic() > deadline:
            raise RuntimeError("topics without leaders")
        time.sleep(0.2)


def sdk(targets: dict[str, tuple[Settings, int | None]], args: argparse.Namespace,
        tmp: Path) -> dict[str, list[float]]:
    """SDK events/s per target, in round order; rounds alternate (see the module doc)."""
    events = bodies(args.sdk_events)

    def one(label: str, evs: list) -> float:
        target, rf = targets[label]
        ns = f"benchs{uuid.uuid4().hex[:6]}."
        sdk_topics(target, ns, rf)
        agent = sdk_settings().model_copy(update={
            "bootstrap_servers": target.bootstrap_servers, "topic_namespace": ns,
            "kafka_client_config": target.kafka_client_config,
            "kafka_security_protocol": None, "kafka_sasl_username": None,
            "data_dir": tmp / f"agent-{ns.rstrip('.')}"})
        dt, _cpu, stats = run_sdk(agent, evs, f"bench-{ns.rstrip('.')}")
        assert sum(stats["delivered"].values()) == len(evs), stats
        return len(evs) / dt

    for label in targets:  # warm-up: connections, the brokers' JIT
        one(label, events[: len(events) // 4])
    rates: dict[str, list[float]] = {label: [] for label in targets}
    order = list(targets)
    for r in range(args.sdk_rounds):
        for label in order if r % 2 == 0 else order[::-1]:
            rates[label].append(one(label, events))
            print(f"round {r + 1}  SDK {label:<22} {rates[label][-1]:>9,.0f} events/s   "
                  f"({load()})", flush=True)
    return rates


def ratio_line(what: str, num: list[float], den: list[float]) -> str:
    """The ratio of the medians, and the ratio within each round (the two measured back to
    back: the least disturbed by the machine's other load drifting)."""
    paired = [a / b for a, b in zip(num, den, strict=True)]
    return (f"{what}: {statistics.median(num) / statistics.median(den):.2f}x (medians); "
            f"per round {', '.join(f'{x:.2f}' for x in paired)}")


def report(win: dict[str, list[Drain]], sdk_rates: dict[str, list[float]]) -> None:
    one, two, eos = (win[label] for label, _, _ in WINDOW_RUNS)
    rate = lambda runs: [d.rate for d in runs]  # noqa: E731
    cpu = lambda runs: [d.cpu_us for d in runs]  # noqa: E731
    med = statistics.median
    rf1, rf3, rf1c = (sdk_rates[label] for label in SDK_TARGETS)
    print(f"\nsummary ({os.cpu_count()} cores, load average now "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}; medians of the rounds)")
    print(f"windows on the 3-broker cluster, at-least-once: 1 worker {med(rate(one)):,.0f}, "
          f"2 workers {med(rate(two)):,.0f} events/s; CPU per event {med(cpu(one)):.1f} / "
          f"{med(cpu(two)):.1f} µs (both workers' together)")
    print("  " + ratio_line("2 workers / 1 worker, events/s", rate(two), rate(one)))
    print(f"1 worker: exactly-once {med(rate(eos)):,.0f} vs at-least-once "
          f"{med(rate(one)):,.0f} events/s; CPU per event {med(cpu(eos)):.1f} vs "
          f"{med(cpu(one)):.1f} µs")
    print("  " + ratio_line("exactly-once / at-least-once, events/s", rate(eos), rate(one)))
    print("  " + ratio_line("exactly-once / at-least-once, CPU per event", cpu(eos), cpu(one)))
    print(f"SDK until acknowledged: RF 3 on three brokers {med(rf3):,.0f}, RF 1 on one broker "
          f"{med(rf1):,.0f}, RF 1 on the three brokers {med(rf1c):,.0f} events/s")
    print("  " + ratio_line("RF 3 (three brokers) / RF 1 (one broker)", rf3, rf1))
    print("  " + ratio_line("RF 3 / RF 1, the same three brokers", rf3, rf1c))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="a smaller run: 150k events, 1 round, 100k SDK events in 2 rounds")
    ap.add_argument("--events", type=int, default=None, help="events through the workers")
    ap.add_argument("--sdk-events", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=None, help="rounds of the windows runs")
    ap.add_argument("--sdk-rounds", type=int, default=None)
    args = ap.parse_args()
    args.events = args.events or (150_000 if args.quick else 300_000)
    args.sdk_events = args.sdk_events or (100_000 if args.quick else 200_000)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.sdk_rounds = args.sdk_rounds or (2 if args.quick else 3)

    tmp = Path(tempfile.mkdtemp(prefix="clawstream-bench-cluster-"))
    logs = Path(tempfile.mkdtemp(prefix="clawstream-bench-cluster-logs-"))
    base = Settings().model_copy(update={"data_dir": tmp})
    cluster = LocalCluster(base, 3, consecutive_free_ports(6))
    single: LocalBroker | None = None
    stops: list[Callable[[], object]] = []
    print(f"{os.cpu_count()} cores, {load()} at the start; {args.events:,} events through the "
          f"workers, {args.sdk_events:,} SDK events, {args.rounds} round(s)", flush=True)
    try:
        t = time.perf_counter()
        stops.append(cluster.stop)
        cluster.start(timeout=180)
        print(f"private 3-broker cluster {cluster.bootstrap} up in "
              f"{time.perf_counter() - t:.0f} s", flush=True)
        win = windows(cluster, args, logs)
        port = consecutive_free_ports(2)
        single = LocalBroker(base, port=port, controller_port=port + 1)
        stops.append(single.stop)
        single.start(timeout=120)
        print(f"private single broker {single.bootstrap} up", flush=True)
        sdk_rates = sdk({SDK_TARGETS[0]: (single.client_settings(), None),
                         SDK_TARGETS[1]: (cluster.client_settings(), None),
                         SDK_TARGETS[2]: (cluster.client_settings(), 1)}, args, tmp)
        report(win, sdk_rates)
    finally:
        for f in reversed(stops):
            f()
        for n in cluster.nodes:  # one that ignored SIGTERM
            n.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print("worker logs:", logs)
    sys.stdout.flush()
    os._exit(0)  # librdkafka's and the SDK's threads: nothing left to wait for


if __name__ == "__main__":
    main()
