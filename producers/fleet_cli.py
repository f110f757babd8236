"""`clawstream fleet`: run a synthetic fleet through the real SDK into Kafka.

All agents share one producer (one `Transport`) but each has its own AgentClient (own seq,
own spool). Prints what was sent per event type; exits non-zero if anything was not
delivered (rejected, or still waiting in a spool because the broker is away).
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from datetime import datetime

import click

from clawstream.settings import get_settings
from producers.fleet import DEFAULT_APPS, FleetConfig, agent_ids, generate_fleet

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


def run_fleet(cfg: FleetConfig, *, rate: float = 0.0, progress: bool = True,
              flush_timeout: float = 60.0) -> dict[str, Counter[str]]:
    """Emit the fleet; returns counters per type: sent, delivered, spooled, failed, pending."""
    from producers.sdk import AgentClient, Transport

    settings = get_settings()
    transport = Transport(settings)
    clients = {a: AgentClient(settings, a, transport=transport) for a in agent_ids(cfg)}
    sent: Counter[str] = Counter()
    total = cfg.agents * cfg.events_per_agent
    t0 = time.monotonic()
    try:
        with _progress(progress, total) as advance:
            for n, ev in enumerate(generate_fleet(cfg), 1):
                client = clients[ev.agent_id]
                if ev.image is not None:
                    client.blobs.put(ev.image, ev.body["image_sha256"])
                client.emit(ev.event_type, ev.body, parent_id=ev.parent_id,
                            event_time=ev.event_time, session_id=ev.session_id,
                            event_id=ev.event_id)
                sent[ev.event_type] += 1
                if n % 500 == 0:
                    advance(500)
                    if rate > 0:
                        ahead = n / rate - (time.monotonic() - t0)
                        if ahead > 0:
                            time.sleep(ahead)
            advance(total % 500)
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

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.total = total

    def __enter__(self):  # type: ignore[no-untyped-def]
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


def _state_hook(replicas: int) -> object:
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
) -> FleetConfig:
    """The FleetConfig `clawstream fleet` runs with these options. Build a fresh one for each
    use: the CRDT hook keeps state, so `expected_counts(build_config(...))` gives exactly the
    per-type counts the same command line sends."""
    return FleetConfig(
        agents=agents, events_per_agent=events_per_agent, seed=seed,
        failure_rate=failure_rate, apps=apps, agent_prefix=agent_prefix,
        state_delta_hook=_state_hook(state_replicas),  # type: ignore[arg-type]
        start_time_ms=int(time.time() * 1000) if start_time_ms is None else start_time_ms,
    )


@click.command("fleet")
@click.option("--agents", type=int, default=10, show_default=True, help="Number of agents.")
@click.option("--events-per-agent", type=int, default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True,
              help="Same seed, same events (ids included).")
@click.option("--rate", type=float, default=0.0, show_default=True,
              help="Events per second for the whole fleet (0 = as fast as possible).")
@click.option("--failure-rate", type=float, default=0.05, show_default=True,
              help="Base outcome failure rate, scaled per app and action kind.")
@click.option("--apps", default=",".join(DEFAULT_APPS), show_default=True,
              help="Comma separated apps the agents work in.")
@click.option("--start-time", default=None,
              help="Event time of the first events (ISO-8601 with zone, or epoch); "
                   "default: now.")
@click.option("--agent-prefix", default="agent", show_default=True)
@click.option("--flush-timeout", type=float, default=60.0, show_default=True)
@click.option("--metrics/--no-metrics", default=False,
              help="Serve the SDK's /metrics on CLAWSTREAM_SDK_METRICS_PORT while running.")
@click.option("--progress/--no-progress", default=True)
@click.option("--state-replicas", type=int, default=2, show_default=True,
              help="Replicas per agent keeping CRDT state (state_delta events); 0 = none.")
def fleet(agents: int, events_per_agent: int, seed: int, rate: float, failure_rate: float,
          apps: str, start_time: str | None, agent_prefix: str, flush_timeout: float,
          metrics: bool, progress: bool, state_replicas: int) -> None:
    """Simulate N agents emitting causally linked events through the SDK."""
    from rich.console import Console
    from rich.table import Table

    cfg = build_config(
        agents=agents, events_per_agent=events_per_agent, seed=seed,
        failure_rate=failure_rate, apps=tuple(a.strip() for a in apps.split(",") if a.strip()),
        start_time_ms=parse_time(start_time), agent_prefix=agent_prefix,
        state_replicas=state_replicas,
    )
    if metrics:
        from producers.sdk import serve_sdk_metrics

        serve_sdk_metrics(get_settings())
    t0 = time.monotonic()
    result = run_fleet(cfg, rate=rate, progress=progress, flush_timeout=flush_timeout)
    dt = time.monotonic() - t0
    console = Console(stderr=False)
    table = Table(title=f"fleet: {agents} agents x {events_per_agent} events, seed {seed}")
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
                      f"(kept in the spool under {get_settings().data_dir}/spool)[/red]")
        sys.exit(1)
