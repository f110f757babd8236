"""Namespaces isolate completely: two environments on one broker and one data folder.

Each namespace gets its own fleet (its own agent prefix), `clawstream worker` and
`clawstream sink`, configured with nothing but `CLAWSTREAM_TOPIC_NAMESPACE` (app id, groups,
chdb directory and database left to their defaults, as a user would). Alpha and bravo run at
the same time; charlie starts after both ran and stopped, on the same broker and data folder
(where a worker that restored their window, alert or CRDT state would report their agents).
What users see is asserted: each namespace's ClickHouse holds only its own agents' events,
aggregates, sessions, agent state and alerts; its derived topics carry only its agents; every
consumer group and internal topic it used is named under the namespace.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
from analytics_helpers import RAW_TABLES, TABLE_OF_TYPE, Proc, raw_counts, wait_for
from confluent_kafka import ConsumerGroupTopicPartitions
from kafka_read import read_messages
from ports import free_port

from clawstream.admin import admin_client, create_topics, delete_namespace
from clawstream.settings import Settings, namespaced_names
from consumers.clickhouse import owner_file, query
from consumers.notifier import Notifier
from producers.fleet import expected_counts
from producers.fleet_cli import build_config, parse_time
from schemas.serde import Serde
from schemas.topics import AGENT_STATE, AGGREGATES, ALERTS, SESSIONS, TOPICS
from streams.app import create_app, input_group

ROOT = Path(__file__).resolve().parent.parent
START = "2026-01-01T00:00:00Z"  # event time in the past: no clock-skew protection involved
AGENTS, EVENTS, FAILURE_RATE = 3, 300, 0.3
#: a rule that fires for nearly every agent of a small fleet (the defaults stay on too)
RULES = "rules:\n  - {name: FailedTwice, kind: streak, by: [agent], count: 2}\n"
#: tables whose rows name an agent in agent_id ('*' or '' on fleet-wide rows)
AGENT_TABLES = (*RAW_TABLES, "sessions", "late_events", "agent_state", "alerts")


@dataclass
class Environment:
    """One namespace's pipeline: its own fleet, worker and sink, nothing else set."""

    name: str
    ns: str
    env: dict[str, str]
    workdir: Path
    seed: int
    procs: list[Proc] = field(default_factory=list)

    @cached_property
    def settings(self) -> Settings:
        """What a user's `clawstream query` in this environment reads its settings from."""
        return Settings(_env_file=None, **{k.removeprefix("CLAWSTREAM_").lower(): v
                                           for k, v in self.env.items()
                                           if k.startswith("CLAWSTREAM_")})

    @property
    def agents(self) -> set[str]:
        return {f"{self.name}-{i:04d}" for i in range(AGENTS)}

    def fleet_args(self) -> list[str]:
        return ["fleet", "--agents", str(AGENTS), "--events-per-agent", str(EVENTS),
                "--seed", str(self.seed), "--failure-rate", str(FAILURE_RATE),
                "--start-time", START, "--agent-prefix", self.name, "--no-progress"]

    def expected(self) -> dict[str, int]:
        cfg = build_config(agents=AGENTS, events_per_agent=EVENTS, seed=self.seed,
                           failure_rate=FAILURE_RATE, start_time_ms=parse_time(START),
                           agent_prefix=self.name)
        return {TABLE_OF_TYPE[k]: v for k, v in expected_counts(cfg).items()}

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        log_path = self.workdir / f"{self.name}-{args[0]}.log"
        with open(log_path, "ab") as logf:
            return subprocess.Popen([sys.executable, "-m", "clawstream.cli", *args], cwd=ROOT,
                                    env=self.env, stdout=logf, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def start(self) -> None:
        """The long-running pieces: sink and worker."""
        for piece in ("sink", "worker"):
            self.procs.append(Proc(piece, self.popen(piece),
                                   self.workdir / f"{self.name}-{piece}.log"))

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        self.procs.clear()


def environment(name: str, seed: int, bootstrap: str, data: Path, endpoint_port: int,
                rules: Path, workdir: Path) -> Environment:
    """Only the namespace differs between environments (plus where its logs go)."""
    ns = f"t{uuid.uuid4().hex[:8]}{name[0]}."
    create_topics(bootstrap, namespace=ns)  # what `clawstream up` does for a namespace
    env = {**os.environ,  # holds no CLAWSTREAM_ setting but the credential (see `started`)
           "CLAWSTREAM_BOOTSTRAP_SERVERS": bootstrap,
           "CLAWSTREAM_TOPIC_NAMESPACE": ns,
           "CLAWSTREAM_DATA_DIR": str(data),
           # one port for every sink: a second one on the machine must still come up
           "CLAWSTREAM_CHDB_ENDPOINT_PORT": str(endpoint_port),
           "CLAWSTREAM_SINK_METRICS_PORT": "0", "CLAWSTREAM_WORKER_METRICS_PORT": "0",
           "CLAWSTREAM_SDK_METRICS_PORT": "0",
           "CLAWSTREAM_SINK_BATCH_SECONDS": "0.3",
           "CLAWSTREAM_RULES_FILE": str(rules)}
    return Environment(name, ns, env, workdir, seed)


def run_fleets(envs: list[Environment]) -> None:
    """The environments' fleets, at the same time."""
    fleets = [(e, e.popen(*e.fleet_args())) for e in envs]
    for e, p in fleets:
        assert p.wait(180) == 0, (e.workdir / f"{e.name}-fleet.log").read_text()[-3000:]


def landed(e: Environment) -> dict[str, Any]:
    """Wait until the environment's ClickHouse holds its fleet and what the worker derived;
    returns what was last seen (the checks say what is wrong with it)."""
    expected = e.expected()
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen["raw"] = {k: v for k, v in raw_counts(e.settings, producer_only=True).items() if v}
        for table in ("window_aggregates", "agent_state", "alerts"):
            seen[table] = query(e.settings, f"SELECT count() FROM {table}").rows[0][0]
        return seen["raw"] == expected and all(seen[t] for t in ("window_aggregates",
                                                                 "agent_state", "alerts"))

    try:
        wait_for(done, 90, f"{e.name}'s pipeline in its ClickHouse")
    except AssertionError as exc:
        seen["error"] = f"{exc} (expected raw {expected}, seen {seen})"
    return seen


def clickhouse_problems(e: Environment) -> list[str]:
    """What in this environment's ClickHouse is not its own."""
    problems: list[str] = []
    seen = landed(e)
    if "error" in seen:
        problems.append(f"{e.name}: {seen['error']}")
    try:
        s = e.settings
        agents: set[str] = set()
        for table in AGENT_TABLES:
            agents |= {r[0] for r in query(s, f"SELECT DISTINCT agent_id FROM {table}").rows}
        agents |= {r[0] for r in query(s, "SELECT DISTINCT scope_agent FROM window_aggregates"
                                          ).rows}
        agents |= {r[0] for r in query(s, "SELECT DISTINCT labels['agent'] FROM alerts").rows}
        foreign = agents - e.agents - {"", "*"}
        if foreign:
            problems.append(f"{e.name}'s ClickHouse holds other agents: {sorted(foreign)}")
        events = {r[0] for r in query(s, "SELECT DISTINCT agent_id FROM events").rows}
        if events != e.agents:
            problems.append(f"{e.name}'s events are of {sorted(events)}, not {sorted(e.agents)}")
        fleet = query(s, "SELECT max(active_agents) FROM window_aggregates "
                         "WHERE scope_agent = '*'").rows[0][0]
        if fleet > AGENTS:
            problems.append(f"{e.name}'s fleet-wide windows count {fleet} active agents "
                            f"(it has {AGENTS}): another fleet's windows merged in")
    except Exception as exc:  # the checks above say why (e.g. its sink never came up)
        problems.append(f"{e.name}'s ClickHouse cannot be read: {type(exc).__name__}: {exc}")
    return problems


def derived_topic_problems(e: Environment) -> list[str]:
    """What the worker wrote to the environment's own derived topics about other agents
    (a worker that restored another namespace's state reports that namespace's agents)."""
    serde = Serde()
    agents: set[str] = set()
    for logical in (AGGREGATES, ALERTS, AGENT_STATE, SESSIONS):
        for m in read_messages(e.settings.bootstrap_servers, [e.settings.topic(logical)],
                               timeout=20):
            rec = serde.decode(m.value()).record
            agents.add(rec["envelope"]["agent_id"])
            agents.add(rec.get("scope_agent", ""))
            agents.add((rec.get("labels") or {}).get("agent", ""))
    foreign = agents - e.agents - {"", "*"}
    return [f"{e.name}'s worker wrote about other agents: {sorted(foreign)}"] if foreign else []


def kafka_name_problems(bootstrap: str, envs: list[Environment]) -> list[str]:
    """Every consumer group that consumed an environment's topics is named under its
    namespace, and so are the worker's internal topics (its changelogs are there)."""
    admin = admin_client(bootstrap)
    problems: list[str] = []
    consumed: dict[str, set[str]] = {}  # group -> topics it holds offsets of
    for listing in admin.list_consumer_groups().result(30).valid:
        g = listing.group_id  # the client asks for one group's offsets at a time
        (fut,) = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)]).values()
        res = fut.result(30)
        consumed[g] = {tp.topic for tp in res.topic_partitions or [] if tp.offset >= 0}
    for e in envs:
        mine = {g for g, topics in consumed.items()
                if any(t.startswith(e.ns) for t in topics)}
        outside = sorted(g for g in mine if not g.startswith(e.ns))
        if outside:
            problems.append(f"{e.name} ({e.ns}) was consumed by groups outside its namespace: "
                            f"{outside}")
        if len(mine) < 3:  # the sink's, the worker's faust group and its event-time source
            problems.append(f"{e.name}: only {sorted(mine)} hold offsets of its topics")
    topics = set(admin.list_topics(timeout=30).topics)
    public = {e.ns + name for e in envs for name in TOPICS}
    for e in envs:
        internal = {t for t in topics if t.startswith(e.ns)} - public
        if not any(t.endswith("-changelog") for t in internal):
            problems.append(f"{e.name}: no changelog topic under {e.ns}: {sorted(internal)}")
    return problems


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Environment]]:
    """The environments started (stopped at the end); this process reads no other settings
    (but for the credential of a secured broker, `kafka_bootstrap`'s client config file)."""
    keep = {"CLAWSTREAM_NO_ACCEL", "CLAWSTREAM_KAFKA_CLIENT_CONFIG"}
    for k in list(os.environ):
        if k.startswith("CLAWSTREAM_") and k not in keep:
            monkeypatch.delenv(k)
    envs: list[Environment] = []
    yield envs
    for e in envs:
        e.stop()
    for e in envs:  # (a broker serving many test runs must not run out of open files)
        delete_namespace(e.env["CLAWSTREAM_BOOTSTRAP_SERVERS"], e.ns)


@pytest.mark.integration
@pytest.mark.slow
def test_two_namespaces_on_one_broker_and_data_folder_see_only_their_own(
    kafka_bootstrap: str, tmp_path: Path, rules: Path, started: list[Environment]
) -> None:
    data, port = tmp_path / "data", free_port()
    alpha, bravo, charlie = (environment(name, seed, kafka_bootstrap, data, port, rules,
                                         tmp_path)
                             for name, seed in (("alpha", 1), ("bravo", 2), ("charlie", 3)))
    problems: list[str] = []

    # (1) at the same time
    started += [alpha, bravo]
    for e in (alpha, bravo):
        e.start()
    run_fleets([alpha, bravo])
    for e in (alpha, bravo):
        problems += clickhouse_problems(e)
    for e in (alpha, bravo):
        e.stop()

    # (2) one after the other: charlie starts after alpha and bravo ran and stopped
    started.append(charlie)
    charlie.start()
    run_fleets([charlie])
    problems += clickhouse_problems(charlie)
    charlie.stop()

    for e in (alpha, bravo, charlie):
        problems += derived_topic_problems(e)
    problems += kafka_name_problems(kafka_bootstrap, [alpha, bravo, charlie])
    logs = f"logs in {tmp_path}"
    assert not problems, "\n".join([*problems, logs])


# -- the names, without a broker ----------------------------------------------------------------


def settings_from_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    """Settings as a process started with exactly these CLAWSTREAM_ variables reads them."""
    for k in list(os.environ):
        if k.startswith("CLAWSTREAM_"):
            monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(f"CLAWSTREAM_{k.upper()}", v)
    return Settings(_env_file=None)


def test_without_a_namespace_every_name_and_path_stays_what_it_was(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s = settings_from_env(monkeypatch, data_dir=str(tmp_path))
    assert (s.worker_app_id, s.sink_group, s.notifier_group, s.clickhouse_database) == (
        "clawstream-streams", "clawstream-sink", "clawstream-notifier", "clawstream")
    assert s.resolved_clickhouse_dsn == f"chdb://{tmp_path.resolve() / 'chdb'}"
    assert owner_file(s) == tmp_path.resolve() / "chdb-owner.json"


def test_a_namespace_alone_renames_everything_a_worker_sink_or_notifier_uses(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s = settings_from_env(monkeypatch, topic_namespace="staging.", data_dir=str(tmp_path))
    assert (s.worker_app_id, s.sink_group, s.notifier_group, s.clickhouse_database) == (
        "staging.clawstream-streams", "staging.clawstream-sink", "staging.clawstream-notifier",
        "staging_clawstream")  # a database name is a plain identifier: no dot
    assert s.resolved_clickhouse_dsn == f"chdb://{tmp_path.resolve() / 'staging.chdb'}"
    assert owner_file(s) == tmp_path.resolve() / "staging.chdb-owner.json"
    assert input_group(s) == "staging.clawstream-streams-windows"
    notifier = Notifier(s, webhooks=[])
    try:
        assert notifier.group == "staging.clawstream-notifier"
    finally:
        notifier.close()
    # faust: its group is the app id; its state folder, internal topics and changelogs
    app = create_app(s)
    assert app.conf.id == "staging.clawstream-streams"
    assert Path(app.conf.datadir) == tmp_path / "faust" / "staging.clawstream-streams"
    declared = {t for a in app.agents.values() for t in getattr(a.channel, "topics", ())}
    declared |= {t.changelog_topic.get_topic_name() for t in app.tables.values()}
    assert any(t.endswith("-changelog") for t in declared)
    assert all(t.startswith("staging.") for t in declared), sorted(declared)


def test_explicit_names_win_and_copies_into_another_namespace_derive_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = settings_from_env(monkeypatch, topic_namespace="a.", worker_app_id="team-streams",
                          clickhouse_database="analytics", sink_group="")
    assert (s.worker_app_id, s.clickhouse_database) == ("team-streams", "analytics")
    assert s.sink_group == "a.clawstream-sink"  # set empty: derived like unset
    b = s.model_copy(update={"topic_namespace": "b."})
    assert (b.worker_app_id, b.clickhouse_database) == ("team-streams", "analytics")
    assert (b.sink_group, b.notifier_group) == ("b.clawstream-sink", "b.clawstream-notifier")
    assert b.resolved_clickhouse_dsn.endswith("/b.chdb")
    c = b.model_copy(update={"sink_group": "own-sink"})
    assert (c.sink_group, c.notifier_group) == ("own-sink", "b.clawstream-notifier")


def test_a_namespace_holds_only_what_a_topic_name_may_hold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert namespaced_names("2024-q1.").clickhouse_database == "_2024_q1_clawstream"
    with pytest.raises(ValueError, match="topic namespace"):
        settings_from_env(monkeypatch, topic_namespace="../elsewhere/")
