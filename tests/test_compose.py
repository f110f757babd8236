"""docker-compose.yml cannot run here (no Docker engine), so check that it agrees with the code:
services, images, ports, settings, mounts and commands."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from clawstream.cli import COMMANDS
from clawstream.settings import PROJECT_ROOT, Settings

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
#: the defaults themselves, not this environment's values (a test run may use another port)
DEFAULTS = Settings(_env_file=None,
                    bootstrap_servers=Settings.model_fields["bootstrap_servers"].default)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def host_ports(service: dict) -> dict[int, int]:
    """container port -> host port."""
    out = {}
    for spec in service.get("ports", []):
        host, container = str(spec).rsplit(":", 1)[-2:] if str(spec).count(":") else (spec, spec)
        out[int(container)] = int(host.split(":")[-1])
    return out


def test_services_present(compose: dict) -> None:
    expected = {"kafka", "clickhouse", "grafana", "prometheus", "alertmanager", "sink",
                "worker", "notifier", "topics", "fleet"}
    assert expected <= set(compose["services"])


def test_images_are_pinned(compose: dict) -> None:
    for name, svc in compose["services"].items():
        image = svc.get("image")
        assert image, f"{name} has no image"
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin {image}"
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka:4.")
    assert compose["services"]["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")


def test_kafka_host_port_matches_default_bootstrap(compose: dict) -> None:
    default_port = int(DEFAULTS.bootstrap_servers.split(",")[0].rsplit(":", 1)[1])
    kafka = compose["services"]["kafka"]
    assert host_ports(kafka)[9092] == default_port
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert f"127.0.0.1:{default_port}" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_worker_metrics_ports_match_settings(compose: dict) -> None:
    svcs = compose["services"]
    assert host_ports(svcs["sink"]) == {DEFAULTS.sink_metrics_port: DEFAULTS.sink_metrics_port}
    assert host_ports(svcs["worker"]) == {
        DEFAULTS.worker_metrics_port: DEFAULTS.worker_metrics_port}
    assert host_ports(svcs["notifier"]) == {
        DEFAULTS.notifier_metrics_port: DEFAULTS.notifier_metrics_port}
    assert host_ports(svcs["fleet"]) == {DEFAULTS.sdk_metrics_port: DEFAULTS.sdk_metrics_port}


def test_worker_env_names_real_settings(compose: dict) -> None:
    fields = {f"CLAWSTREAM_{n.upper()}" for n in Settings.model_fields}
    for name in ("sink", "worker", "notifier", "fleet", "topics"):
        env = compose["services"][name]["environment"]
        unknown = {k for k in env if k.startswith("CLAWSTREAM_")} - fields
        assert not unknown, f"{name}: unknown settings {unknown}"
        dsn = env["CLAWSTREAM_CLICKHOUSE_DSN"]
        assert dsn.startswith("http://") and "@clickhouse:8123" in dsn
        assert env["CLAWSTREAM_BOOTSTRAP_SERVERS"] == "kafka:29092"
        assert "INTERNAL://kafka:29092" in compose["services"]["kafka"]["environment"][
            "KAFKA_ADVERTISED_LISTENERS"]


def test_worker_commands_exist(compose: dict) -> None:
    for name in ("sink", "worker", "notifier", "fleet", "topics", "clickhouse-access"):
        cmd = compose["services"][name]["command"]
        assert cmd[0] == "clawstream" and cmd[1] in COMMANDS, f"{name}: {cmd}"


def test_clickhouse_users_and_passwords_come_from_env(compose: dict) -> None:
    ch = compose["services"]["clickhouse"]["environment"]
    sink = compose["services"]["sink"]["environment"]
    assert re.match(r"http://writer@clickhouse:8123/", sink["CLAWSTREAM_CLICKHOUSE_DSN"])
    assert sink["CLAWSTREAM_CLICKHOUSE_PASSWORD"].startswith("${CLICKHOUSE_WRITER_PASSWORD")
    assert ch["CLICKHOUSE_USER"] == "admin"
    assert ch["CLICKHOUSE_PASSWORD"].startswith("${CLICKHOUSE_ADMIN_PASSWORD")
    assert ch["CLICKHOUSE_DB"] == DEFAULTS.clickhouse_database
    # the writer and the reader are made by the admin before the sink starts
    access = compose["services"]["clickhouse-access"]
    assert access["command"][1:] == ["clickhouse-users", "--from-env"]
    assert re.match(r"http://admin@clickhouse:8123/", access["environment"]
                    ["CLAWSTREAM_CLICKHOUSE_DSN"])
    for user in ("WRITER", "READER"):
        assert access["environment"][f"CLICKHOUSE_{user}_PASSWORD"].startswith(
            f"${{CLICKHOUSE_{user}_PASSWORD")
    assert compose["services"]["sink"]["depends_on"]["clickhouse-access"] == {
        "condition": "service_completed_successfully"}
    grafana = compose["services"]["grafana"]["environment"]
    assert grafana["CLICKHOUSE_USER"] == "reader"
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD")


def _env_values(compose: dict) -> list[tuple[str, str, str]]:
    out = []
    for name, svc in compose["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            out.append((name, key, str(value)))
    return out


def test_no_secret_in_clear_every_one_from_the_env_file(compose: dict) -> None:
    """Every password (and the JAAS configs holding one) is a ${VAR} of the .env that
    `clawstream credentials compose-env` writes; no value in the file is a secret itself."""
    from clawstream.security_cli import COMPOSE_SECRETS

    text = COMPOSE.read_text()
    referenced = set(re.findall(r"\$\{([A-Z_]+)(?::\?[^}]*)?\}", text))
    assert referenced and referenced <= set(COMPOSE_SECRETS), referenced - set(COMPOSE_SECRETS)
    for name, key, value in _env_values(compose):
        if re.search(r"PASSWORD|SECRET|JAAS", key):
            if "ScramLoginModule required;" in value:
                continue  # (no secret: SCRAM users live in the broker's metadata)
            assert "${" in value, f"{name}: {key} holds a secret in clear"
            assert not re.search(r"password=\"[^$]", value), f"{name}: {key}"
    assert "clawstream:clawstream" not in text


def test_kafka_speaks_sasl_ssl_with_acls(compose: dict) -> None:
    env = compose["services"]["kafka"]["environment"]
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(protocols.values()) == {"SASL_SSL"}, protocols
    assert "SCRAM-SHA-512" in env["KAFKA_SASL_ENABLED_MECHANISMS"]
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_SUPER_USERS"] == "User:admin"
    for name in ("sink", "worker", "notifier", "fleet", "topics", "credentials"):
        svc_env = compose["services"][name]["environment"]
        assert svc_env["CLAWSTREAM_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL", name
        assert svc_env["CLAWSTREAM_KAFKA_SASL_USERNAME"], name
    roles = {n: compose["services"][n]["environment"]["CLAWSTREAM_KAFKA_SASL_USERNAME"]
             for n in ("sink", "worker", "notifier", "fleet")}
    assert roles == {"sink": "sink", "worker": "worker", "notifier": "notifier",
                     "fleet": "agent"}  # least privilege: each its own role


def test_every_published_port_is_bound_to_loopback(compose: dict) -> None:
    for name, svc in compose["services"].items():
        for spec in svc.get("ports", []):
            assert str(spec).startswith("127.0.0.1:"), f"{name} publishes {spec} on every interface"


def test_mounts_exist_in_repo(compose: dict) -> None:
    for name, svc in compose["services"].items():
        for vol in svc.get("volumes", []):
            src = str(vol).split(":")[0]
            if src.startswith("./"):
                assert (PROJECT_ROOT / src).exists(), f"{name} mounts missing {src}"


def test_grafana_has_clickhouse_plugin_and_datasource(compose: dict) -> None:
    grafana = compose["services"]["grafana"]
    assert "grafana-clickhouse-datasource" in grafana["environment"]["GF_INSTALL_PLUGINS"]
    ds = yaml.safe_load(
        (PROJECT_ROOT / "infra/grafana/provisioning/datasources/datasources.yml").read_text())
    types = {d["type"] for d in ds["datasources"]}
    assert {"grafana-clickhouse-datasource", "prometheus"} <= types
    ch = next(d for d in ds["datasources"] if d["type"] == "grafana-clickhouse-datasource")
    assert ch["jsonData"]["host"] == "clickhouse"
    assert ch["jsonData"]["defaultDatabase"] == DEFAULTS.clickhouse_database


def test_prometheus_scrapes_every_worker(compose: dict) -> None:
    prom = yaml.safe_load((PROJECT_ROOT / "infra/prometheus/prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"]
               for t in sc["targets"]}
    for svc, port in (("sink", DEFAULTS.sink_metrics_port), ("worker",
                      DEFAULTS.worker_metrics_port), ("notifier", DEFAULTS.notifier_metrics_port),
                      ("fleet", DEFAULTS.sdk_metrics_port)):
        assert svc in compose["services"]
        assert f"{svc}:{port}" in targets


def test_dockerfile_copies_every_package() -> None:
    text = (PROJECT_ROOT / "Dockerfile").read_text()
    for pkg in ("clawstream", "schemas", "producers", "streams", "consumers", "infra"):
        assert re.search(rf"^COPY {pkg} {pkg}$", text, re.M), pkg
    assert Path(PROJECT_ROOT / "pyproject.toml").exists()


# -- the `cluster` profile: ClickHouse Keeper + 2 shards x 2 replicas ---------------------------
CLUSTER_DIR = PROJECT_ROOT / "infra/clickhouse/cluster"


def cluster_services(compose: dict) -> dict[str, dict]:
    return {n: s for n, s in compose["services"].items() if "cluster" in s.get("profiles", [])}


def test_cluster_profile_is_keeper_and_four_servers_apart_from_the_default(compose: dict) -> None:
    svcs = cluster_services(compose)
    assert set(svcs) == {"keeper", "ch-s1r1", "ch-s1r2", "ch-s2r1", "ch-s2r2"}
    assert svcs["keeper"]["image"].startswith("clickhouse/clickhouse-keeper:")
    servers = {n: s for n, s in svcs.items() if n != "keeper"}
    for name, svc in servers.items():  # the same server version as the single-node stack
        assert svc["image"] == compose["services"]["clickhouse"]["image"], name
        assert svc["hostname"] == name
        assert svc["depends_on"]["keeper"]


def test_every_cluster_config_file_is_mounted_and_exists(compose: dict) -> None:
    for name, svc in cluster_services(compose).items():
        mounted = [str(v).split(":")[0] for v in svc["volumes"]]
        assert mounted, name
        for src in mounted:
            assert (PROJECT_ROOT / src).is_file(), f"{name}: {src}"
            ET.parse(PROJECT_ROOT / src)  # well-formed XML


def test_each_replica_has_its_own_macros(compose: dict) -> None:
    macros = ET.parse(CLUSTER_DIR / "macros.xml").getroot().find("macros")
    assert macros is not None
    envs = {m.tag: m.get("from_env") for m in macros if m.get("from_env")}
    assert set(envs) == {"shard", "replica"}
    seen = set()
    for name, svc in cluster_services(compose).items():
        if name == "keeper":
            continue
        env = svc["environment"]
        shard, replica = env[envs["shard"]], env[envs["replica"]]
        assert replica == name
        seen.add((shard, replica))
        ch = compose["services"]["clickhouse"]["environment"]
        for key in ("CLICKHOUSE_DB", "CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD"):
            assert env[key] == ch[key], f"{name}: {key}"
    assert len(seen) == 4 and {s for s, _r in seen} == {"01", "02"}


def test_cluster_definition_names_every_replica_and_keeper(compose: dict) -> None:
    from consumers.clickhouse.cluster import ClusterLayout

    root = ET.parse(CLUSTER_DIR / "cluster.xml").getroot()
    cluster = root.find(f"remote_servers/{ClusterLayout().cluster}")
    assert cluster is not None, "the cluster the rendering names is defined"
    svcs = cluster_services(compose)
    shards = []
    for shard in cluster.findall("shard"):
        assert shard.findtext("internal_replication") == "true"
        hosts = [r.findtext("host") for r in shard.findall("replica")]
        shards.append(hosts)
        for r in shard.findall("replica"):
            env = svcs[r.findtext("host")]["environment"]
            # the servers' own user; its password read from their environment (the .env's)
            assert r.findtext("user") == env["CLICKHOUSE_USER"]
            assert r.find("password").get("from_env") == "CLICKHOUSE_PASSWORD"
            assert env["CLICKHOUSE_PASSWORD"].startswith("${")
    assert len(shards) == 2 and all(len(h) == 2 for h in shards)
    # each shard's replicas share the shard macro; every server is in the definition once
    for hosts in shards:
        assert len({svcs[h]["environment"]["CLICKHOUSE_SHARD"] for h in hosts}) == 1
    assert sorted(h for hosts in shards for h in hosts) == sorted(set(svcs) - {"keeper"})
    keeper_port = ET.parse(CLUSTER_DIR / "keeper.xml").getroot().findtext(
        "keeper_server/tcp_port")
    assert [(n.findtext("host"), n.findtext("port")) for n in root.findall("zookeeper/node")] \
        == [("keeper", keeper_port)]
    assert root.findtext("distributed_ddl/path")  # ON CLUSTER DDL has a queue
