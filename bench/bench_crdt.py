"""CRDT state-merge benchmark: deltas merged per second, and state size per agent.

Same run, same deltas (StateDelta events from replicas doing random agent work):

1. pure merge loop, in this process: decode (serde) + join (schemas.crdt) only;
2. pure merge loop + snapshot encoding: exactly the per-delta work of the worker
   (StateMerger: decode, join, version, AgentState encode), no Kafka;
3. one real faust worker (`python -m streams.state_merge`) on the real broker: deltas
   pre-produced to a fresh topic namespace; throughput = deltas / (last final snapshot seen -
   first snapshot seen), so worker start-up and recovery are not counted.

Also prints the size of an agent's merged state (the CRDT bundle) and of its AgentState
snapshot, and the mean delta payload. Figures only; nothing is asserted.

    .venv/bin/python bench/bench_crdt.py [--agents 20] [--replicas 3] [--deltas 20000]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clawstream.admin import settings_for  # noqa: E402
from clawstream.kafka.config import client_config  # noqa: E402
from producers.state import AgentStateReplica  # noqa: E402
from schemas.crdt import AgentCRDT  # noqa: E402
from schemas.crdt.snapshot import StateMerger  # noqa: E402
from schemas.envelope import new_envelope  # noqa: E402
from schemas.serde import Serde  # noqa: E402

APPS = ["chrome", "gimp", "terminal", "mail", "sheets"]
LABELS = [f"label-{i}" for i in range(40)]


def workload(agents: int, replicas: int, deltas: int, seed: int) -> list[tuple[bytes, bytes]]:
    """(key, encoded StateDelta) from replicas doing random work, about `deltas` of them."""
    rng = random.Random(seed)
    serde = Serde()
    reps = [AgentStateReplica(f"bench-{a:03d}", f"bench-{a:03d}/r{r}")
            for a in range(agents) for r in range(replicas)]
    out: list[tuple[bytes, bytes]] = []
    seq = 0
    ts = 1_767_225_600_000
    while len(out) < deltas:
        rep = rng.choice(reps)
        for _ in range(rng.randint(1, 4)):
            ts += 1
            op = rng.random()
            if op < 0.4:
                rep.record_action()
            elif op < 0.5:
                rep.spend_error_budget()
            elif op < 0.6:
                rep.set_status(rng.choice(["idle", "running", "degraded"]), ts=ts)
            elif op < 0.7:
                rep.set_task(f"task-{rng.randint(0, 99)}", ts=ts)
            elif op < 0.9:
                rep.learn_element(rng.choice(APPS), rng.choice(LABELS))
            elif op < 0.95:
                rep.forget_element(rng.choice(APPS), rng.choice(LABELS))
            else:
                rep.set_setting(f"s{rng.randint(0, 5)}", str(rng.randint(0, 9)), ts=ts)
        full = rng.random() < 0.01
        for body in rep.delta_bodies(full_state=full):
            seq += 1
            env = new_envelope(rep.agent_id, rep.replica_id, seq, event_time=ts)
            out.append((rep.agent_id.encode(),
                        serde.encode("state_delta", {"envelope": env, **body})))
    return out


def pure_loops(msgs: list[tuple[bytes, bytes]]) -> tuple[float, float, StateMerger]:
    serde = Serde()
    t0 = time.perf_counter()
    states: dict[str, AgentCRDT] = {}
    for _key, value in msgs:
        rec = serde.decode(value).record
        a = rec["envelope"]["agent_id"]
        st = states.get(a)
        if st is None:
            st = states[a] = AgentCRDT()
        st.apply(rec["crdt_type"], rec["key"], rec["payload"])
    join_rate = len(msgs) / (time.perf_counter() - t0)
    merger = StateMerger(serde)
    t0 = time.perf_counter()
    for _key, value in msgs:
        merger.merge(serde.decode(value).record)
    worker_like_rate = len(msgs) / (time.perf_counter() - t0)
    for a, st in states.items():
        assert st == merger.agents[a].state
    return join_rate, worker_like_rate, merger


def worker_run(msgs: list[tuple[bytes, bytes]], merger: StateMerger, timeout: float) -> float:
    from confluent_kafka import Consumer, Producer

    from clawstream.admin import create_topics
    from clawstream.broker import ensure_broker
    from clawstream.settings import Settings
    from schemas.topics import AGENT_STATE, STATE_DELTAS

    base = Settings()
    bootstrap = ensure_broker(base)
    ns = f"bench{uuid.uuid4().hex[:8]}."
    create_topics(bootstrap, namespace=ns)
    data_dir = ROOT / ".data" / "bench" / ns.rstrip(".")
    env = dict(os.environ, CLAWSTREAM_BOOTSTRAP_SERVERS=bootstrap, CLAWSTREAM_TOPIC_NAMESPACE=ns,
               CLAWSTREAM_WORKER_APP_ID=f"bench-{ns.rstrip('.')}",
               CLAWSTREAM_DATA_DIR=str(data_dir), CLAWSTREAM_WORKER_METRICS_PORT="0",
               CLAWSTREAM_LOG_LEVEL="WARNING")
    p = Producer(client_config(settings_for(bootstrap), "tool", "producer", {
                               "linger.ms": 20, "batch.size": 1_000_000,
                  "queue.buffering.max.messages": 1_000_000}))
    topic = ns + STATE_DELTAS
    for key, value in msgs:
        while True:
            try:
                p.produce(topic, key=key, value=value)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0
    final = {a: m.version for a, m in merger.agents.items()}
    c = Consumer(client_config(settings_for(bootstrap), "tool", "consumer", {
                               "group.id": f"bench-watch-{ns}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False}))
    c.subscribe([ns + AGENT_STATE])
    serde = Serde()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = open(data_dir / "worker.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "streams.state_merge"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    first = last = None
    done: set[str] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(done) < len(final) and time.monotonic() < deadline:
            for m in c.consume(1000, 0.2):
                if m.error():
                    continue
                now = time.monotonic()
                first = first or now
                rec = serde.decode(m.value()).record
                a = rec["envelope"]["agent_id"]
                if a in final and rec["version"] == final[a]:
                    done.add(a)
                    last = now
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        c.close()
        log.close()
    if len(done) < len(final) or first is None or last is None:
        raise SystemExit(f"worker did not finish: {len(done)}/{len(final)} agents final; "
                         f"see {data_dir / 'worker.log'}")
    return len(msgs) / max(last - first, 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=20)
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--deltas", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-worker", action="store_true", help="skip the Kafka/faust part")
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()

    msgs = workload(args.agents, args.replicas, args.deltas, args.seed)
    n = len(msgs)
    join_rate, worker_like_rate, merger = pure_loops(msgs)
    serde = Serde()
    payloads = [len(serde.decode(v).record["payload"]) for _, v in msgs[:5000]]
    states = [len(m.state.encode()) for m in merger.agents.values()]
    snaps = [len(m.snapshot) for m in merger.agents.values()]
    print(f"workload: {n} StateDelta events, {args.agents} agents x {args.replicas} replicas")
    print(f"delta payload: mean {statistics.mean(payloads):.0f} B "
          f"(event {statistics.mean(len(v) for _, v in msgs[:5000]):.0f} B)")
    print(f"state per agent (CRDT bundle): mean {statistics.mean(states):,.0f} B, "
          f"max {max(states):,} B; AgentState snapshot mean {statistics.mean(snaps):,.0f} B")
    print(f"pure merge loop (decode + join):                 {join_rate:>10,.0f} deltas/s")
    print(f"pure merge loop + versioned snapshot encode:     {worker_like_rate:>10,.0f} deltas/s")
    if args.no_worker:
        return
    worker_rate = worker_run(msgs, merger, args.timeout)
    print(f"one faust worker (Kafka in, table + snapshots out): {worker_rate:>7,.0f} deltas/s")
    print(f"worker / pure loop with snapshots: {worker_rate / worker_like_rate:.2f}x; "
          f"worker / pure join: {worker_rate / join_rate:.2f}x")


if __name__ == "__main__":
    main()
