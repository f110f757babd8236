"""`clawstream demo`: the whole pipeline end to end on one machine, then a summary.

broker → topics → sink and stream worker (background processes, output to files) → a
simulated fleet through the SDK → wait until ClickHouse holds every event → summary tables.
The background processes are stopped at the end (also on Ctrl-C or an error).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
from rich.console import Console

from clawstream.settings import Settings, get_settings

console = Console()


class Background:
    """A clawstream subcommand running detached, its output in a log file."""

    def __init__(self, name: str, args: list[str], log_dir: Path) -> None:
        self.name = name
        self.log = log_dir / f"demo-{name}.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "clawstream.cli", *args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        if not self.alive():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextlib.contextmanager
def background(procs: list[Background]) -> Iterator[list[Background]]:
    try:
        yield procs
    finally:
        for p in reversed(procs):
            p.stop()


def landed(settings: Settings, agent_prefix: str) -> dict[str, int]:
    """Events per type in ClickHouse for this demo's agents."""
    from consumers.clickhouse import query

    result = query(
        settings,
        "SELECT event_type, count() FROM events WHERE startsWith(agent_id, {p:String}) "
        "GROUP BY event_type",
        {"p": agent_prefix},
    )
    return {str(t): int(n) for t, n in result.rows}


def wait_for_owner(settings: Settings, sink: Background, timeout: float = 60.0) -> None:
    """In embedded mode the sink owns chdb: wait until it serves queries to this process."""
    if not settings.is_embedded_clickhouse:
        return
    from consumers.clickhouse import find_owner

    deadline = time.monotonic() + timeout
    with console.status("waiting for the sink to open ClickHouse"):
        while time.monotonic() < deadline:
            if not sink.alive():
                raise click.ClickException(f"the sink stopped:\n{sink.tail()}")
            if find_owner(settings)[0] == "serving":
                return
            time.sleep(0.3)
    raise click.ClickException(f"the sink did not open ClickHouse in {timeout:.0f}s:\n"
                               f"{sink.tail()}")


def wait_for_sink(settings: Settings, sink: Background, prefix: str, expected: int,
                  timeout: float) -> dict[str, int]:
    """Poll ClickHouse until every sent event is queryable (or the sink dies / time runs out)."""
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    with console.status("waiting for the sink to land every event in ClickHouse") as status:
        while time.monotonic() < deadline:
            if not sink.alive():
                raise click.ClickException(f"the sink stopped:\n{sink.tail()}")
            with contextlib.suppress(Exception):
                counts = landed(settings, prefix)
            have = sum(counts.values())
            status.update(f"ClickHouse holds {have:,} of {expected:,} events")
            if have >= expected:
                return counts
            time.sleep(0.5)
    return counts


STREAM_QUERIES: list[tuple[str, str]] = [
    ("Closed event-time windows (fleet-wide)",
     "SELECT window_kind, intDiv(window_size_ms, 1000) AS size_s, count() AS windows, "
     "sum(total) AS events, round(avg(success_rate), 4) AS avg_success_rate, "
     "round(max(latency_p95_ms), 1) AS max_p95_ms FROM window_aggregates "
     "WHERE scope_agent = '*' GROUP BY window_kind, size_s ORDER BY window_kind, size_s"),
    ("Episodes closed so far (a session closes once the watermark is a gap past its end)",
     "SELECT count() AS sessions, countIf(success) AS successful, "
     "round(if(count() = 0, 0, avg(duration_ms)) / 1000, 1) AS avg_duration_s, "
     "sum(steps) AS steps "
     "FROM sessions WHERE startsWith(agent_id, {p:String})"),
    ("Merged agent state (CRDTs), latest version per agent",
     "SELECT agent_id, version, actions_total, error_budget, status, current_task "
     "FROM agent_state WHERE startsWith(agent_id, {p:String}) ORDER BY agent_id LIMIT 5"),
    ("Alerts raised", "SELECT rule, state, count() AS events FROM alerts "
     "GROUP BY rule, state ORDER BY rule, state"),
]


def show_stream_results(settings: Settings, prefix: str, worker: Background,
                        wait: float = 30.0) -> None:
    """Give the worker a moment to close windows and merge state, then show what it made."""
    from consumers.clickhouse import query
    from consumers.query_cli import render

    deadline = time.monotonic() + wait
    with console.status("waiting for closed windows and merged state"):
        while time.monotonic() < deadline and worker.alive():
            with contextlib.suppress(Exception):
                # fleet-wide windows close last: once every partition's watermark passed them
                windows = query(settings, "SELECT count() FROM window_aggregates "
                                          "WHERE scope_agent = '*'").rows[0][0]
                states = query(settings, "SELECT count() FROM agent_state WHERE "
                               "startsWith(agent_id, {p:String})", {"p": prefix}).rows[0][0]
                if windows and states:
                    break
            time.sleep(1.0)
    if not worker.alive():
        console.print(f"[red]the stream worker stopped:[/red]\n{worker.tail()}")
        return
    for title, statement in STREAM_QUERIES:
        try:
            render(query(settings, statement, {"p": prefix}), "table", title)
        except Exception as exc:  # a missing table must not hide the rest of the demo
            console.print(f"[yellow]{title}: {exc}[/yellow]")


@click.command("demo")
@click.option("--agents", type=int, default=20, show_default=True)
@click.option("--events-per-agent", type=int, default=500, show_default=True)
@click.option("--seed", type=int, default=None,
              help="Fleet seed (default: from the clock, so each run sends new events).")
@click.option("--timeout", type=float, default=180.0, show_default=True,
              help="Longest wait for ClickHouse to hold every event.")
@click.option("--worker/--no-worker", default=True, show_default=True,
              help="Also run the Faust stream worker (windows, correlation, state, alerts).")
def demo(agents: int, events_per_agent: int, seed: int | None, timeout: float,
         worker: bool) -> None:
    """Run the whole pipeline end to end and print what landed in ClickHouse."""
    seed = int(time.time()) % 1_000_000 if seed is None else seed
    from clawstream.admin import create_topics
    from clawstream.broker import ensure_broker
    from consumers.query_cli import CANNED, render
    from producers.fleet_cli import build_config, run_fleet

    settings = get_settings()
    log_dir = settings.data_dir / "logs"
    console.rule("1. Kafka")
    bootstrap = ensure_broker(settings)
    topics = create_topics(bootstrap, namespace=settings.topic_namespace)
    console.print(f"broker {bootstrap}: {len(topics)} topics ready")

    console.rule("2. sink and stream worker")
    procs = [Background("sink", ["sink"], log_dir)]
    if worker:
        procs.append(Background("worker", ["worker"], log_dir))
    with background(procs):
        console.print(f"ClickHouse: {settings.resolved_clickhouse_dsn}; logs in {log_dir}")
        wait_for_owner(settings, procs[0])

        console.rule("3. fleet")
        prefix = f"demo{seed}-agent"
        cfg = build_config(agents=agents, events_per_agent=events_per_agent, seed=seed,
                           agent_prefix=prefix)
        t0 = time.monotonic()
        result = run_fleet(cfg, progress=True)
        sent = result["sent"]
        total = sum(sent.values())
        console.print(f"sent {total:,} events in {time.monotonic() - t0:.1f}s")
        if sum(result["failed"].values()) or result["pending"]["*"]:
            raise click.ClickException("some events were not delivered (see the spool)")

        console.rule("4. ClickHouse")
        t1 = time.monotonic()
        counts = wait_for_sink(settings, procs[0], prefix, total, timeout)
        console.print(f"queryable {time.monotonic() - t1:.1f}s after the last event was sent")
        from rich.table import Table

        table = Table(title="sent vs in ClickHouse (this demo's agents)")
        for col in ("type", "sent", "in ClickHouse"):
            table.add_column(col, justify="left" if col == "type" else "right")
        for t in sorted(set(sent) | set(counts)):
            table.add_row(t, str(sent.get(t, 0)), str(counts.get(t, 0)))
        console.print(table)
        for title, statement in CANNED["summary"]:
            from consumers.clickhouse import query

            render(query(settings, statement), "table", title)
        missing = total - sum(counts.values())
        if missing > 0:
            raise click.ClickException(f"{missing} events did not reach ClickHouse in time")
        if worker:
            console.rule("5. stream processing")
            show_stream_results(settings, prefix, procs[1])
    console.rule("done")
    console.print("The data stays in ClickHouse: try `clawstream query overview`, "
                  "`clawstream sql \"SELECT count() FROM events\"` or `clawstream report`.")
