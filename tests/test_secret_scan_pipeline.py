"""A full pipeline run (fleet -> Kafka -> sink, worker, notifier) with every process logging at
DEBUG, then a scan of every log file, every ClickHouse table and the DLQ for each password
and private key the run used: the Kafka credential (when the broker is secured), the broker's
CA and certificate keys, the embedded ClickHouse's users. None may show."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from analytics_helpers import apply_env, raw_counts, restore_env, start_pipeline, wait_for
from kafka_read import read_messages

from clawstream.security.credentials import Credential
from clawstream.security.local import LocalSecurity
from clawstream.settings import Settings, get_settings
from consumers.clickhouse import query
from consumers.clickhouse.users import load_users, users_file

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def secrets_of_the_run(settings: Settings, broker_data: Path) -> set[str]:
    found = {p.get_secret_value()
             for p in (load_users(users_file(settings.data_dir)) or {}).values()}
    assert len(found) == 3, "the sink made the endpoint's users"
    client_config = os.environ.get("CLAWSTREAM_KAFKA_CLIENT_CONFIG")
    if client_config:
        found.add(Credential.from_file(Path(client_config)).password.get_secret_value())
    pki = LocalSecurity.of(Settings(data_dir=broker_data, _env_file=None)).pki
    for key in (pki.ca_key, pki.broker_pem):
        if key.exists():
            body = key.read_text().split("PRIVATE KEY-----")[1].split("-----END")[0]
            found.add(body.strip().splitlines()[0])
    return found


def test_no_secret_in_the_logs_tables_or_dlq_of_a_debug_run(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    broker_data = get_settings().data_dir
    pipe = start_pipeline(kafka_bootstrap, tmp_path, agents=3, events_per_agent=120,
                          log_level="DEBUG")
    old = apply_env(pipe)
    try:
        settings = get_settings()
        wait_for(lambda: sum(raw_counts(settings, producer_only=True).values())
                 >= sum(pipe.expected.values()), 120, "every raw event landed")
        secrets = secrets_of_the_run(settings, broker_data)
        # every column of every table (aggregate states are hashes and counts: left out)
        columns = query(settings, "SELECT table, groupArray(name) FROM system.columns WHERE "
                                  "database = currentDatabase() AND type NOT LIKE "
                                  "'%AggregateFunction%' GROUP BY table").rows
        tables = [t for t, _ in columns]
        stored = "\n".join(str(query(settings, "SELECT {} FROM `{}`".format(
            ", ".join(f"`{c}`" for c in cols), t)).rows) for t, cols in columns)
        dlq = read_messages(kafka_bootstrap, [settings.topic("claw.dlq.v1")], timeout=10)
        for p in pipe.procs.values():
            p.stop()
        logs = {p.name: p.log() for p in pipe.procs.values()}
        assert "DEBUG" in logs["sink"] and "DEBUG" in logs["worker"], "a DEBUG run"
        where = {**logs, "clickhouse": stored,
                 "dlq": "\n".join(repr(m.value()) + repr(m.headers()) for m in dlq)}
        for name, text in where.items():
            for secret in secrets:
                assert secret not in text, f"a secret in {name}"
        assert len(tables) > 10 and len(stored) > 10_000
    finally:
        restore_env(old)
        pipe.stop_all()
