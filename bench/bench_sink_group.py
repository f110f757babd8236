"""Two sinks in one group on the embedded engine against one sink: drain throughput.

Each round runs in a fresh namespace and chdb directory on the running broker: the sinks
(`clawstream sink` processes: one, or the owner and a guest that inserts through the owner's
endpoint) start and join their group, then `--events` sample events are produced (keyed by
agent, so every partition) in one Kafka transaction, which the sinks (reading committed data
only: CLAWSTREAM_PROCESSING_GUARANTEE=exactly_once) see at its commit, all at once; the round
ends when ClickHouse holds them all. Throughput is events over the time from the commit to
the last row's `inserted_at` (so producing, slow on a loaded machine, is not counted). Rounds
alternate, one sink first: the one-sink rounds are the baseline of the same run. Prints each
round, the guest's share of the messages, and the ratio two / one.

    .venv/bin/python bench/bench_sink_group.py --events 60000 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import sink_helpers  # noqa: E402
from ports import free_ports  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from clawstream.admin import create_topics, delete_namespace  # noqa: E402
from clawstream.settings import Settings, get_settings  # noqa: E402
from consumers import clickhouse as ch  # noqa: E402


def metric(port: int, name: str) -> float:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    except OSError:
        return 0.0
    return sum(s.value for f in text_string_to_metric_families(text.decode())
               for s in f.samples if s.name == name)


def wait(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.2)


def produce_in_one_transaction(settings: Settings,
                               events: list[tuple[str, str, str, bytes]]) -> float:
    """Send the events in one transaction; the time of its commit (epoch seconds)."""
    p = sink_helpers.producer(settings, **{"transactional.id": f"bench-{uuid.uuid4().hex}"})
    p.init_transactions(30)
    p.begin_transaction()
    sink_helpers.send(p, settings, events)
    p.flush(120)
    p.commit_transaction(60)
    return time.time()


def one_round(base: Settings, sinks: int, events: list[tuple[str, str, str, bytes]]
              ) -> tuple[float, float]:
    """(events/s, share of the messages the guest read) of one round with `sinks` sinks."""
    ns = f"sg{uuid.uuid4().hex[:8]}."
    tmp = Path(tempfile.mkdtemp(prefix="clawstream-sinkgroup-"))
    settings = base.model_copy(update={"topic_namespace": ns, "data_dir": tmp,
                                       "sink_group": f"{ns}clawstream-sink",
                                       "clickhouse_database": f"{ns[:-1]}_clawstream",
                                       "chdb_endpoint_port": 0})
    create_topics(settings.bootstrap_servers, namespace=ns)
    ports = free_ports(sinks)
    procs = []
    try:
        for i, port in enumerate(ports):
            env = {**os.environ, "CLAWSTREAM_TOPIC_NAMESPACE": ns, "CLAWSTREAM_DATA_DIR": str(tmp),
                   "CLAWSTREAM_PROCESSING_GUARANTEE": "exactly_once",
                   "CLAWSTREAM_CHDB_ENDPOINT_PORT": "0", "CLAWSTREAM_SINK_METRICS_PORT": str(port)}
            with (tmp / f"sink-{i}.log").open("ab") as out:
                procs.append(subprocess.Popen([sys.executable, "-m", "clawstream.cli", "sink"],
                                              env=env, stdout=out, stderr=subprocess.STDOUT,
                                              cwd=ROOT, start_new_session=True))
            wait(lambda port=port: metric(port, "clawstream_sink_assigned_partitions") > 0,
                 120, f"sink {i} to join")
        total = 72.0
        wait(lambda: sum(metric(p, "clawstream_sink_assigned_partitions") for p in ports)
             == total and all(metric(p, "clawstream_sink_assigned_partitions") > 0
                              for p in ports), 120, "the group to settle")
        committed = produce_in_one_transaction(settings, events)
        wait(lambda: ch.query(settings, "SELECT count() FROM events").rows[0][0] >= len(events),
             600, "every event in ClickHouse")
        last = ch.query(settings, "SELECT toUnixTimestamp64Milli(max(inserted_at)) "
                        "FROM events").rows[0][0]
        read = [metric(p, "clawstream_sink_messages_total") for p in ports]
        return (len(events) / max(last / 1000 - committed, 1e-3),
                read[1] / sum(read) if sinks > 1 else 0)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(60)
        delete_namespace(settings.bootstrap_servers, ns)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    base = get_settings()
    events = sink_helpers.encoded_events(24, args.events // 24, seed=3)
    one, two, shares = [], [], []
    for r in range(args.rounds):
        rate, _ = one_round(base, 1, events)
        one.append(rate)
        print(f"round {r + 1}: one sink   {rate:10,.0f} events/s", flush=True)
        rate, share = one_round(base, 2, events)
        two.append(rate)
        shares.append(share)
        print(f"round {r + 1}: two sinks  {rate:10,.0f} events/s (the guest read {share:.0%})",
              flush=True)
    print(f"{len(events):,} events, medians: one sink {statistics.median(one):,.0f}/s, "
          f"owner + guest {statistics.median(two):,.0f}/s -> two / one = "
          f"{statistics.median(two) / statistics.median(one):.2f}x")


if __name__ == "__main__":
    main()
