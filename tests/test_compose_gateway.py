"""The ingest gateway in docker-compose.yml (no Docker engine here): two replicas of
`clawstream gateway` behind Caddy (`ingest-proxy`), which terminates TLS; the Caddyfile
names both replicas and is checked by Caddy itself (`caddy validate`) when Caddy is installed
(`make install` installs it with apt-get)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from gateway_helpers import make_tls

from clawstream.cli import COMMANDS
from clawstream.settings import PROJECT_ROOT, Settings

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
CADDYFILE = PROJECT_ROOT / "infra/gateway/Caddyfile"
PROXY = "ingest-proxy"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|CREDENTIAL", re.I)


@pytest.fixture(scope="module")
def services() -> dict[str, dict]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def replicas(services: dict[str, dict]) -> dict[str, dict]:
    return {name: svc for name, svc in services.items()
            if svc.get("command", [])[:2] == ["clawstream", "gateway"]}


def test_two_gateway_replicas_serve_https_and_are_not_published(
        services: dict[str, dict]) -> None:
    gws = replicas(services)
    assert sorted(gws) == ["gateway-1", "gateway-2"]
    fields = {f"CLAWSTREAM_{n.upper()}" for n in Settings.model_fields}
    for name, svc in gws.items():
        assert svc["image"] == services["sink"]["image"], name  # the project's image
        assert svc["command"][1] in COMMANDS
        assert "ports" not in svc, f"{name}: only the proxy is reachable from outside"
        assert "8443" in [str(p) for p in svc["expose"]]
        assert "--port" in svc["command"] and "8443" in svc["command"]
        env = svc["environment"]
        unknown = {k for k in env if k.startswith("CLAWSTREAM_")} - fields
        assert not unknown, f"{name}: unknown settings {unknown}"
        assert env["CLAWSTREAM_BOOTSTRAP_SERVERS"] == "kafka:29092"
        tls_dir = "/etc/clawstream/tls"
        assert any(str(v).endswith(f":{tls_dir}:ro") for v in svc["volumes"])
        assert env["CLAWSTREAM_GATEWAY_TLS_CERT"].startswith(tls_dir + "/")
        assert env["CLAWSTREAM_GATEWAY_TLS_KEY"].startswith(tls_dir + "/")
        # the agent's address comes from the proxy's X-Forwarded-For (throttling, access log)
        assert env["FORWARDED_ALLOW_IPS"]


def test_replicas_are_health_checked_on_healthz(services: dict[str, dict]) -> None:
    for name, svc in replicas(services).items():
        test = " ".join(svc["healthcheck"]["test"])
        assert "https://localhost:8443/healthz" in test, name
        assert "/etc/clawstream/tls/ca.pem" in test, f"{name}: checks the certificate too"


def test_the_proxy_fronts_both_replicas_on_loopback(services: dict[str, dict]) -> None:
    proxy = services[PROXY]
    image = proxy["image"]
    assert image.startswith("caddy:") and not image.endswith(":latest")
    for spec in proxy["ports"]:
        assert str(spec).startswith("127.0.0.1:"), f"{spec}: publish on loopback only"
    assert [str(p) for p in proxy["ports"]] == ["127.0.0.1:8443:8443"]
    assert {k: v["condition"] for k, v in proxy["depends_on"].items()} == {
        name: "service_healthy" for name in replicas(services)}
    mounts = [str(v) for v in proxy["volumes"]]
    assert "./infra/gateway/Caddyfile:/etc/caddy/Caddyfile:ro" in mounts
    assert any(m.endswith(":/etc/caddy/tls:ro") for m in mounts)
    assert CADDYFILE.is_file()
    for name in [PROXY, *replicas(services)]:
        assert services[name]["profiles"] == ["gateway"], f"{name}: opt-in (certificates)"


def test_the_caddyfile_names_both_replicas_and_their_readiness() -> None:
    text = CADDYFILE.read_text()
    upstreams = re.search(r"^\s*reverse_proxy\s+(.+?)\s*\{", text, re.M)
    assert upstreams is not None
    assert upstreams.group(1).split() == ["gateway-1:8443", "gateway-2:8443"]
    assert re.search(r"^\s*health_uri /readyz$", text, re.M)
    assert re.search(r"^\s*tls_trusted_ca_certs \S+/ca\.pem$", text, re.M)  # re-encrypted
    assert re.search(r"^\s*tls \S+/ingest\.pem \S+/ingest\.key$", text, re.M)  # terminated


def test_prometheus_scrapes_both_replicas_over_https(services: dict[str, dict]) -> None:
    """/metrics of each replica, over HTTPS with the CA the replicas' certificates come from
    (a real Prometheus runs this job against two replicas in tests/test_gateway_enrol.py)."""
    prom = yaml.safe_load((PROJECT_ROOT / "infra/prometheus/prometheus.yml").read_text())
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "clawstream-gateway")
    port = next(str(p) for svc in replicas(services).values() for p in svc["expose"])
    assert job["static_configs"][0]["targets"] == [f"{n}:{port}" for n in replicas(services)]
    assert job["scheme"] == "https" and job.get("metrics_path", "/metrics") == "/metrics"
    ca_dir, ca_name = job["tls_config"]["ca_file"].rsplit("/", 1)
    assert ca_name == "ca.pem" and job["tls_config"]["server_name"] == "gateway"
    # the folder the replicas' certificates (and their CA) come from, mounted into Prometheus
    gateway_tls = next(str(v).rsplit(":", 2)[0] for v in services["gateway-1"]["volumes"]
                       if str(v).endswith(":/etc/clawstream/tls:ro"))
    assert f"{gateway_tls}:{ca_dir}:ro" in [str(v) for v in services["prometheus"]["volumes"]]
    assert "insecure_skip_verify" not in str(job)


def test_no_secret_in_clear(services: dict[str, dict]) -> None:
    for name in [PROXY, *replicas(services)]:
        for key, value in services[name].get("environment", {}).items():
            if SECRET_NAME.search(key):
                assert str(value).startswith(("/", "${")), f"{name}: {key} is a secret in clear"
    for text in (COMPOSE.read_text(), CADDYFILE.read_text()):
        assert "PRIVATE KEY" not in text and "cst_" not in text


def test_caddy_validates_the_caddyfile(tmp_path: Path) -> None:
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed (`make install` installs it with apt-get; it "
                    "could not here: no apt-get, no root, or CLAWSTREAM_SKIP_APT=1)")
    tls = make_tls(tmp_path / "tls", hosts=("localhost",))
    shutil.copy(tls.cert, tls.cert.with_name("ingest.pem"))
    shutil.copy(tls.key, tls.key.with_name("ingest.key"))
    env = {**os.environ, "CLAWSTREAM_PROXY_TLS_DIR": str(tls.ca.parent), "HOME": str(tmp_path),
           "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    cmd = [caddy, "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Valid configuration" in done.stdout + done.stderr
    # and it does check: without the certificates the same file is refused
    (tls.ca.parent / "ingest.key").unlink()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
