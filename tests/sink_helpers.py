"""Producing known event streams for the sink's tests and benchmark.

Uses the fleet simulator when it exists (the real thing), else schemas.samples through a
plain confluent-kafka producer; either way it returns exactly what was sent, per type.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

from confluent_kafka import Producer

from clawstream.kafka.config import client_config
from clawstream.settings import Settings
from schemas.registry import contract
from schemas.samples import sample
from schemas.serde import Serde

RAW_TYPES = ("frame", "detection", "plan", "action", "outcome", "heartbeat", "state_delta")
#: rough shape of an agent's stream: many actions/outcomes, fewer frames and plans
WEIGHTS = (2, 2, 1, 4, 4, 1, 1)


def producer(settings: Settings, **extra: Any) -> Producer:
    return Producer(client_config(settings, "tool", "producer", {
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 500_000,
        "queue.buffering.max.kbytes": 1_000_000,
        **extra}))


def encoded_events(
    agents: int, per_agent: int, seed: int = 7, event_time: int | None = None
) -> list[tuple[str, str, str, bytes]]:
    """(event_type, agent_id, event_id, bytes) for `agents` x `per_agent` sample events."""
    rng = random.Random(seed)
    serde = Serde()
    base = event_time if event_time is not None else int(time.time() * 1000)
    out = []
    for a in range(agents):
        agent = f"agent-{a:03d}"
        session = f"session-{a:03d}"
        for seq in range(per_agent):
            et = rng.choices(RAW_TYPES, WEIGHTS)[0]
            rec = sample(et, rng, agent_id=agent, session_id=session, trace_id=session,
                         seq=seq, event_time=base + seq)
            out.append((et, agent, rec["envelope"]["event_id"], serde.encode(et, rec)))
    return out


def send(p: Producer, settings: Settings,
         events: list[tuple[str, str, str, bytes]]) -> Counter[str]:
    """Hand the events (keyed by agent) to `p` for their namespaced topics, waiting while its
    queue is full; counts per type (delivering them is the caller's flush or commit)."""
    c = contract()
    topics = {et: settings.topic(c.get(et).topic) for et in RAW_TYPES}
    sent: Counter[str] = Counter()
    for et, agent, _eid, value in events:
        while True:
            try:
                p.produce(topics[et], value=value, key=agent.encode())
                break
            except BufferError:
                p.poll(0.05)
        sent[et] += 1
    return sent


def produce(settings: Settings, events: list[tuple[str, str, str, bytes]]) -> Counter[str]:
    """Send the events (keyed by agent) to their namespaced topics; return counts per type."""
    p = producer(settings)
    sent = send(p, settings, events)
    assert p.flush(60) == 0, "producer did not deliver everything"
    return sent


def produce_fleet_or_samples(settings: Settings, agents: int, per_agent: int,
                             seed: int = 7) -> Counter[str]:
    """20 x 1000 style load: the fleet simulator through the SDK when it is there, else
    sample events through a plain producer. Returns what was sent, per type."""
    try:
        from producers.fleet import FleetConfig, expected_counts
        from producers.fleet_cli import run_fleet
    except ImportError:
        return produce(settings, encoded_events(agents, per_agent, seed))
    cfg = FleetConfig(agents=agents, events_per_agent=per_agent, seed=seed,
                      start_time_ms=int(time.time() * 1000))
    result = run_fleet(cfg, progress=False)
    sent = Counter(dict(result["sent"]))
    assert dict(result["delivered"]) == dict(sent), result
    assert dict(sent) == expected_counts(cfg)
    return sent
