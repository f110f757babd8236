"""Alerting benchmarks (figures printed, nothing asserted).

1. Pure engine: rule evaluations per second over a synthetic mixed stream (outcomes,
   heartbeats, window aggregates) with the default rules, and the ratio to a bare baseline
   loop in the same process (a dict of per-agent failure counters: the least any streak
   rule must do). Then the same stream routed over 6 alert partitions, one engine each
   (what the workers of a group run, `streams.alerts.routing`): inputs/s of routing plus
   evaluation against the one engine, copies per input, and each partition's share of the
   copies (the busiest one bounds what more workers gain).
2. End to end: time from the close of a breaching window (the WindowAggregate hitting
   `claw.aggregates.v1`) to the alert row being queryable in ClickHouse, through the real
   broker, a real alerting faust worker and the real sink (target <= 1 s).

Usage: .venv/bin/python bench/bench_alerts.py [--inputs 200000] [--windows 10] [--skip-e2e]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from alerts_helpers import aggregate, heartbeat, outcome  # noqa: E402

from clawstream.admin import settings_for  # noqa: E402
from clawstream.kafka.config import client_config  # noqa: E402
from streams.alerts import AlertEngine  # noqa: E402
from streams.alerts.routing import Router, fleet_record, fleet_rule_partition  # noqa: E402
from streams.alerts.rules import DEFAULT_RULES_FILE, load_rules_file  # noqa: E402
from streams.alerts.state import Prefixed  # noqa: E402

T0 = 1_700_000_000_000


def synthetic(n: int, agents: int = 50, seed: int = 7) -> list[tuple[str, dict]]:
    rnd = random.Random(seed)
    out: list[tuple[str, dict]] = []
    apps = ["calc", "notepad", "browser"]
    for i in range(n):
        t = T0 + i * 2
        agent = f"agent-{rnd.randrange(agents)}"
        r = rnd.random()
        if r < 0.8:
            status = "success" if rnd.random() < 0.85 else rnd.choice(["failure", "timeout"])
            out.append(("outcome", outcome(t, status, agent=agent, app=rnd.choice(apps))))
        elif r < 0.95:
            out.append(("heartbeat", heartbeat(t, agent)))
        else:
            fails = rnd.randrange(10)
            out.append(("aggregate", aggregate(
                t, agent=agent, app=rnd.choice(apps), success=10 - fails, failure=fails,
                p95=rnd.gauss(300, 50), ocr=rnd.random())))
    return out


def with_sources(items: list[tuple[str, dict]]) -> list[tuple[str, int, int]]:
    """What the worker passes: the source partition (6 per topic, by agent) and offset."""
    offsets: dict[tuple[str, int], int] = {}
    sources = []
    for etype, rec in items:
        tp = (etype, int(rec["envelope"]["agent_id"].rsplit("-", 1)[1]) % 6)
        offsets[tp] = offsets.get(tp, -1) + 1
        sources.append((*tp, offsets[tp]))
    return sources


def bench_engine(n: int) -> float:
    """Prints the one engine's figures; returns its CPU seconds."""
    items = synthetic(n)
    sources = with_sources(items)
    engine = AlertEngine(load_rules_file(DEFAULT_RULES_FILE))
    start, cpu = time.perf_counter(), time.process_time()
    emitted = 0
    for (etype, rec), source in zip(items, sources, strict=True):
        emitted += len(engine.process(etype, rec, rec["envelope"]["event_time"], source))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    rules = len(engine.rules.enabled())
    # baseline: per-agent failure counters in a dict, nothing else
    start = time.perf_counter()
    counters: dict[str, int] = {}
    for etype, rec in items:
        if etype == "outcome":
            a = rec["envelope"]["agent_id"]
            counters[a] = counters.get(a, 0) + 1 if rec["status"] != "success" else 0
    base = time.perf_counter() - start
    print(f"engine: {n} inputs, {rules} default rules, {emitted} alert events")
    print(f"  inputs/s            {n / elapsed:12,.0f}")
    print(f"  rule evaluations/s  {engine.evaluations / elapsed:12,.0f} "
          f"({engine.evaluations:,} evaluations in {elapsed:.2f} s)")
    print(f"  baseline loop/s     {n / base:12,.0f}  (engine = {base / elapsed:.3f}x baseline)")
    print(f"  CPU                 {cpu:12.2f} s")
    return cpu


def bench_sharded(n: int, single_cpu: float, partitions: int = 6) -> None:
    """The same inputs routed over `partitions` engines in one process; CPU time against
    the one engine's (`single_cpu`: steadier than wall time on a loaded machine)."""
    items = synthetic(n)
    sources = with_sources(items)
    rules = load_rules_file(DEFAULT_RULES_FILE)
    store: dict = {}
    engines = [AlertEngine(rules, Prefixed(store, str(p)), owns_fleet_rule=lambda name, p=p:
                           fleet_rule_partition(name, partitions) == p)
               for p in range(partitions)]
    router = Router(partitions)
    copies = [0] * partitions
    emitted = 0
    start, cpu = time.perf_counter(), time.process_time()
    for (etype, rec), source in zip(items, sources, strict=True):
        for p, names in router.routes(etype, rec, rules).items():
            copies[p] += 1
            copy = fleet_record(rec) if router.fleet_only(names, rules) else rec
            emitted += len(engines[p].process(etype, copy, rec["envelope"]["event_time"],
                                              source, rules=names))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    total = sum(copies)
    shares = " ".join(f"{c / total:.2f}" for c in copies)
    print(f"sharded: {partitions} partitions, one engine each, {emitted} alert events")
    print(f"  inputs/s (route + evaluate) {n / elapsed:10,.0f}  CPU {cpu:.2f} s "
          f"(= {cpu / single_cpu:.2f}x the one engine's)")
    print(f"  copies per input            {total / n:10.2f}")
    print(f"  share of copies per partition {shares} "
          f"(busiest {max(copies) / total:.2f}: 2 workers split the copies "
          f"{1 / max(max(copies) / total, 0.5):.2f}x at best)")


def _wait_owner(settings, timeout: float = 60.0) -> None:
    from consumers.clickhouse import query

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            query(settings, "SELECT count() FROM alerts")
            return
        except Exception:
            time.sleep(0.3)
    raise RuntimeError("sink never served the alerts table")


def bench_e2e(windows: int) -> None:
    from clawstream.admin import create_topics
    from clawstream.broker import ensure_broker
    from clawstream.settings import Settings, get_settings
    from consumers.clickhouse import query

    tmp = Path(tempfile.mkdtemp(prefix="bench-alerts-"))
    ns = f"b{uuid.uuid4().hex[:8]}."
    bootstrap = ensure_broker(get_settings())
    create_topics(bootstrap, namespace=ns)
    # the local broker runs secured: worker and sink connect as its admin, as the tests do
    # (the bench's own data folder below holds no credential)
    from clawstream.kafka.security import local_broker_secured
    from clawstream.security.local import LocalSecurity

    if local_broker_secured(get_settings()) and "CLAWSTREAM_KAFKA_CLIENT_CONFIG" not in os.environ:
        os.environ["CLAWSTREAM_KAFKA_CLIENT_CONFIG"] = str(
            LocalSecurity.of(get_settings()).store.path("admin"))
    rules = tmp / "rules.yaml"
    rules.write_text("rules:\n  - {name: BenchFail, kind: threshold, metric: failure_rate, "
                     "op: '>', value: 0.5, for: 1, match: {agent: 'bench-*'}}\n")
    env = dict(os.environ,
               CLAWSTREAM_BOOTSTRAP_SERVERS=bootstrap, CLAWSTREAM_TOPIC_NAMESPACE=ns,
               CLAWSTREAM_DATA_DIR=str(tmp / "data"), CLAWSTREAM_SINK_GROUP=f"sink-{ns}",
               CLAWSTREAM_WORKER_APP_ID=f"streams-{ns.rstrip('.')}",
               CLAWSTREAM_CHDB_ENDPOINT_PORT="0", CLAWSTREAM_RULES_FILE=str(rules),
               CLAWSTREAM_WORKER_METRICS_PORT="0", CLAWSTREAM_SINK_METRICS_PORT="0")
    os.environ.update(env)
    get_settings.cache_clear()
    settings = Settings()
    procs = []
    with open(tmp / "worker.log", "wb") as wlog, open(tmp / "sink.log", "wb") as slog:
        procs.append(subprocess.Popen([sys.executable, "-m", "streams.alerting"], cwd=ROOT,
                                      env=env, stdout=wlog, stderr=subprocess.STDOUT))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "clawstream.cli", "sink", "--topics", "claw.alerts.v1"],
            cwd=ROOT, env=env, stdout=slog, stderr=subprocess.STDOUT))
    try:
        from confluent_kafka import Producer

        from schemas.serde import Serde

        serde = Serde()
        producer = Producer(client_config(settings_for(bootstrap), "tool", "producer", {
                                          "linger.ms": 0}))
        _wait_owner(settings)
        # warm-up window (first assignment, first insert)
        lat: list[float] = []
        for i in range(windows + 1):
            agent = f"bench-{i}"
            rec = aggregate(int(time.time() * 1000), agent=agent, success=1, failure=9)
            producer.produce(settings.topic("claw.aggregates.v1"), key=agent.encode(),
                             value=serde.encode("aggregate", rec))
            producer.flush(10)
            t_close = time.perf_counter()
            deadline = t_close + 60
            while time.perf_counter() < deadline:
                res = query(settings, "SELECT count() FROM alerts WHERE agent_id = {a:String} "
                            "AND state = 'firing'", {"a": agent})
                if res.rows[0][0]:
                    break
                time.sleep(0.01)
            else:
                raise RuntimeError(f"no alert row for {agent}; see {tmp}")
            if i > 0:
                lat.append(time.perf_counter() - t_close)
            time.sleep(0.2)
        lat.sort()
        print(f"end to end (window close -> alert row in ClickHouse), {len(lat)} windows:")
        print(f"  p50 {statistics.median(lat) * 1000:7.0f} ms   "
              f"p90 {lat[int(0.9 * (len(lat) - 1))] * 1000:7.0f} ms   "
              f"max {lat[-1] * 1000:7.0f} ms   (target <= 1000 ms; "
              f"sink_batch_seconds={settings.sink_batch_seconds})")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--inputs", type=int, default=200_000)
    ap.add_argument("--windows", type=int, default=10)
    ap.add_argument("--skip-e2e", action="store_true")
    args = ap.parse_args()
    bench_sharded(args.inputs, bench_engine(args.inputs))
    if not args.skip_e2e:
        bench_e2e(args.windows)


if __name__ == "__main__":
    main()
