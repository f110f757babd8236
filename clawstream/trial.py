"""A trial of the whole pipeline under real conditions, on this machine, with faults.

`clawstream sink` and `clawstream worker` run as subprocesses of the current settings (their
environment is this process's); a fleet sends in real time through the SDK (event time = the
wall clock when sent), while the faults asked for happen: kill -9 of the worker or the sink
(restarted a few seconds later), an agent whose clock runs ahead, undecodable messages
waiting on a topic ahead of the fleet. Then it waits until ClickHouse holds every event sent
and the worker has committed everything, and recounts every closed window from the raw
events (`consumers.analytics.accuracy`). `bench/bench_accuracy.py` and the integration tests
run it; nothing here is simulated but the agents.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clawstream.procs import Subcommand, running
from clawstream.settings import Settings
from schemas.topics import DLQ, EVENT_TOPICS, OUTCOMES, TOPICS, partition_for

CORRELATOR = "clawstream-correlator"


@dataclass(frozen=True)
class TrialConfig:
    agents: int = 20
    duration_s: float = 180.0  # wall seconds of sending
    linger_s: float = 0.0  # then wall seconds of heartbeats only (idle agents)
    speedup: float = 1.0  # simulated gaps divided by this (event time stays the wall clock)
    seed: int = 1
    kill_worker: int = 0  # kill -9 this many times, spread over the run
    kill_sink: int = 0
    restart_after_s: float = 5.0
    skew_s: float = 0.0  # one agent's clock (sharing its partition with others) this far ahead
    garbage: int = 0  # undecodable messages on `garbage_topic` before the fleet starts
    garbage_topic: str = OUTCOMES
    agent_prefix: str = "trial"
    settle_timeout_s: float = 300.0
    workers: int = 1  # `clawstream worker` processes of the one group (kill -9 hits the first)


@dataclass
class TrialResult:
    sent: Counter[str]
    seconds: float
    since_ms: int
    until_ms: int
    skewed_agent: str | None
    faults: list[str] = field(default_factory=list)
    report: Any = None  # consumers.analytics.accuracy.AccuracyReport
    dlq: int = 0
    fleet: dict[str, Counter[str]] = field(default_factory=dict)  # the SDK's own counters

    @property
    def events_per_s(self) -> float:
        return sum(self.sent.values()) / self.seconds if self.seconds else 0.0


class Faults:
    """kill -9 of subcommands at given moments of the run, each restarted a while later."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.t0 = time.monotonic()
        self._threads: list[threading.Thread] = []

    def schedule(self, proc: Subcommand, moments: list[float], restart_after: float) -> None:
        def run() -> None:
            for at in moments:
                time.sleep(max(0.0, at - (time.monotonic() - self.t0)))
                proc.kill9()
                self.log.append(f"{time.monotonic() - self.t0:6.1f}s kill -9 {proc.name}")
                time.sleep(restart_after)
                proc.start()
                self.log.append(f"{time.monotonic() - self.t0:6.1f}s restarted {proc.name}")

        if moments:
            t = threading.Thread(target=run, daemon=True, name=f"faults-{proc.name}")
            t.start()
            self._threads.append(t)

    def call(self, at: float, action: Callable[[], list[str]], name: str = "fault") -> None:
        """Run `action` at moment `at` of the run; the lines it returns join the log."""
        def run() -> None:
            time.sleep(max(0.0, at - (time.monotonic() - self.t0)))
            self.log.extend(action())

        t = threading.Thread(target=run, daemon=True, name=f"faults-{name}")
        t.start()
        self._threads.append(t)

    def join(self) -> None:
        for t in self._threads:
            t.join()


def spread(n: int, duration: float, shift: float) -> list[float]:
    """n moments spread over a run of `duration` s (`shift` in 0..1 keeps kinds apart)."""
    return [duration * (i + 0.25 + 0.5 * shift) / n for i in range(n)] if n else []


def shared_partition_agent(agents: list[str]) -> str:
    """The first agent whose partition holds another agent too (so a fault of its clock
    would show on its neighbours), else the first agent."""
    part = {a: partition_for(a, TOPICS[EVENT_TOPICS[0]].partitions) for a in agents}
    shared = [a for a in agents if sum(1 for b in agents if part[b] == part[a]) > 1]
    return (shared or agents)[0]


def produce_garbage(settings: Settings, topic: str, n: int, seed: int = 7) -> None:
    """n messages of random bytes (no valid Avro framing) on a topic, keyed like agents."""
    from confluent_kafka import Producer

    from clawstream.kafka.config import client_config

    p = Producer(client_config(settings, "tool", "producer", {"linger.ms": 20}))
    rng = random.Random(seed)
    for i in range(n):
        p.produce(settings.topic(topic), key=f"garbage-{i % 97}".encode(),
                  value=bytes([0xFF]) + rng.randbytes(rng.randrange(1, 300)))
        if i % 1000 == 0:
            p.poll(0)
    if p.flush(30):
        raise RuntimeError("garbage not delivered")


def wait_until(what: str, check: Callable[[], object], timeout: float,
               procs: Sequence[Subcommand] = (), interval: float = 1.0) -> object:
    """Poll until `check()` is true; TimeoutError naming what and the last answer."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # (the ClickHouse owner restarting, a table not there yet)
            last = exc
        time.sleep(interval)
    dead = [f"{p.name}: {p.tail(10)}" for p in procs if not p.alive()]
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})"
                       + (f"; stopped: {dead}" if dead else ""))


def run_trial(settings: Settings, cfg: TrialConfig, log_dir: Path,
              progress: Callable[[str], None] = lambda _m: None,
              fault: tuple[float, Callable[[], list[str]]] | None = None) -> TrialResult:
    """Run the trial and recount (see the module doc). `fault`: (moment, action), another
    fault run at that moment of the run (a broker's, say); the fleet's end waits for it."""
    from clawstream.admin import create_topics, group_lag, message_count
    from consumers.analytics.accuracy import verify
    from consumers.clickhouse import find_owner, query
    from producers.fleet import agent_ids
    from producers.fleet_cli import build_config, run_fleet
    from streams.app import input_group

    create_topics(settings.bootstrap_servers, namespace=settings.topic_namespace)
    if cfg.garbage:
        produce_garbage(settings, cfg.garbage_topic, cfg.garbage)
        progress(f"{cfg.garbage} undecodable messages on {cfg.garbage_topic}")
    sink = Subcommand("sink", ["sink"], log_dir / "sink.log")
    workers = [Subcommand(f"worker{'' if i == 0 else i + 1}", ["worker"],
                          log_dir / f"worker{'' if i == 0 else i + 1}.log")
               for i in range(cfg.workers)]
    worker = workers[0]
    procs = [sink, *workers]
    with running(procs):
        if settings.is_embedded_clickhouse:
            wait_until("the sink to serve ClickHouse",
                       lambda: find_owner(settings)[0] == "serving", 60, procs, 0.3)
        fleet = build_config(agents=cfg.agents, events_per_agent=1 << 62, seed=cfg.seed,
                             duration_s=cfg.duration_s * cfg.speedup, realtime=True,
                             agent_prefix=cfg.agent_prefix,
                             linger_s=cfg.linger_s * cfg.speedup)
        skewed = shared_partition_agent(agent_ids(fleet)) if cfg.skew_s else None
        faults = Faults()
        faults.schedule(worker, spread(cfg.kill_worker, cfg.duration_s, 0.0),
                        cfg.restart_after_s)
        faults.schedule(sink, spread(cfg.kill_sink, cfg.duration_s, 1.0), cfg.restart_after_s)
        if fault is not None:
            faults.call(*fault)
        since = int(time.time() * 1000)
        result = run_fleet(fleet, realtime=True, speedup=cfg.speedup, progress=False,
                           clock_skew_ms={skewed: round(cfg.skew_s * 1000)} if skewed else {})
        seconds = time.monotonic() - faults.t0
        faults.join()
        out = TrialResult(result["sent"], seconds, since,
                          int(time.time() * 1000) + round(max(cfg.skew_s, 0) * 1000), skewed,
                          faults.log, fleet=result)
        sent = sum(out.sent.values())
        progress(f"sent {sent} events in {seconds:.0f}s ({out.events_per_s:.1f}/s)")
        if sum(result["failed"].values()) or result["pending"]["*"]:
            raise RuntimeError(f"the fleet did not deliver everything: {result}")

        def landed() -> bool:
            n = query(settings, "SELECT count() FROM events WHERE startsWith(agent_id, "
                      "{p:String}) AND producer != {c:String}",
                      {"p": cfg.agent_prefix, "c": CORRELATOR}).rows[0][0]
            return int(n) >= sent

        wait_until("ClickHouse to hold every event sent", landed, cfg.settle_timeout_s, procs)
        topics = [settings.topic(t) for t in EVENT_TOPICS]
        wait_until("the worker to commit every event", lambda: group_lag(
            settings.bootstrap_servers, input_group(settings), topics) == 0,
            cfg.settle_timeout_s, procs)
        # the last outputs (fleet merge, sink batches) a few seconds after the commit
        time.sleep(settings.window_lateness_s + 3)
        out.report = verify(settings, since_ms=since, until_ms=out.until_ms,
                            agent_prefix=cfg.agent_prefix)
        out.dlq = message_count(settings.bootstrap_servers, settings.topic(DLQ))
    return out
