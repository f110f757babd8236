"""SDK throughput: events/s encoded and produced through AgentClient, versus raw
confluent-kafka produce of the same pre-encoded bytes, in the same run (same broker, same
producer settings). Targets: >= 100k events/s and >= 0.5x raw.

    .venv/bin/python bench/bench_sdk.py [--events 200000] [--rounds 2] [--bootstrap HOST:PORT]

Each figure counts until every event is acknowledged by the broker (flush), not just queued.
Also printed: the CPU time of the emitting thread per event (encode + envelope + produce call),
which other work on a loaded machine disturbs far less than the wall-clock rates.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from clawstream.admin import create_topics, delete_topics
from producers.sdk import AgentClient, producer_config
from producers.settings import SdkSettings, sdk_settings
from schemas.topics import ACTIONS, OUTCOMES, PLANS

KINDS = ["click", "double_click", "type", "hotkey", "scroll"]
APPS = ["notepad", "browser", "mail", "sheets"]


def bodies(n: int, seed: int = 7) -> list[tuple[str, dict[str, Any], str | None]]:
    """n (event_type, body, parent_id) alternating action/outcome, like an executor emits."""
    rng = random.Random(seed)
    out: list[tuple[str, dict[str, Any], str | None]] = []
    plan_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    for i in range(n // 2):
        kind = rng.choice(KINDS)
        app = rng.choice(APPS)
        out.append(("action", {
            "app": app, "plan_id": plan_id, "step_index": i % 8, "kind": kind,
            "target": {"label": f"Button {i % 50}", "element_id": f"e{i % 50}",
                       "element_kind": "button", "x": rng.randrange(1280),
                       "y": rng.randrange(800), "bbox": None},
            "params": {"text": "hello"} if kind == "type" else {},
            "executor": "pyautogui"}, plan_id))
        action_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        out.append(("outcome", {
            "action_id": action_id, "app": app, "action_kind": kind,
            "status": "success" if rng.random() > 0.05 else "failure",
            "duration_ms": rng.lognormvariate(4, 0.5), "error": None, "error_kind": None,
            "verification": None, "executor": "pyautogui"}, action_id))
    return out


def run_sdk(settings: SdkSettings, events: list[tuple[str, dict[str, Any], str | None]],
            agent: str) -> tuple[float, float, dict[str, Any]]:
    """(wall seconds until acknowledged, emitting thread's CPU seconds, stats)."""
    with AgentClient(settings, agent) as client:
        emit = client.emit
        t0, c0 = time.perf_counter(), time.thread_time()
        for event_type, body, parent in events:
            emit(event_type, body, parent_id=parent)
        cpu = time.thread_time() - c0
        left = client.flush(120)
        dt = time.perf_counter() - t0
        stats = client.stats()
    if left:
        raise SystemExit(f"SDK run left {left} events undelivered")
    return dt, cpu, stats


def run_sdk_helpers(settings: SdkSettings, n: int, agent: str) -> float:
    """The typed helpers (what an agent writes), for reference."""
    with AgentClient(settings, agent) as client:
        plan_id = client.plan("bench", ["click OK"], app="notepad")
        t0 = time.perf_counter()
        for i in range(n // 2):
            a = client.action("click", app="notepad", plan_id=plan_id, step_index=i % 8,
                              target="OK", x=10, y=20)
            client.outcome(a, "success", 12.5, app="notepad", action_kind="click")
        left = client.flush(120)
        dt = time.perf_counter() - t0
    if left:
        raise SystemExit(f"SDK helper run left {left} events undelivered")
    return dt


def capture_encoded(
    settings: SdkSettings, events: list[tuple[str, dict[str, Any], str | None]]
) -> list[tuple[str, bytes]]:
    """The exact bytes the SDK produces for `events` (captured, not sent)."""
    captured: list[tuple[str, bytes]] = []
    with AgentClient(settings, "bench-capture") as client:
        client._produce = lambda topic, value, key: captured.append((topic, value))
        for event_type, body, parent in events:
            client.emit(event_type, body, parent_id=parent)
        client.counts.direct_done = client.counts.direct_sent  # nothing was really sent
    assert len(captured) == len(events)
    return captured


def run_raw(settings: SdkSettings, msgs: list[tuple[str, bytes]], key: bytes) -> float:
    conf = producer_config(settings)
    p = Producer(conf)
    p.list_topics(timeout=10)  # connect first, like the SDK's client does on creation
    produce = p.produce
    t0 = time.perf_counter()
    for topic, value in msgs:
        try:
            produce(topic, value, key)
        except BufferError:
            p.poll(0.01)
            produce(topic, value, key)
    left = p.flush(120)
    dt = time.perf_counter() - t0
    if left:
        raise SystemExit(f"raw run left {left} events undelivered")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--bootstrap", default=None)
    args = ap.parse_args()

    base = sdk_settings()
    bootstrap = args.bootstrap or base.bootstrap_servers
    ns = f"bench{uuid.uuid4().hex[:8]}."
    create_topics(bootstrap, namespace=ns, specs=[ACTIONS, OUTCOMES, PLANS])
    tmp = Path(tempfile.mkdtemp(prefix="clawstream-bench-"))
    settings = base.model_copy(update={"bootstrap_servers": bootstrap, "topic_namespace": ns,
                                       "data_dir": tmp})
    events = bodies(args.events)
    msgs = capture_encoded(settings, events)
    mb = sum(len(v) for _, v in msgs) / 1e6
    print(f"{len(events)} Action/Outcome events, {mb:.1f} MB encoded "
          f"({mb * 1e6 / len(events):.0f} B/event), broker {bootstrap}")

    sdk_rates, raw_rates, cpu_us = [], [], []
    for r in range(args.rounds):
        raw_dt = run_raw(settings, msgs, b"bench-agent")
        raw_rates.append(len(msgs) / raw_dt)
        sdk_dt, sdk_cpu, stats = run_sdk(settings, events, f"bench-agent-{r}")
        sdk_rates.append(len(events) / sdk_dt)
        cpu_us.append(sdk_cpu / len(events) * 1e6)
        assert sum(stats["delivered"].values()) == len(events), stats
        print(f"round {r + 1}: raw {raw_rates[-1]:>10,.0f} ev/s   sdk {sdk_rates[-1]:>10,.0f} ev/s"
              f"   ratio {sdk_rates[-1] / raw_rates[-1]:.2f}x")
    helper_n = max(args.events // 2, 2)
    helper_rate = helper_n / run_sdk_helpers(settings, helper_n, "bench-helpers")

    sdk, raw = statistics.median(sdk_rates), statistics.median(raw_rates)
    print()
    print(f"raw confluent-kafka produce (pre-encoded): {raw:>10,.0f} events/s (median)")
    print(f"AgentClient.emit (encode + envelope + produce): {sdk:>10,.0f} events/s (median)")
    print(f"ratio sdk/raw: {sdk / raw:.2f}x   (targets: >= 100,000 events/s, >= 0.5x)")
    print(f"typed helpers action()/outcome(): {helper_rate:>10,.0f} events/s")
    print(f"emitting thread CPU per event: {statistics.median(cpu_us):.2f} µs (median; "
          f"rounds {', '.join(f'{c:.2f}' for c in cpu_us)})")
    try:
        delete_topics(bootstrap, [ns + ACTIONS, ns + OUTCOMES, ns + PLANS])
    except Exception as exc:  # cleanup only
        print(f"(could not delete bench topics: {exc})")


if __name__ == "__main__":
    main()
