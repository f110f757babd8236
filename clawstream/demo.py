"""`clawstream demo`: the whole pipeline end to end on one machine, then every stage's result.

broker → topics → sink and stream worker (background processes, output to files) → a
simulated fleet in real time through the SDK (one agent with a clock an hour ahead, the
fault every fleet meets sooner or later) → wait until ClickHouse holds every event and each
stage has produced something (conditions, not fixed sleeps) → tables per stage → a recount
of every closed window from the raw events. The background processes are stopped at the
end (also on Ctrl-C or an error).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import click
from rich.console import Console

from clawstream.procs import Subcommand, running
from clawstream.settings import Settings, get_settings

console = Console()
CORRELATOR = "clawstream-correlator"
#: How far ahead the demo's faulty agent's clock runs.
SKEW_S = 3600


def landed(settings: Settings, agent_prefix: str) -> dict[str, int]:
    """Events per type in ClickHouse that this demo's agents sent (the correlator's
    synthesized lost outcomes are derived, not sent: they are counted apart)."""
    from consumers.clickhouse import query

    result = query(
        settings,
        "SELECT event_type, count() FROM events WHERE startsWith(agent_id, {p:String}) "
        "AND producer != {c:String} GROUP BY event_type",
        {"p": agent_prefix, "c": CORRELATOR},
    )
    return {str(t): int(n) for t, n in result.rows}


def wait_for(what: str, check: Callable[[], object], procs: list[Subcommand],
             timeout: float, interval: float = 0.5) -> object:
    """Poll `check` until it returns something true; fail early if a process died."""
    deadline = time.monotonic() + timeout
    last: object = None
    with console.status(f"waiting for {what}") as status:
        while time.monotonic() < deadline:
            for p in procs:
                if not p.alive():
                    raise click.ClickException(f"the {p.name} stopped:\n{p.tail()}")
            try:
                last = check()
            except Exception as exc:  # (a table not there yet, the owner starting)
                last = exc
            else:
                if last and not isinstance(last, str):
                    return last
                if isinstance(last, str):
                    status.update(f"waiting for {what}: {last}")
            time.sleep(interval)
    return None


#: (title, SQL, condition that says the stage has produced something) per stage.
STAGES: list[tuple[str, str, str]] = [
    ("Closed event-time windows, fleet-wide",
     "SELECT window_kind, intDiv(window_size_ms, 1000) AS size_s, count() AS windows, "
     "sum(total) AS events, round(avg(success_rate), 4) AS avg_success_rate, "
     "round(max(latency_p95_ms), 1) AS max_p95_ms FROM window_aggregates "
     "WHERE scope_agent = '*' GROUP BY window_kind, size_s ORDER BY window_kind, size_s",
     "SELECT count() FROM window_aggregates WHERE scope_agent = '*'"),
    ("Closed event-time windows per agent (first 5 agents, 10 s windows)",
     "SELECT scope_agent AS agent, count() AS windows, sum(total) AS events, "
     "sum(outcomes['success']) AS successes, sum(lost_outcomes) AS lost, "
     "sum(clock_skew_events) AS clock_skew_refused FROM window_aggregates "
     "WHERE startsWith(scope_agent, {p:String}) AND window_size_ms = 10000 "
     "GROUP BY agent ORDER BY agent LIMIT 5",
     "SELECT count() FROM window_aggregates WHERE startsWith(scope_agent, {p:String})"),
    ("Episodes (a session closes once the watermark is a gap past its last event)",
     "SELECT count() AS sessions, countIf(success) AS successful, "
     "round(if(count() = 0, 0, avg(duration_ms)) / 1000, 1) AS avg_duration_s, "
     "sum(steps) AS steps FROM sessions WHERE startsWith(agent_id, {p:String})",
     "SELECT count() FROM sessions WHERE startsWith(agent_id, {p:String})"),
    ("Merged agent state (CRDTs), latest version per agent",
     "SELECT agent_id, version, actions_total, error_budget, status, current_task "
     "FROM agent_state WHERE startsWith(agent_id, {p:String}) ORDER BY agent_id LIMIT 5",
     "SELECT count() FROM agent_state WHERE startsWith(agent_id, {p:String})"),
    ("Events refused for their agent's clock (side output, reason clock_skew)",
     "SELECT agent_id, reason, count() AS events, "
     "round(avg(dateDiff('second', arrival_time, event_time))) AS ahead_s FROM late_events "
     "WHERE startsWith(agent_id, {p:String}) GROUP BY agent_id, reason ORDER BY agent_id",
     ""),
    ("Alerts raised",
     "SELECT rule, state, labels['agent'] AS agent, count() AS events FROM alerts "
     "WHERE startsWith(labels['agent'], {p:String}) OR labels['agent'] = '' "
     "GROUP BY rule, state, agent ORDER BY rule, state, agent",
     "SELECT count() FROM alerts WHERE startsWith(labels['agent'], {p:String})"),
]


def show_stages(settings: Settings, prefix: str, procs: list[Subcommand], timeout: float,
                expect_alerts: bool) -> None:
    """Wait until every stage has produced something (each condition in turn), then show.
    Alerts are waited for only when the run has a fault that raises one."""
    from consumers.clickhouse import query
    from consumers.query_cli import render

    deadline = time.monotonic() + timeout
    for title, statement, condition in STAGES:
        if condition and (expect_alerts or not title.startswith("Alerts")):
            def produced(sql: str = condition) -> bool:
                return int(query(settings, sql, {"p": prefix}).rows[0][0]) > 0

            left = max(1.0, deadline - time.monotonic())
            if wait_for(title.split(" (")[0].lower(), produced, procs, left) is None:
                console.print(f"[yellow]{title}: nothing yet after {timeout:.0f}s[/yellow]")
        try:
            render(query(settings, statement, {"p": prefix}), "table", title)
        except Exception as exc:  # a missing table must not hide the rest of the demo
            console.print(f"[yellow]{title}: {exc}[/yellow]")


def show_accuracy(settings: Settings, prefix: str, since_ms: int) -> None:
    """Recount every closed window of this run from the raw events (`clawstream verify`)."""
    from consumers.analytics.accuracy import verify

    r = verify(settings, since_ms=since_ms, until_ms=int(time.time() * 1000),
               agent_prefix=prefix)
    colour = "green" if r.ok else "red"
    console.print(
        f"[{colour}]recounted from the raw events: {r.windows_checked} per-agent and "
        f"{r.fleet_windows_checked} fleet-wide windows, {len(r.windows_differing)} differ, "
        f"{len(r.windows_missing)} missing; {r.late_events} late events; "
        f"{r.lost_outcomes} lost outcomes ({r.false_lost_outcomes} wrongly)[/{colour}]")


@click.command("demo")
@click.option("--agents", type=int, default=20, show_default=True)
@click.option("--duration", type=float, default=45.0, show_default=True,
              help="Seconds the fleet works, in real time (event time = the wall clock).")
@click.option("--linger", type=float, default=40.0, show_default=True,
              help="Seconds the agents then stay alive sending heartbeats only, so episodes "
                   "(30 s gap) and the last windows close.")
@click.option("--speedup", type=float, default=1.0, show_default=True,
              help="Divide the agents' simulated gaps by this (event times stay the wall clock).")
@click.option("--seed", type=int, default=None,
              help="Fleet seed (default: from the clock, so each run sends new events).")
@click.option("--skewed-agent/--no-skewed-agent", default=True, show_default=True,
              help=f"One agent's clock runs {SKEW_S // 3600} h ahead: its events are refused "
                   "by the windows, land with the reason and raise AgentClockSkew, and no "
                   "other agent's events turn late because of it.")
@click.option("--timeout", type=float, default=180.0, show_default=True,
              help="Longest wait for ClickHouse to hold every event, and for the stages.")
@click.option("--worker/--no-worker", default=True, show_default=True,
              help="Also run the Faust stream worker (windows, correlation, state, alerts).")
def demo(agents: int, duration: float, linger: float, speedup: float, seed: int | None,
         skewed_agent: bool, timeout: float, worker: bool) -> None:
    """Run the whole pipeline end to end and show what each stage made."""
    seed = int(time.time()) % 1_000_000 if seed is None else seed
    from rich.table import Table

    from clawstream.admin import create_topics
    from clawstream.broker import ensure_broker
    from consumers.clickhouse import find_owner
    from consumers.query_cli import CANNED, render
    from producers.fleet import agent_ids
    from producers.fleet_cli import build_config, run_fleet

    settings = get_settings()
    log_dir = settings.data_dir / "logs"
    console.rule("1. Kafka")
    bootstrap = ensure_broker(settings)
    topics = create_topics(bootstrap, namespace=settings.topic_namespace)
    console.print(f"broker {bootstrap}: {len(topics)} topics ready")

    console.rule("2. sink and stream worker")
    procs = [Subcommand("sink", ["sink"], log_dir / "demo-sink.log")]
    if worker:
        procs.append(Subcommand("worker", ["worker"], log_dir / "demo-worker.log"))
    with running(procs):
        console.print(f"ClickHouse: {settings.resolved_clickhouse_dsn}; logs in {log_dir}")
        if settings.is_embedded_clickhouse and wait_for(
                "the sink to open ClickHouse", lambda: find_owner(settings)[0] == "serving",
                procs, 60, 0.3) is None:
            raise click.ClickException(f"the sink did not open ClickHouse:\n{procs[0].tail()}")

        console.rule("3. fleet, in real time")
        prefix = f"demo{seed}-agent"

        cfg = build_config(agents=agents, events_per_agent=1 << 62, seed=seed,
                           agent_prefix=prefix, duration_s=duration * speedup, realtime=True,
                           linger_s=linger * speedup)
        skews = {agent_ids(cfg)[-1]: SKEW_S * 1000} if skewed_agent else {}
        if skews:
            console.print(f"{next(iter(skews))}'s clock runs {SKEW_S} s ahead")
        since = int(time.time() * 1000)
        t0 = time.monotonic()
        result = run_fleet(cfg, realtime=True, speedup=speedup, clock_skew_ms=skews,
                           progress=True)
        sent = result["sent"]
        total = sum(sent.values())
        console.print(f"sent {total:,} events in {time.monotonic() - t0:.1f}s "
                      f"({total / max(time.monotonic() - t0, 1e-9):,.0f} events/s)")
        if sum(result["failed"].values()) or result["pending"]["*"]:
            raise click.ClickException("some events were not delivered (see the spool)")

        console.rule("4. ClickHouse")
        t1 = time.monotonic()
        counts: dict[str, int] = {}

        def all_landed() -> object:
            counts.update(landed(settings, prefix))
            have = sum(counts.values())
            return True if have >= total else f"{have:,} of {total:,} events"

        wait_for("the sink to land every event in ClickHouse", all_landed, procs, timeout)
        console.print(f"queryable {time.monotonic() - t1:.1f}s after the last event was sent")
        table = Table(title="sent by the agents vs in ClickHouse (this demo's agents)")
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
            show_stages(settings, prefix, procs, timeout, expect_alerts=bool(skews))
            console.rule("6. accuracy")
            show_accuracy(settings, prefix, since)
    console.rule("done")
    console.print("The data stays in ClickHouse: try `clawstream query overview`, "
                  "`clawstream sql \"SELECT count() FROM events\"`, `clawstream verify` or "
                  "`clawstream report`.")
