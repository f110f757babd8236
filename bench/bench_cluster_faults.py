"""Broker failovers under the whole pipeline, on a private three-node cluster: does anything
shift, and how long does the cluster take to recover?

Starts a secured three-node KRaft cluster on free loopback ports (its own data folder, never
a shared broker), then runs each scenario of `clawstream.cluster_trial` on a fresh topic
namespace and ClickHouse: a real-time fleet through the SDK, two `clawstream worker`s of one
group and `clawstream sink`, and `--fault-at` seconds into the run:
  busiest-kill      kill -9 of the broker leading the most partitions, restarted 30 s later
  rolling-restart   every broker stopped and started in turn (the next once every ISR is whole)
  stop-60s          the busiest broker stopped (clean shutdown) for 60 s
Prints per scenario: events sent, in ClickHouse (distinct; rows read twice; copies stored
before merges), windows checked / mismatched (the recount from raw events), late events,
false incidents (AgentSilent, LostOutcomes, LateEvents, AgentClockSkew that fired), SDK loss
(failed + pending) and events it spooled, seconds some partition had no live leader, and the
time to recover (from the fault until every broker runs and every ISR is whole).
Exit status 1 when a scenario lost, doubled or shifted something.

    .venv/bin/python bench/bench_cluster_faults.py
    .venv/bin/python bench/bench_cluster_faults.py --scenario busiest-kill --duration 90
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COLUMNS = ("scenario", "sent", "in_clickhouse", "read_twice", "stored_copies",
           "windows_checked", "windows_mismatched", "late_events", "false_incidents",
           "sdk_lost", "sdk_spooled", "leaderless_s", "recovered_s", "ok")


def main() -> int:
    from clawstream.cluster_trial import SCENARIOS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                    help="run only these (repeatable); default: all three")
    ap.add_argument("--agents", type=int, default=10)
    ap.add_argument("--duration", type=float, default=150.0,
                    help="seconds the fleet sends (the fault and its recovery fit inside)")
    ap.add_argument("--speedup", type=float, default=2.0)
    ap.add_argument("--fault-at", type=float, default=20.0)
    ap.add_argument("--keep", action="store_true", help="keep the data folders and logs")
    args = ap.parse_args()

    from dataclasses import replace

    from clawstream.broker_cluster import LocalCluster
    from clawstream.cluster_trial import consecutive_free_ports, run_cluster_trial, trial_env
    from clawstream.settings import Settings, get_settings
    from clawstream.trial import TrialConfig

    tmp = Path(tempfile.mkdtemp(prefix="bench-cluster-faults-"))
    base = consecutive_free_ports(6)
    cluster = LocalCluster(Settings(data_dir=tmp / "cluster", bootstrap_servers=f"127.0.0.1:{base}",
                                    kafka_client_config=None, _env_file=None), 3, base)
    t0 = time.monotonic()
    rows = []
    try:
        cluster.start(timeout=180)
        print(f"3-node cluster {cluster.bootstrap} up in {time.monotonic() - t0:.1f}s "
              f"(data {tmp})", flush=True)
        for i, name in enumerate(args.scenario or list(SCENARIOS)):
            fault = replace(SCENARIOS[name], at_s=args.fault_at)
            ns = f"cf{uuid.uuid4().hex[:8]}."
            os.environ.update(trial_env(cluster, ns, tmp / name / "data"))
            get_settings.cache_clear()
            cfg = TrialConfig(agents=args.agents, duration_s=args.duration,
                              speedup=args.speedup, seed=11 + i, workers=2, agent_prefix="cf")
            print(f"\n== {name}: {fault} at {fault.at_s:.0f}s; namespace {ns}; {cfg}",
                  flush=True)
            started = time.monotonic()
            try:
                result = run_cluster_trial(cluster, get_settings(), name, fault, cfg,
                                           tmp / name / "logs",
                                           progress=lambda m: print("  " + m, flush=True))
            except Exception:
                traceback.print_exc()
                rows.append({"scenario": name, "ok": False})
                continue
            for line in result.trial.faults:
                print("  " + line)
            figures = result.figures()
            r = result.trial.report
            for line in (r.windows_differing + r.windows_missing)[:5]:
                print("  " + line)
            print(json.dumps({**figures, "seconds": round(time.monotonic() - started)}),
                  flush=True)
            rows.append(figures)
            if not args.keep:
                from clawstream.admin import delete_namespace

                delete_namespace(get_settings().bootstrap_servers, ns)
    finally:
        cluster.stop()
        for node in cluster.nodes:
            node.kill()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print("\n" + " | ".join(COLUMNS))
    for row in rows:
        print(" | ".join(str(row.get(c, "-")) for c in COLUMNS))
    return 0 if rows and all(row.get("ok") for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
