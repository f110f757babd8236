"""Windowed aggregation: one worker's events/s against a raw confluent-kafka loop, and the time
from a window's close to its row being queryable in ClickHouse.

1. Throughput. Pre-loads N events (the fleet's type mix, sample bodies, event times in order
   across agents) into a fresh topic namespace, then
   - raw: a confluent-kafka consumer loop in this process decodes them with schemas.serde and
     runs the very same pure `PartitionPipeline` per partition (windows 10 s / 60 s / 300-60 s,
     correlation, sessions; aggregates encoded to Avro, not produced);
   - worker: `clawstream worker` (windows, correlation, sessions only) drains the same topics
     with its own consumer group; its rate is measured from the group's first offset commit to
     the commit of the last event (commit interval 1 s).
   Targets: >= 20k events/s per worker and >= 0.2x the raw loop.
   With --guarantees the worker drains the same events twice, each time in a group of its
   own: at-least-once, then exactly-once (outputs, state and offsets in Kafka transactions),
   and the ratio of the two is printed.
2. Close-to-queryable latency. A worker and `clawstream sink` run; agents emit live (event
   time = now) for a while; for every 10 s window row in ClickHouse, inserted_at minus the
   wall time at which the watermark passed the window's end (window_end + lateness, since
   event time is the wall clock here). Target: <= lateness + 1 s from the window's end, i.e.
   <= 1 s after the watermark passes it.

    .venv/bin/python bench/bench_windows.py --events 600000 --live-seconds 40
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clawstream.admin import create_topics, delete_topics  # noqa: E402
from clawstream.kafka.config import client_config  # noqa: E402
from clawstream.runtime import tune_gc  # noqa: E402
from clawstream.settings import Settings  # noqa: E402
from schemas.registry import contract  # noqa: E402
from schemas.samples import sample  # noqa: E402
from schemas.serde import DecodeError, Serde  # noqa: E402
from schemas.topics import EVENT_TOPICS  # noqa: E402
from streams.app import input_group  # noqa: E402
from streams.windowing import (  # noqa: E402
    Event,
    LostOutcome,
    Output,
    SessionClosed,
    WindowClosed,
    build_pipeline,
)

TYPES = ("frame", "detection", "plan", "action", "outcome", "heartbeat")
WEIGHTS = (2, 2, 1, 4, 4, 1)
MODULES = "streams.event_time"


def build_events(n: int, agents: int, base_ms: int, seed: int = 3,
                 ms_per_event: float = 1.0) -> list[tuple[str, str, bytes]]:
    """(topic, agent, bytes): 2,000 sample bodies per type, re-stamped in time order."""
    rng = random.Random(seed)
    serde = Serde()
    bodies = {et: [sample(et, rng) for _ in range(2000)] for et in TYPES}
    types = rng.choices(TYPES, WEIGHTS, k=n)
    out = []
    c = contract()
    last_action: dict[int, dict] = {}  # agent -> its last action not yet answered
    for i, et in enumerate(types):
        a = i % agents
        rec = bodies[et][i % 2000]
        env = rec["envelope"]
        env["event_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if et == "action":
            last_action[a] = rec
        elif et == "outcome" and a in last_action:  # answers the agent's last action
            act = last_action.pop(a)
            rec["action_id"] = env["parent_id"] = act["envelope"]["event_id"]
            rec["app"], rec["action_kind"] = act["app"], act["kind"]
        env["agent_id"] = f"agent-{a:03d}"
        env["seq"] = i
        env["event_time"] = base_ms + int(i * ms_per_event)
        out.append((c.get(et).topic, env["agent_id"], serde.encode(et, rec)))
    return out


def producer(settings: Settings) -> Producer:
    return Producer(client_config(settings, "tool", "producer", {"linger.ms": 20,
                     "partitioner": "murmur2_random", "compression.type": "lz4",
                     "queue.buffering.max.messages": 1_000_000,
                     "queue.buffering.max.kbytes": 2_000_000}))


def preload(settings: Settings, events: list[tuple[str, str, bytes]]) -> None:
    p = producer(settings)
    for topic, agent, value in events:
        while True:
            try:
                p.produce(settings.topic(topic), key=agent.encode(), value=value)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(120) == 0


def partitions(settings: Settings) -> list[TopicPartition]:
    c = Consumer(client_config(settings, "tool", "consumer", {"group.id": "bench-md"}))
    tps = []
    for t in EVENT_TOPICS:
        name = settings.topic(t)
        md = c.list_topics(name, timeout=10)
        tps += [TopicPartition(name, p) for p in md.topics[name].partitions]
    highs = {(tp.topic, tp.partition): c.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
    c.close()
    return [TopicPartition(tp.topic, tp.partition, 0) for tp in tps
            if highs[(tp.topic, tp.partition)] > 0] or tps


def raw_loop(settings: Settings, n: int) -> tuple[float, int]:
    """confluent-kafka consume + serde decode + the same pure pipeline; (events/s, outputs).

    With the worker's garbage-collector setting, so the baseline is as tuned as the worker."""
    tune_gc(settings.worker_gc_threshold)
    serde = Serde()
    logical = {settings.topic(t): t for t in EVENT_TOPICS}
    c = Consumer(client_config(settings, "tool", "consumer", {
                               "group.id": f"bench-raw-{uuid.uuid4()}", "enable.auto.commit": False,
                  "fetch.max.bytes": 52_428_800}))
    tps = partitions(settings)
    highs = {}
    for tp in tps:
        highs[(tp.topic, tp.partition)] = c.get_watermark_offsets(tp, timeout=10)[1]
    c.assign(tps)
    pipelines = {}
    done = 0
    outputs = 0
    start = None
    while done < n:
        msgs = c.consume(5000, 1.0)
        if not msgs:
            continue
        if start is None:
            start = time.perf_counter()
        touched = set()
        now_ms = int(time.time() * 1000)
        for m in msgs:
            if m.error():
                continue
            p = m.partition()
            pl = pipelines.get(p)
            if pl is None:
                pl = pipelines[p] = build_pipeline(settings)
            touched.add(p)
            src = logical[m.topic()]
            try:
                d = serde.decode(m.value())
            except DecodeError:
                pl.clock.skip(src, m.offset())
                continue
            ts_type, ts = m.timestamp()
            outs = pl.process(Event(d.schema.event_type, d.record, src, m.offset(),
                                    raw=m.value(), key=m.key(),
                                    arrival=min(ts, now_ms) if ts_type else None))
            outputs += _encode(serde, outs)
            done += 1
        for p in touched:
            pl = pipelines[p]
            lag = {}
            for t, lg in logical.items():
                mark = pl.clock.sources.get(lg)
                lag[lg] = highs.get((t, p), 0) > (mark.offset + 1 if mark else 0)
            outputs += _encode(serde, pl.advance(lag))
            pl.take_dirty()
    elapsed = time.perf_counter() - (start or time.perf_counter())
    c.close()
    return n / elapsed, outputs


def _encode(serde: Serde, outs: list[Output]) -> int:
    for o in outs:
        if isinstance(o, WindowClosed | SessionClosed | LostOutcome):
            serde.encode(o.kind, o.value)
    return len(outs)


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as f:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def committed_total(c: Consumer, tps: list[TopicPartition]) -> int:
    got = c.committed([TopicPartition(tp.topic, tp.partition) for tp in tps], timeout=10)
    return sum(max(tp.offset, 0) for tp in got)


def worker_rate(settings: Settings, env: dict[str, str], n: int, log: Path) -> float:
    """Events/s of one `clawstream worker` from its first to its last offset commit."""
    tps = partitions(settings)
    c = Consumer(client_config(settings, "tool", "consumer", {
                               "group.id": input_group(settings), "enable.auto.commit": False}))
    proc = start([sys.executable, "-m", "clawstream.cli", "worker", "--modules", MODULES],
                 env, log)
    try:
        t_first = first_total = None
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            total = committed_total(c, tps)
            now = time.perf_counter()
            if t_first is None and total > 0:
                t_first, first_total = now, total
            if total >= n:
                assert t_first is not None and first_total is not None
                return (total - first_total) / max(now - t_first, 1e-9)
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited, see {log}")
            time.sleep(0.2)
        raise RuntimeError(f"worker did not finish in time, see {log}")
    finally:
        c.close()
        stop(proc)


def live_latency(settings: Settings, env: dict[str, str], seconds: float, rate: int,
                 agents: int, logdir: Path) -> tuple[list[float], list[float]]:
    """Seconds from the watermark passing each 10 s window's end to its aggregate on Kafka,
    and to its row in ClickHouse."""
    from consumers import clickhouse as ch

    worker = start([sys.executable, "-m", "clawstream.cli", "worker", "--modules", MODULES],
                   env, logdir / "live-worker.log")
    sink = start([sys.executable, "-m", "clawstream.cli", "sink"], env, logdir / "sink.log")
    serde = Serde()
    rng = random.Random(9)
    bodies = {et: [sample(et, rng) for _ in range(200)] for et in TYPES}
    p = producer(settings)
    c = contract()
    lateness_ms = settings.window_lateness_s * 1000
    try:
        time.sleep(8)  # let both join their groups
        t_start = time.time()
        t_end = t_start + seconds
        i = 0
        while time.time() < t_end:
            tick = time.time()
            for _ in range(rate // 20):
                et = rng.choices(TYPES, WEIGHTS)[0]
                rec = bodies[et][i % 200]
                env_ = rec["envelope"]
                env_["event_id"] = str(uuid.uuid4())
                env_["agent_id"] = f"agent-{i % agents:03d}"
                env_["event_time"] = int(time.time() * 1000)
                p.produce(settings.topic(c.get(et).topic), key=env_["agent_id"].encode(),
                          value=serde.encode(et, rec))
                i += 1
            p.poll(0)
            time.sleep(max(0.0, 0.05 - (time.time() - tick)))
        p.flush(30)
        time.sleep(lateness_ms / 1000 + 5)
        rows = ch.query(settings, """
            SELECT toUnixTimestamp64Milli(window_end), toUnixTimestamp64Milli(inserted_at)
            FROM window_aggregates
            WHERE window_size_ms = 10000 AND scope_agent != '*'
              AND window_start >= fromUnixTimestamp64Milli({start:Int64})""",
            {"start": int(t_start * 1000)}).rows
        on_kafka = []
        c2 = Consumer(client_config(settings, "tool", "consumer", {
                                    "group.id": f"bench-lat-{uuid.uuid4()}",
                                    "enable.auto.commit": False}))
        topic = settings.topic("claw.aggregates.v1")
        md = c2.list_topics(topic, timeout=10)
        c2.assign([TopicPartition(topic, p, 0) for p in md.topics[topic].partitions])
        while True:
            msgs = c2.consume(1000, 2.0)
            if not msgs:
                break
            for m in msgs:
                if m.error():
                    continue
                r = serde.decode(m.value()).record
                if (r["window_size_ms"] == 10_000 and r["scope_agent"] != "*"
                        and r["window_start"] >= t_start * 1000):
                    on_kafka.append((m.timestamp()[1] - (r["window_end"] + lateness_ms)) / 1000)
        c2.close()
    finally:
        stop(sink)
        stop(worker)
    return on_kafka, [(ins - (end + lateness_ms)) / 1000 for end, ins in rows]


def throughput(settings: Settings, env: dict[str, str], args: argparse.Namespace,
               tmp: Path) -> None:
    base = 1_767_225_600_000
    events = build_events(args.events, args.agents, base)
    t = time.perf_counter()
    preload(settings, events)
    print(f"preloaded {len(events):,} events in {time.perf_counter() - t:.1f} s "
          f"(event time span {args.events / 1000:.0f} s, {args.agents} agents)")
    del events
    raw, outputs = raw_loop(settings, args.events)
    print(f"raw confluent-kafka loop, same pure pipeline: {raw:>10,.0f} events/s "
          f"({outputs:,} outputs)")
    if args.guarantees:
        rates = {}
        for g in ("at_least_once", "exactly_once"):
            app_id = f"{env['CLAWSTREAM_WORKER_APP_ID']}-{g.replace('_', '-')}"
            rates[g] = worker_rate(
                settings.model_copy(update={"worker_app_id": app_id}),
                {**env, "CLAWSTREAM_PROCESSING_GUARANTEE": g, "CLAWSTREAM_WORKER_APP_ID": app_id},
                args.events, tmp / f"worker-{g}.log")
            print(f"clawstream worker, {g + ':':<15}          {rates[g]:>10,.0f} events/s "
                  f"({rates[g] / raw:.2f}x raw)")
        print(f"ratio exactly-once / at-least-once: "
              f"{rates['exactly_once'] / rates['at_least_once']:.2f}x")
        return
    w = worker_rate(settings, env, args.events, tmp / "worker.log")
    print(f"clawstream worker (1 process):               {w:>10,.0f} events/s")
    print(f"ratio worker / raw: {w / raw:.2f}x   (targets: >= 20,000 events/s, >= 0.2x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--agents", type=int, default=50)
    ap.add_argument("--live-seconds", type=float, default=40.0)
    ap.add_argument("--live-rate", type=int, default=2_000, help="events/s while live")
    ap.add_argument("--skip-live", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--guarantees", action="store_true",
                    help="throughput at-least-once vs exactly-once (two worker runs)")
    args = ap.parse_args()

    ns = f"benchw{uuid.uuid4().hex[:6]}."
    tmp = Path(tempfile.mkdtemp(prefix="bench-windows-"))
    env = {**os.environ, "CLAWSTREAM_TOPIC_NAMESPACE": ns, "CLAWSTREAM_DATA_DIR": str(tmp),
           "CLAWSTREAM_WORKER_APP_ID": f"bench-{ns.rstrip('.')}",
           "CLAWSTREAM_SINK_GROUP": f"bench-sink-{ns}", "CLAWSTREAM_WORKER_METRICS_PORT": "0",
           "CLAWSTREAM_SINK_METRICS_PORT": "0", "CLAWSTREAM_CHDB_ENDPOINT_PORT": "0"}
    os.environ.update({k: v for k, v in env.items() if k.startswith("CLAWSTREAM_")})
    settings = Settings()
    create_topics(settings.bootstrap_servers, namespace=ns)
    try:
        if not args.skip_throughput:
            throughput(settings, env, args, tmp)
        if not args.skip_live:
            kafka_lat, lat = live_latency(settings, env, args.live_seconds, args.live_rate, 20,
                                          tmp)
            if kafka_lat:
                kafka_lat.sort()
                print(f"watermark passes window end -> aggregate on Kafka: p50 "
                      f"{kafka_lat[len(kafka_lat) // 2]:.2f} s, max {kafka_lat[-1]:.2f} s")
            if lat:
                lat.sort()
                q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))]  # noqa: E731
                lateness = settings.window_lateness_s
                print(f"watermark passes window end -> row queryable in ClickHouse, "
                      f"{len(lat)} windows: p50 {q(0.5):.2f} s, p95 {q(0.95):.2f} s, "
                      f"max {lat[-1]:.2f} s, mean {statistics.mean(lat):.2f} s")
                print(f"window end -> queryable: p50 {q(0.5) + lateness:.2f} s, "
                      f"max {lat[-1] + lateness:.2f} s (target <= lateness + 1 s = "
                      f"{lateness + 1:.0f} s)")
            else:
                print("no live windows landed in ClickHouse (see logs in", tmp, ")")
    finally:
        delete_topics(settings.bootstrap_servers,
                      [settings.topic(t) for t in EVENT_TOPICS])
    print("logs:", tmp)


if __name__ == "__main__":
    main()
