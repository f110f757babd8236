"""Broker outage: an agent keeps emitting while its (private, real) broker is away for 30 s.

Every event must arrive (at least once; duplicates removed by event_id), per-agent seq must
have no gaps, and each topic must hold the agent's events in seq order.

Variants:
- restart: the broker is stopped and started again (same data dir). librdkafka holds what it
  had queued (long message.timeout.ms); new events go to the disk spool and are replayed.
- restart-short-timeout: same, but librdkafka gives queued events back after 5 s; they must
  be put back *in front of* the spool.
- freeze: the broker process is SIGSTOPped (hangs, connections stay open): events pile up in
  librdkafka until they time out, and only the SDK's respooling brings them back in order.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from kafka_read import read_decoded
from ports import free_port

from clawstream.admin import create_topics
from clawstream.broker import LocalBroker
from clawstream.settings import Settings, get_settings
from producers.sdk import AgentClient
from schemas.topics import ACTIONS, HEARTBEATS, OUTCOMES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_S = 30.0


class Emitter(threading.Thread):
    """Emits action/outcome/heartbeat at ~200 events/s until stopped."""

    def __init__(self, client: AgentClient) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.sent: list[str] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        c = self.client
        i = 0
        try:
            while not self.stop.is_set():
                a = c.action("click", app="notepad", plan_id="plan-1", step_index=i % 5,
                             target=f"button {i}")
                o = c.outcome(a, "success", 10.0 + i % 7, app="notepad", action_kind="click")
                self.sent += [a, o]
                if i % 10 == 0:
                    self.sent.append(c.heartbeat())
                i += 1
                time.sleep(0.01)
        except BaseException as exc:  # surfaced by the test
            self.error = exc


@pytest.mark.parametrize(
    ("mode", "message_timeout_ms"),
    [("restart", 300_000), ("restart-short-timeout", 5_000), ("freeze", 5_000)],
)
def test_outage_loses_nothing(tmp_path: Path, mode: str, message_timeout_ms: int) -> None:
    base = get_settings()
    broker = LocalBroker(base, port=free_port(), controller_port=free_port(),
                         data_dir=tmp_path / "kafka")
    broker.start(timeout=120)
    client: AgentClient | None = None
    frozen = False
    try:
        create_topics(broker.bootstrap, namespace="", specs=[ACTIONS, OUTCOMES, HEARTBEATS])
        settings = Settings(bootstrap_servers=broker.bootstrap, data_dir=tmp_path / "data",
                            cache_dir=base.cache_dir, kafka_client_config=broker.admin_config)
        client = AgentClient(settings, "agent-outage",
                             producer_config={"message.timeout.ms": message_timeout_ms})
        emitter = Emitter(client)
        emitter.start()
        time.sleep(3)
        before = len(emitter.sent)

        pid = broker.pid()
        if mode == "freeze":
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)
            frozen = True
        else:
            broker.stop()
        time.sleep(OUTAGE_S)
        during = len(emitter.sent) - before
        depth_in_outage = client.spool.depth_messages
        if mode == "freeze":
            os.kill(pid, signal.SIGCONT)  # type: ignore[arg-type]
            frozen = False
        else:
            broker.start(timeout=120)
        time.sleep(3)
        emitter.stop.set()
        emitter.join(10)
        assert emitter.error is None, emitter.error
        assert during > 1000, "the agent kept emitting during the outage"
        assert depth_in_outage > 0, "events were spooled to disk during the outage"

        left = client.flush(180)
        stats = client.stats()
        assert left == 0, stats
        assert stats["failed"] == {}
        if mode == "freeze":
            # librdkafka gave its queued events back (timed out): respooled in front
            assert sum(stats["respooled"].values()) > 0, stats
        sent = emitter.sent
        n = client.seq
        assert n == len(sent)
        client.close()
        client = None

        topics = [ACTIONS, OUTCOMES, HEARTBEATS]
        got = read_decoded(broker.bootstrap, topics, min_count=len(sent), timeout=120,
                           idle=2.0)  # duplicates included
        first: dict[str, tuple[str, int]] = {}
        per_topic: dict[str, list[int]] = {t: [] for t in topics}
        for topic, key, dec in got:
            env = dec.record["envelope"]
            assert key == b"agent-outage"
            if env["event_id"] not in first:
                first[env["event_id"]] = (topic, env["seq"])
                per_topic[topic].append(env["seq"])
        assert set(first) == set(sent), f"{len(set(sent) - set(first))} events lost"
        seqs = sorted(seq for _, seq in first.values())
        assert seqs == list(range(1, n + 1)), "seq has gaps or repeats"
        for topic, s in per_topic.items():
            assert s == sorted(s), f"{topic}: per-agent order broken"
        print(f"{mode}: {len(sent)} events, {during} during the outage, spool peak "
              f">= {depth_in_outage}, {len(got) - len(first)} duplicates removed, stats {stats}")
    finally:
        if frozen:
            os.kill(broker.pid() or 0, signal.SIGCONT)
        if client is not None:
            client.close(timeout=1)
        broker.stop()
