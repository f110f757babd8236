"""Are the derived results true under real conditions? A real-time fleet through worker and
sink, optionally with faults, then every closed window recounted from the raw events.

Runs `clawstream.trial` on a fresh topic namespace and data folder, against the broker that
answers: `clawstream sink` and `clawstream worker` as subprocesses, a real-time fleet (event
time = the wall clock when sent, each agent's simulated gaps waited out) through the SDK.
Faults, each optional:
  --kill-worker N / --kill-sink N   kill -9 N times during the run, restarted --restart-after s
                                    later (spread evenly over the run)
  --skewed-agent SECONDS            one agent's clock runs this far ahead (e.g. 3600); one
                                    that shares its partition with other agents
  --garbage N                       N undecodable messages on --garbage-topic before the fleet
Prints: events sent and events/s, late events, clock-skew refusals (per agent), windows
checked / differing / missing (per agent and fleet-wide), lost outcomes and the false ones,
DLQ size. Exit status 1 when a window differs or is missing or an outcome was wrongly lost.

    .venv/bin/python bench/bench_accuracy.py --agents 20 --duration 180
    .venv/bin/python bench/bench_accuracy.py --agents 20 --duration 180 --kill-worker 2 \\
        --kill-sink 2 --skewed-agent 3600 --garbage 5000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, default=20)
    ap.add_argument("--duration", type=float, default=180.0, help="seconds of sending")
    ap.add_argument("--speedup", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--kill-worker", type=int, default=0)
    ap.add_argument("--kill-sink", type=int, default=0)
    ap.add_argument("--restart-after", type=float, default=5.0)
    ap.add_argument("--skewed-agent", type=float, default=0.0, metavar="SECONDS")
    ap.add_argument("--garbage", type=int, default=0)
    ap.add_argument("--garbage-topic", default="claw.outcomes.v1")
    ap.add_argument("--keep", action="store_true", help="keep the data folder and logs")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-accuracy-"))
    ns = f"acc{uuid.uuid4().hex[:8]}."
    os.environ.update({  # the namespace isolates the worker's and sink's groups and state
        "CLAWSTREAM_TOPIC_NAMESPACE": ns,
        "CLAWSTREAM_DATA_DIR": str(tmp / "data"),
        "CLAWSTREAM_CHDB_ENDPOINT_PORT": "0",
        "CLAWSTREAM_SINK_METRICS_PORT": "0",
        "CLAWSTREAM_WORKER_METRICS_PORT": "0",
        "CLAWSTREAM_SDK_METRICS_PORT": "0",
    })
    from clawstream.settings import get_settings
    from clawstream.trial import TrialConfig, run_trial

    get_settings.cache_clear()
    cfg = TrialConfig(agents=args.agents, duration_s=args.duration, speedup=args.speedup,
                      seed=args.seed, kill_worker=args.kill_worker, kill_sink=args.kill_sink,
                      restart_after_s=args.restart_after, skew_s=args.skewed_agent,
                      garbage=args.garbage, garbage_topic=args.garbage_topic,
                      agent_prefix="acc")
    print(f"namespace {ns} data {tmp}: {cfg}", flush=True)
    result = run_trial(get_settings(), cfg, tmp / "logs", progress=lambda m: print(m, flush=True))
    for line in result.faults:
        print("  " + line)
    report = result.report
    print(json.dumps({**report.summary(), "sent": sum(result.sent.values()),
                      "events_per_s": round(result.events_per_s, 1), "dlq": result.dlq,
                      "clock_skew_by_agent": report.clock_skew_events}, indent=1))
    for line in (report.windows_differing + report.windows_missing)[:10]:
        print("  " + line)
    if args.keep:
        print(f"kept {tmp} and the topics of namespace {ns}")
    else:
        from clawstream.admin import delete_namespace

        delete_namespace(get_settings().bootstrap_servers, ns)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
