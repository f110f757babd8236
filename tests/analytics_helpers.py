"""A real pipeline run for the analytics tests: `clawstream fleet` -> Kafka -> `clawstream sink`
(-> chdb) with `clawstream worker` (windows, sessions, CRDT state, alerts) and
`clawstream notifier` alongside, all as subprocesses on their own topic namespace, data folder
and metrics ports. The sink owns the chdb directory and serves queries to the test process
through its endpoint (consumers.clickhouse.query finds it), exactly as for a user."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ports import free_port

ROOT = Path(__file__).resolve().parent.parent
RAW_TABLES = ("frames", "detection_frames", "plans", "actions", "outcomes", "heartbeats",
              "state_deltas")


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Pipeline:
    """What a test needs to know about the run."""

    env: dict[str, str]
    workdir: Path
    expected: dict[str, int]
    ports: dict[str, int]
    procs: dict[str, Proc] = field(default_factory=dict)
    fleet_args: dict[str, Any] = field(default_factory=dict)

    def start(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> Proc:
        log_path = self.workdir / f"{name}.log"
        with open(log_path, "ab") as logf:
            proc = subprocess.Popen(
                [sys.executable, "-m", "clawstream.cli", *args], cwd=self.workdir,
                env={**os.environ, **self.env, **(extra_env or {})}, stdout=logf,
                stderr=subprocess.STDOUT, start_new_session=True)
        p = Proc(name, proc, log_path)
        self.procs[name] = p
        return p

    def run(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "clawstream.cli", *args], cwd=self.workdir,
                              env={**os.environ, **self.env}, capture_output=True, text=True,
                              timeout=timeout)

    def stop_all(self) -> None:
        from clawstream.admin import delete_namespace

        for p in reversed(list(self.procs.values())):
            p.stop()
        delete_namespace(self.env["CLAWSTREAM_BOOTSTRAP_SERVERS"],
                         self.env["CLAWSTREAM_TOPIC_NAMESPACE"])


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # not ready yet (owner starting, table empty ...)
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}: last={last!r}")


def start_pipeline(bootstrap: str, workdir: Path, *, agents: int = 8,
                   events_per_agent: int = 500, failure_rate: float = 0.3,
                   seed: int = 11, hook_port: int | None = None,
                   log_level: str = "INFO") -> Pipeline:
    """Create topics, start sink + worker + notifier, run the fleet, wait until every raw event
    is queryable. Event times start 20 minutes ago, so `--since 1h` covers the run."""
    from clawstream.admin import create_topics
    from producers.fleet import expected_counts
    from producers.fleet_cli import build_config

    ns = f"an{uuid.uuid4().hex[:8]}."
    create_topics(bootstrap, namespace=ns)
    ports = {k: free_port() for k in ("sink", "worker", "notifier", "sdk")}
    ports["hook"] = hook_port or free_port()
    data = workdir / "data"
    env = {
        "CLAWSTREAM_BOOTSTRAP_SERVERS": bootstrap,
        "CLAWSTREAM_TOPIC_NAMESPACE": ns,
        "CLAWSTREAM_DATA_DIR": str(data),
        "CLAWSTREAM_SINK_GROUP": f"sink-{ns}",
        "CLAWSTREAM_WORKER_APP_ID": f"streams-{ns.rstrip('.')}",
        "CLAWSTREAM_CHDB_ENDPOINT_PORT": "0",
        "CLAWSTREAM_SINK_METRICS_PORT": str(ports["sink"]),
        "CLAWSTREAM_WORKER_METRICS_PORT": str(ports["worker"]),
        "CLAWSTREAM_NOTIFIER_METRICS_PORT": str(ports["notifier"]),
        "CLAWSTREAM_SDK_METRICS_PORT": str(ports["sdk"]),
        "CLAWSTREAM_ALERT_WEBHOOKS": f"http://127.0.0.1:{ports['hook']}/api/v2/alerts",
        "CLAWSTREAM_SINK_BATCH_SECONDS": "0.3",
        "CLAWSTREAM_LOG_LEVEL": log_level,
    }
    start_ms = int(time.time() * 1000) - 20 * 60_000
    # the same config `clawstream fleet` builds (incl. its CRDT state hook: state deltas)
    cfg = build_config(agents=agents, events_per_agent=events_per_agent, seed=seed,
                       failure_rate=failure_rate, start_time_ms=start_ms)
    pipe = Pipeline(env=env, workdir=workdir, expected=expected_counts(cfg), ports=ports,
                    fleet_args={"start_ms": start_ms, "agents": agents,
                                "events_per_agent": events_per_agent, "seed": seed})
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        pipe.start("sink", "sink")
        pipe.start("worker", "worker")
        pipe.start("notifier", "notifier")
        fleet = pipe.run("fleet", "--agents", str(agents), "--events-per-agent",
                         str(events_per_agent), "--seed", str(seed), "--failure-rate",
                         str(failure_rate), "--start-time", str(start_ms), "--no-progress")
        assert fleet.returncode == 0, fleet.stdout + fleet.stderr
    except BaseException:
        pipe.stop_all()
        raise
    return pipe


def apply_env(pipe: Pipeline) -> dict[str, str | None]:
    """Point this process's settings at the pipeline; returns the previous values."""
    from clawstream.settings import get_settings

    old = {k: os.environ.get(k) for k in pipe.env}
    os.environ.update(pipe.env)
    get_settings.cache_clear()
    return old


def restore_env(old: dict[str, str | None]) -> None:
    from clawstream.settings import get_settings

    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    get_settings.cache_clear()


def raw_counts(settings: Any, *, producer_only: bool = False) -> dict[str, int]:
    """Rows per raw table; `producer_only` leaves out the worker's synthetic 'lost'
    outcomes (emitted for actions whose outcome never came, e.g. cut off at the run's end)."""
    from consumers.clickhouse import query

    lost = " WHERE status != 'lost'" if producer_only else ""
    sql = " UNION ALL ".join(
        f"SELECT '{t}', count() FROM {t}{lost if t == 'outcomes' else ''}" for t in RAW_TABLES)
    return {k: int(v) for k, v in query(settings, sql).rows}


TABLE_OF_TYPE = {"frame": "frames", "detection": "detection_frames", "plan": "plans",
                 "action": "actions", "outcome": "outcomes", "heartbeat": "heartbeats",
                 "state_delta": "state_deltas"}
