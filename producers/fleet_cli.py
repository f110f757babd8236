"""`clawstream fleet`: run a synthetic fleet through the real SDK into Kafka.

All agents share one producer (one `Transport`) but each has its own AgentClient (own seq,
own spool). Prints what was sent per event type; exits non-zero if anything was not
delivered (rejected, or still waiting in a spool because the broker is away).

Two ways to send, because they mean different things for event time:
- real time (`--realtime`): each agent's simulated gaps are waited out on the wall clock
  (divided by `--speedup`), and every event is stamped with the wall clock when it is sent,
  as real agents do: event time stays close to arrival time, so the pipeline's windows see no
  late event unless something really is late.
- compressed (the default): events go out as fast as the SDK takes them (or at `--rate`),
  stamped with the simulation's clock, which covers minutes of event time in seconds and
  ends at the moment the run starts. To a worker reading live that is a replay of history
  at high speed: topics and partitions are read at slightly different paces, and a second of
  difference is minutes of event time, so some events arrive behind the watermark and are
  counted late. Good for throughput and offline tests, not for judging lateness.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import click

from producers.fleet import (
    DEFAULT_APPS,
    FleetConfig,
    agent_ids,
    generate_fleet,
    simulated_span_ms,
)
from producers.settings import SdkSettings, sdk_settings

if TYPE_CHECKING:
    from producers.state import FleetStateHook

log = logging.getLogger(__name__)


def parse_time(value: str | None) -> int | None:
    """Epoch millis from an ISO-8601 string or an epoch (s or ms) number."""
    if value is None:
        return None
    try:
        n = float(value)
        return int(n if n > 1e11 else n * 1000)
    except ValueError:
        pass
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        raise click.BadParameter("give a time zone, e.g. 2026-01-01T00:00:00Z")
    return int(dt.timestamp() * 1000)


class Clock:
    """When each simulated event is sent and the event time it is stamped with."""

    def __init__(self, cfg: FleetConfig, *, realtime: bool, speedup: float, rate: float,
                 skew_ms: dict[str, int]) -> None:
        if speedup <= 0:
            raise ValueError("speedup must be positive")
        self.origin_ms = cfg.start_time_ms
        self.realtime = realtime
        self.speedup = speedup
        self.rate = rate
        self.skew_ms = skew_ms
        self.t0 = time.monotonic()
        self.wall0 = time.time()

    def wait_for(self, ev_time_ms: int, n: int) -> None:
        """Sleep until event number `n` (simulated time `ev_time_ms`) is due."""
        if self.realtime:
            due = (ev_time_ms - self.origin_ms) / 1000 / self.speedup
        elif self.rate > 0 and n % 500 == 0:
            due = n / self.rate
        else:
            return
        ahead = due - (time.monotonic() - self.t0)
        if ahead > 0:
            time.sleep(ahead)

    def stamp(self, agent: str, ev_time_ms: int) -> int:
        """The event time the agent's clock writes: the wall clock now in real time, the
        simulated time otherwise; plus the agent's clock error, if it has one."""
        base = int(time.time() * 1000) if self.realtime else ev_time_ms
        return base + self.skew_ms.get(agent, 0)


def run_fleet(cfg: FleetConfig, *, rate: float = 0.0, realtime: bool = False,
              speedup: float = 1.0, clock_skew_ms: dict[str, int] | None = None,
              progress: bool = True, flush_timeout: float = 60.0,
              settings: SdkSettings | None = None) -> dict[str, Counter[str]]:
    """Emit the fleet; returns counters per type: sent, delivered, spooled, failed, pending.

    `realtime`: pace by the simulated gaps (divided by `speedup`) and stamp the wall clock;
    else as fast as possible (or `rate` events/s) with the simulated times. `clock_skew_ms`:
    agent id -> how far that agent's clock is off (a faulty agent). `settings`: default, the
    environment's (`sdk_settings()`)."""
    from producers.sdk import AgentClient, make_transport

    settings = settings or sdk_settings()
    unknown = set(clock_skew_ms or ()) - set(agent_ids(cfg))
    if unknown:
        raise ValueError(f"clock skew for agents not in the fleet: {sorted(unknown)}")
    clock = Clock(cfg, realtime=realtime, speedup=speedup, rate=rate,
                  skew_ms=dict(clock_skew_ms or {}))
    transport = make_transport(settings)
    clients = {a: AgentClient(settings, a, transport=transport) for a in agent_ids(cfg)}
    sent: Counter[str] = Counter()
    total = None if cfg.duration_ms else cfg.agents * cfg.events_per_agent
    try:
        with _progress(progress, total) as advance:
            n = 0
            for n, ev in enumerate(generate_fleet(cfg), 1):
                clock.wait_for(ev.event_time, n)
                client = clients[ev.agent_id]
                if ev.image is not None:
                    client.blobs.put(ev.image, ev.body["image_sha256"])
                client.emit(ev.event_type, ev.body, parent_id=ev.parent_id,
                            event_time=clock.stamp(ev.agent_id, ev.event_time),
                            session_id=ev.session_id, event_id=ev.event_id)
                sent[ev.event_type] += 1
                if n % 100 == 0:
                    advance(100)
            advance(n % 100)
            deadline = time.monotonic() + flush_timeout
            for client in clients.values():
                client.flush(max(0.0, deadline - time.monotonic()))
    finally:
        result: dict[str, Counter[str]] = {
            "sent": sent, "delivered": Counter(), "spooled": Counter(), "failed": Counter(),
        }
        pending = 0
        for client in clients.values():
            st = client.stats()
            result["delivered"].update(st["delivered"])
            result["delivered"].update(st["replayed"])
            result["spooled"].update(st["spooled"])
            result["failed"].update(st["failed"])
            pending += st["pending"]
        for client in clients.values():
            client.close(timeout=0)
        transport.close(timeout=5)
        result["pending"] = Counter({"*": pending})
    return result


class _progress:
    """A rich progress bar, or nothing."""

    def __init__(self, enabled: bool, total: int | None) -> None:
        self.enabled = enabled
        self.total = total

    def __enter__(self) -> Callable[[int], object]:
        if not self.enabled:
            return lambda n: None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._p = Progress(TextColumn("fleet"), BarColumn(), MofNCompleteColumn(),
                           TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
        self._p.start()
        task = self._p.add_task("events", total=self.total)
        return lambda n: self._p.update(task, advance=n)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._p.stop()


def _state_hook(replicas: int) -> FleetStateHook | None:
    """CRDT state per agent (producers.state, CRDT engineer); None when replicas is 0."""
    if replicas <= 0:
        return None
    from producers.state import FleetStateHook

    return FleetStateHook(replicas=replicas)


def build_config(
    *,
    agents: int,
    events_per_agent: int,
    seed: int = 0,
    failure_rate: float = 0.05,
    apps: tuple[str, ...] = DEFAULT_APPS,
    start_time_ms: int | None = None,
    agent_prefix: str = "agent",
    state_replicas: int = 2,
    duration_s: float | None = None,
    realtime: bool = False,
    linger_s: float = 0.0,
) -> FleetConfig:
    """The FleetConfig `clawstream fleet` runs with these options. Build a fresh one for each
    use: the CRDT hook keeps state, so `expected_counts(build_config(...))` gives exactly the
    per-type counts the same command line sends.

    Without `start_time_ms`, a real-time fleet starts now and a compressed one ends now (its
    simulated span is measured by a dry run), so no event is stamped in the future."""
    def config(start: int) -> FleetConfig:
        return FleetConfig(
            agents=agents, events_per_agent=events_per_agent, seed=seed,
            failure_rate=failure_rate, apps=apps, agent_prefix=agent_prefix,
            state_delta_hook=_state_hook(state_replicas),
            start_time_ms=start,
            duration_ms=None if duration_s is None else round(duration_s * 1000),
            linger_ms=round(linger_s * 1000),
        )

    if start_time_ms is not None:
        return config(start_time_ms)
    now = int(time.time() * 1000)
    if realtime:
        return config(now)
    return config(now - simulated_span_ms(config(now)))


def parse_skews(values: tuple[str, ...], cfg: FleetConfig) -> dict[str, int]:
    """`AGENT=SECONDS` (agent id or index) -> {agent id: skew ms}."""
    out: dict[str, int] = {}
    ids = agent_ids(cfg)
    for value in values:
        agent, sep, seconds = value.partition("=")
        try:
            skew_ms = round(float(seconds) * 1000)
        except ValueError:
            skew_ms = None
        if not sep or skew_ms is None:
            raise click.BadParameter(f"{value!r}: use AGENT=SECONDS, e.g. 3=3600 or "
                                     f"{ids[0]}=-30", param_hint="--clock-skew")
        if agent.isdigit() and int(agent) < len(ids):
            agent = ids[int(agent)]
        if agent not in ids:
            raise click.BadParameter(f"{agent!r} is not an agent of this fleet "
                                     f"({ids[0]} .. {ids[-1]})", param_hint="--clock-skew")
        out[agent] = skew_ms
    return out


@click.command("fleet")
@click.option("--agents", type=int, default=10, show_default=True, help="Number of agents.")
@click.option("--events-per-agent", type=int, default=None,
              help="Events per agent at most [default: 1000, or no limit with --duration].")
@click.option("--duration", "duration_s", type=float, default=None,
              help="Seconds of simulated time each agent works (in real time: wall seconds "
                   "times --speedup).")
@click.option("--linger", "linger_s", type=float, default=0.0, show_default=True,
              help="Seconds of simulated time each agent stays alive after its work, sending "
                   "only heartbeats (as idle agents do: event time moves on, so the last "
                   "windows and episodes close).")
@click.option("--realtime/--compressed", default=False, show_default=True,
              help="Real time: pace each agent by its simulated gaps and stamp events with "
                   "the wall clock when sent, as real agents do (event time close to "
                   "arrival: no late events from the simulator). Compressed: send as fast "
                   "as possible, stamped with a simulated clock that ends now; a worker "
                   "reading live sees minutes of event time per second, so some events "
                   "arrive late. Use real time to judge lateness and window accuracy.")
@click.option("--speedup", type=float, default=1.0, show_default=True,
              help="Real time only: divide every simulated gap by this (event times still "
                   "come from the wall clock).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Same seed, same events (ids included).")
@click.option("--rate", type=float, default=0.0, show_default=True,
              help="Compressed only: events per second for the whole fleet (0 = as fast as "
                   "possible).")
@click.option("--clock-skew", "clock_skews", multiple=True, metavar="AGENT=SECONDS",
              help="A faulty agent whose clock is off by SECONDS (AGENT: id or index; "
                   "repeatable), e.g. --clock-skew 3=3600.")
@click.option("--failure-rate", type=float, default=0.05, show_default=True,
              help="Base outcome failure rate, scaled per app and action kind.")
@click.option("--apps", default=",".join(DEFAULT_APPS), show_default=True,
              help="Comma separated apps the agents work in.")
@click.option("--start-time", default=None,
              help="Simulated time of the first events (ISO-8601 with zone, or epoch); "
                   "default: now in real time, so that the run ends now when compressed.")
@click.option("--agent-prefix", default="agent", show_default=True)
@click.option("--flush-timeout", type=float, default=60.0, show_default=True)
@click.option("--metrics/--no-metrics", default=False,
              help="Serve the SDK's /metrics on CLAWSTREAM_SDK_METRICS_PORT while running.")
@click.option("--progress/--no-progress", default=True)
@click.option("--state-replicas", type=int, default=2, show_default=True,
              help="Replicas per agent keeping CRDT state (state_delta events); 0 = none.")
def fleet(agents: int, events_per_agent: int | None, duration_s: float | None,
          linger_s: float, realtime: bool, speedup: float, seed: int, rate: float,
          clock_skews: tuple[str, ...], failure_rate: float, apps: str,
          start_time: str | None, agent_prefix: str, flush_timeout: float, metrics: bool,
          progress: bool, state_replicas: int) -> None:
    """Simulate N agents emitting causally linked events through the SDK."""
    from rich.console import Console
    from rich.table import Table

    if speedup <= 0:
        raise click.BadParameter("must be positive", param_hint="--speedup")
    if not realtime and speedup != 1.0:
        raise click.UsageError("--speedup applies to --realtime only")
    if realtime and rate:
        raise click.UsageError("--rate applies to --compressed only (real time is paced by "
                               "the simulated gaps)")
    if events_per_agent is None:
        events_per_agent = 1000 if duration_s is None else 1 << 62
    cfg = build_config(
        agents=agents, events_per_agent=events_per_agent, seed=seed,
        failure_rate=failure_rate, apps=tuple(a.strip() for a in apps.split(",") if a.strip()),
        start_time_ms=parse_time(start_time), agent_prefix=agent_prefix,
        state_replicas=state_replicas, duration_s=duration_s, realtime=realtime,
        linger_s=linger_s,
    )
    skews = parse_skews(clock_skews, cfg)
    settings = sdk_settings()
    if metrics:
        from producers.sdk import serve_sdk_metrics

        serve_sdk_metrics(settings)
    t0 = time.monotonic()
    result = run_fleet(cfg, rate=rate, realtime=realtime, speedup=speedup, clock_skew_ms=skews,
                       progress=progress, flush_timeout=flush_timeout, settings=settings)
    dt = time.monotonic() - t0
    console = Console(stderr=False)
    size = (f"{duration_s:g} s" if duration_s is not None
            else f"{events_per_agent} events")
    mode = f"real time x{speedup:g}" if realtime else "compressed"
    table = Table(title=f"fleet: {agents} agents x {size}, seed {seed}, {mode}")
    for col in ("type", "sent", "delivered", "spooled", "failed"):
        table.add_column(col, justify="left" if col == "type" else "right")
    types = sorted(result["sent"])
    for t in types:
        table.add_row(t, *(str(result[k].get(t, 0)) for k in ("sent", "delivered", "spooled",
                                                              "failed")))
    table.add_row("total", *(str(sum(result[k].values())) for k in ("sent", "delivered",
                                                                    "spooled", "failed")))
    console.print(table)
    total = sum(result["sent"].values())
    console.print(f"{total} events in {dt:.1f}s ({total / max(dt, 1e-9):,.0f} events/s)")
    pending = result["pending"]["*"]
    failed = sum(result["failed"].values())
    if failed or pending:
        console.print(f"[red]not delivered: {failed} rejected, {pending} still pending "
                      f"(kept in the spool under {settings.data_dir}/spool)[/red]")
        sys.exit(1)
