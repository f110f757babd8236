"""Crash test: `kill -9` of the gateway, several times, while a fleet sends through it with
the SDK retrying. Every event is in ClickHouse exactly once and every agent's seq has no gap."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from gateway_helpers import GatewayProcess, TlsFiles, make_tls
from ports import free_port

from clawstream.gateway.tokens import create_token
from clawstream.settings import Settings
from consumers import clickhouse as ch
from consumers.sink import Sink
from producers.fleet import FleetConfig, agent_ids, expected_counts
from producers.fleet_cli import run_fleet
from producers.settings import SdkSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


def test_kill_9_of_the_gateway_loses_and_doubles_nothing(
        cs_settings: Settings, tls: TlsFiles, tmp_path: Path) -> None:
    token, _record = create_token(cs_settings, agent_prefix="crash-")
    gw = GatewayProcess(tls, free_port(), tmp_path / "gateway.log").start()
    agent = SdkSettings(bootstrap_servers="127.0.0.1:1",
                        topic_namespace=cs_settings.topic_namespace,
                        data_dir=cs_settings.data_dir / "agents", ingest_url=gw.url,
                        ingest_token=token.get_secret_value(), ingest_ca_file=tls.ca,
                        ingest_batch_events=200)
    cfg = FleetConfig(agents=6, events_per_agent=1500, seed=11, agent_prefix="crash")
    want = expected_counts(FleetConfig(agents=6, events_per_agent=1500, seed=11,
                                       agent_prefix="crash"))
    result: dict[str, Counter[str]] = {}

    def send() -> None:  # ~12 s at 750 events/s
        result.update(run_fleet(cfg, rate=750, progress=False, flush_timeout=120,
                                settings=agent))

    sender = threading.Thread(target=send)
    sender.start()
    kills = 0
    try:
        for _ in range(3):
            time.sleep(2.5)
            gw.kill()
            kills += 1
            time.sleep(1.0)  # the agents find no gateway: retries, then spool
            gw.start()
        sender.join(180)
        assert not sender.is_alive(), "the fleet did not finish"
    finally:
        gw.stop()
    assert kills == 3
    assert sum(result["pending"].values()) == 0, result
    assert sum(result["failed"].values()) == 0, result
    assert sum(result["spooled"].values()) > 0, result  # the kills did hit the agents

    Sink(cs_settings, serve_metrics_endpoint=False).run(until_idle=5)
    rows = ch.query(cs_settings, "SELECT agent_id, count(), uniqExact(event_id), min(seq), "
                    "max(seq), uniqExact(principal) FROM events GROUP BY agent_id "
                    "ORDER BY agent_id").rows
    assert [r[0] for r in rows] == agent_ids(cfg)
    for agent_id, n, unique, lo, hi, principals in rows:
        # exactly once (FINAL: a batch retried after a crash mid-request shows once) and no
        # seq gap
        assert n == unique == hi - lo + 1 == cfg.events_per_agent, (agent_id, n, unique, lo, hi)
        assert lo == 1 and principals == 1
    per_type = dict(ch.query(cs_settings, "SELECT event_type, count() FROM events "
                             "GROUP BY 1").rows)
    assert per_type == {k: v for k, v in want.items() if v}
