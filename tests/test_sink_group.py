"""Two sinks in one consumer group on the embedded engine (real broker, real chdb, real
processes): the first owns the engine and serves it, the second inserts through the owner's
endpoint as the writer; both hold a share of the partitions; `kill -9` of the owner mid-run:
the second takes the engine over; the first, restarted, inserts through the new owner; every
event is in ClickHouse exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sink_helpers
from ports import free_ports
from prometheus_client.parser import text_string_to_metric_families

from clawstream.settings import Settings
from consumers import clickhouse as ch
from consumers.sink.target import Target

ROOT = Path(__file__).parent.parent


class SinkProcess:
    """`clawstream sink` in a process of its own, its /metrics on `port`, its output in `log`."""

    def __init__(self, log: Path, port: int) -> None:
        self.log, self.port = log, port
        env = {**os.environ, "CLAWSTREAM_SINK_BATCH_ROWS": "300",
               "CLAWSTREAM_SINK_BATCH_SECONDS": "0.2",
               "CLAWSTREAM_SINK_METRICS_PORT": str(port)}
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "clawstream.cli", "sink"],
                                         stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)

    def metrics(self) -> dict[str, float]:
        """Its metrics: `name{label=value,...}` -> value (empty while it does not serve)."""
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics",
                                          timeout=2).read().decode()
        except OSError:
            return {}
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}"] = s.value
        return out

    def value(self, name: str) -> float:
        """The sum of a metric's samples (0 if absent)."""
        return sum(v for k, v in self.metrics().items() if k.startswith(name + "{"))

    def role(self) -> str | None:
        found = [k for k, v in self.metrics().items()
                 if k.startswith("clawstream_sink_role{") and v == 1]
        return found[0].split("role=")[1].rstrip("}") if found else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_for(cond: Callable[[], object], timeout: float, what: str,
             *sinks: SinkProcess) -> None:
    """Wait for `cond` (a deadline only against hanging: the test asserts no timing)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {s.log.name}\n{s.log.read_text()[-3000:]}" for s in sinks)
            raise AssertionError(f"waited {timeout:.0f} s for {what}\n{logs}")
        for s in sinks:
            assert s.proc.poll() is None or s.proc.returncode == -signal.SIGKILL, \
                f"{s.log.name} exited {s.proc.returncode}: {s.log.read_text()[-3000:]}"
        time.sleep(0.2)


def stored(settings: Settings) -> tuple[int, int]:
    try:
        rows = ch.query(settings, "SELECT count(), uniqExact(event_id) FROM events").rows
    except ch.ClickHouseUnavailable:
        return 0, 0
    return int(rows[0][0]), int(rows[0][1])


@pytest.fixture
def sinks(tmp_path: Path) -> Iterator[list[SinkProcess]]:
    started: list[SinkProcess] = []
    yield started
    for s in started:
        s.stop()


@pytest.mark.integration
def test_two_sinks_share_the_group_and_the_second_takes_over_after_kill_9_of_the_owner(
    cs_settings: Settings, tmp_path: Path, sinks: list[SinkProcess]
) -> None:
    a_port, b_port = free_ports(2)
    a = SinkProcess(tmp_path / "sink-a.log", a_port)
    sinks.append(a)
    wait_for(lambda: ch.find_owner(cs_settings)[0] == "serving"
             and a.value("clawstream_sink_assigned_partitions") > 0, 90, "sink a to own", a)
    total = a.value("clawstream_sink_assigned_partitions")  # alone: every partition
    assert ch.owner_pid(cs_settings) == a.proc.pid and a.role() == "owner"

    b = SinkProcess(tmp_path / "sink-b.log", b_port)
    sinks.append(b)

    def shared() -> bool:
        mine, theirs = (s.value("clawstream_sink_assigned_partitions") for s in (a, b))
        return mine > 0 and theirs > 0 and mine + theirs == total

    wait_for(shared, 90, "both sinks to hold a share of the partitions", a, b)
    assert b.role() == "guest", b.log.read_text()
    assert "inserts through its endpoint" in b.log.read_text()

    # a producer sends 12 agents' events (keyed by agent: every partition) in steady chunks;
    # the owner is killed while it runs, and the rest comes after the kill
    events = sink_helpers.encoded_events(12, 400, seed=17)
    before, after = events[:3000], events[3000:]
    producing = threading.Thread(target=produce_steadily, args=(cs_settings, before))
    producing.start()
    try:
        wait_for(lambda: a.value("clawstream_sink_messages_total") > 0
                 and b.value("clawstream_sink_messages_total") > 0
                 and stored(cs_settings)[0] >= len(before) // 4, 90,
                 "both sinks to land a share", a, b)
        a.proc.send_signal(signal.SIGKILL)  # the owner, mid-run
        a.proc.wait(10)
    finally:
        producing.join()
    sink_helpers.produce(cs_settings, after)
    wait_for(lambda: stored(cs_settings)[0] >= len(events), 120, "every event in ClickHouse", b)
    wait_for(lambda: b.role() == "owner"
             and b.value("clawstream_sink_assigned_partitions") == total, 60,
             "the second sink to own the engine and every partition", b)
    assert "takes the embedded ClickHouse" in b.log.read_text()

    # the killed sink, restarted, finds the new owner and inserts through it
    again = SinkProcess(tmp_path / "sink-a2.log", a_port)
    sinks.append(again)
    a = again  # (what `shared` looks at)
    wait_for(shared, 90, "the restarted sink to take a share back", again, b)
    assert again.role() == "guest"
    more = sink_helpers.encoded_events(12, 50, seed=18)
    sink_helpers.produce(cs_settings, more)
    events += more
    wait_for(lambda: stored(cs_settings)[0] >= len(events)
             and again.value("clawstream_sink_messages_total") > 0, 120,
             "the restarted sink to land its share", again, b)

    for s in (again, b):
        s.proc.send_signal(signal.SIGTERM)
    for s in (again, b):
        assert s.proc.wait(60) == 0, s.log.read_text()
    assert stored(cs_settings) == (len(events), len(events))
    twice = ch.query(cs_settings, "SELECT event_id, count() AS n FROM events GROUP BY event_id "
                                  "HAVING n > 1 LIMIT 5").rows
    assert twice == []
    sent = {e[2] for e in events}
    got = {str(r[0]) for r in ch.query(cs_settings, "SELECT event_id FROM events").rows}
    assert got == sent


def produce_steadily(settings: Settings, events: list[tuple[str, str, str, bytes]]) -> None:
    """The events in chunks of 200, a chunk every 0.25 s (the sinks work while it runs)."""
    for i in range(0, len(events), 200):
        sink_helpers.produce(settings, events[i:i + 200])
        time.sleep(0.25)


def test_a_second_sink_explains_an_owner_without_endpoint(tmp_path: Path) -> None:
    """A sink started with --no-endpoint owns the engine but serves nobody: a second sink
    says so at once instead of waiting for the engine's lock."""
    settings = Settings(data_dir=tmp_path / "data", chdb_endpoint_port=0, topic_namespace="g.",
                        clickhouse_dsn=None, _env_file=None)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from clawstream.settings import Settings\n"
        "from consumers.clickhouse import ChdbOwner\n"
        f"s = Settings(data_dir={str(settings.data_dir)!r}, topic_namespace='g.', "
        "clickhouse_dsn=None, _env_file=None)\n"
        "assert ChdbOwner(s).claim(serves=False)\n"
        "print('claimed', flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, cwd=ROOT)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"claimed\n"
        with pytest.raises(ch.ClickHouseUnavailable, match="--no-endpoint"):
            Target(settings, wait=30).open()
        assert ch.find_owner(settings) == ("closed", None)
    finally:
        holder.kill()
        holder.wait()
    # its owner lock died with it: the next sink owns the engine
    target = Target(settings, serve_endpoint=False)
    client = target.open()
    try:
        assert target.role == "owner" and ch.claimed_here(settings)
    finally:
        client.close()
        target.close()
    assert not ch.claimed_here(settings)
