"""End-to-end latency: produce → queryable in ClickHouse, at a steady rate.

Agents emit Action/Outcome events through the SDK at `--rate` events/s (event_time = the
moment of emit) into a fresh topic namespace on the running broker, while `clawstream sink`
runs as its own process into a fresh chdb directory. ClickHouse stamps every row with
`inserted_at` when the insert lands, so `inserted_at - event_time` is each event's
produce → queryable latency; the script prints p50/p90/p99/max over all events. Target at
5k events/s: p99 ≤ 2 s. Baseline in the same run: the sink's own batch wait
(CLAWSTREAM_SINK_BATCH_SECONDS), the floor any batching sink adds.

    .venv/bin/python bench/bench_e2e.py --rate 5000 --seconds 20
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clawstream.admin import create_topics, delete_topics  # noqa: E402
from clawstream.settings import Settings, get_settings  # noqa: E402
from consumers import clickhouse as ch  # noqa: E402
from schemas.topics import TOPICS  # noqa: E402


def wait_serving(settings: Settings, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the sink exited early; see its log")
        if ch.find_owner(settings)[0] == "serving":
            return
        time.sleep(0.2)
    raise SystemExit("the sink did not open chdb in time")


def emit_steadily(settings: Settings, rate: float, seconds: float, agents: int) -> int:
    from producers.sdk import AgentClient, Transport

    transport = Transport(settings)
    clients = [AgentClient(settings, f"e2e-{i:03d}", transport=transport) for i in range(agents)]
    sent, t0 = 0, time.monotonic()
    total = int(rate * seconds)
    while sent < total:
        c = clients[sent % agents]
        action = c.emit("action", {"app": "bench", "kind": "click",
                                   "target": {"label": "OK"}, "executor": "bench"})
        c.emit("outcome", {"action_id": action, "app": "bench", "action_kind": "click",
                           "status": "success", "duration_ms": 12.5, "executor": "bench"},
               parent_id=action)
        sent += 2
        ahead = sent / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
    for c in clients:
        c.flush(30)
    for c in clients:
        c.close(timeout=5)
    transport.close(timeout=5)
    return sent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=5000.0, help="events per second")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--agents", type=int, default=20)
    args = ap.parse_args()

    base = get_settings()
    ns = f"e2e{uuid.uuid4().hex[:8]}."
    tmp = Path(tempfile.mkdtemp(prefix="clawstream-e2e-"))
    env = {**os.environ, "CLAWSTREAM_TOPIC_NAMESPACE": ns, "CLAWSTREAM_DATA_DIR": str(tmp),
           "CLAWSTREAM_SINK_GROUP": f"sink-{ns}", "CLAWSTREAM_CHDB_ENDPOINT_PORT": "0",
           "CLAWSTREAM_SINK_METRICS_PORT": "0"}
    settings = base.model_copy(update={"topic_namespace": ns, "data_dir": tmp,
                                       "sink_group": f"sink-{ns}", "chdb_endpoint_port": 0})
    create_topics(settings.bootstrap_servers, namespace=ns)
    log = tmp / "sink.log"
    with log.open("ab") as out:
        sink = subprocess.Popen([sys.executable, "-m", "clawstream.cli", "sink"], env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                cwd=ROOT, start_new_session=True)
    try:
        wait_serving(settings, sink)
        time.sleep(3)  # partitions assigned
        sent = emit_steadily(settings, args.rate, args.seconds, args.agents)
        deadline = time.monotonic() + 60
        landed = 0
        while time.monotonic() < deadline:
            landed = ch.query(settings, "SELECT count() FROM events WHERE startsWith("
                              "agent_id, 'e2e-')").rows[0][0]
            if landed >= sent:
                break
            time.sleep(0.5)
        row = ch.query(settings, """
            SELECT count(),
                   quantile(0.5)(d), quantile(0.9)(d), quantile(0.99)(d), max(d)
            FROM (SELECT dateDiff('millisecond', event_time, inserted_at) AS d FROM actions
                  UNION ALL
                  SELECT dateDiff('millisecond', event_time, inserted_at) AS d FROM outcomes)
        """).rows[0]
    finally:
        sink.terminate()
        sink.wait(30)
        delete_topics(settings.bootstrap_servers, [ns + t for t in TOPICS])
    n, p50, p90, p99, mx = row
    print(f"end to end at {args.rate:,.0f} events/s for {args.seconds:.0f} s: sent {sent:,}, "
          f"queryable {landed:,}")
    print(f"produce -> queryable latency: p50 {p50:.0f} ms, p90 {p90:.0f} ms, "
          f"p99 {p99:.0f} ms, max {mx:.0f} ms over {n:,} rows (target p99 <= 2000 ms)")
    print(f"baseline: the sink's batch wait alone is {base.sink_batch_seconds * 1000:.0f} ms; "
          f"p99 / batch wait = {p99 / (base.sink_batch_seconds * 1000):.1f}x")


if __name__ == "__main__":
    main()
