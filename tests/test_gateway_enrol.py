"""Enrolling a remote agent in one file, end to end: `clawstream gateway` serves the project
CA's certificate (no TLS settings), `clawstream tokens create --write-config` writes the URL,
token and CA into a client config file, and an agent process given only that file sends
through the gateway; the sink stores its events with their principal. And a real Prometheus
with docker-compose's scrape job for the gateway scrapes two replicas over HTTPS."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from gateway_helpers import ROOT, GatewayProcess, TlsFiles, pki_tls
from ports import free_port
from test_gateway import land, start_gateway, stored  # noqa: F401 (a fixture)

from clawstream.settings import Settings

pytestmark = pytest.mark.integration

AGENT = "enrolled-1"
EVENTS = 300

#: the agent machine's program: the SDK with the settings its environment gives, nothing else
AGENT_SCRIPT = """
import json, random, sys
from producers.sdk import AgentClient
from producers.settings import sdk_settings
from schemas.samples import sample

settings = sdk_settings()
client = AgentClient(settings, sys.argv[1])
rng = random.Random(7)
for i in range(int(sys.argv[2])):
    et = "action" if i % 2 == 0 else "outcome"
    record = sample(et, rng, agent_id=sys.argv[1])
    client.emit(et, {k: v for k, v in record.items() if k != "envelope"})
left = client.flush(90)
stats = client.stats()
client.close()
print(json.dumps({"url": settings.ingest_url, "left": left, "failed": bool(stats["failed"]),
                  "delivered": sum(stats["delivered"].values())}))
"""


@pytest.fixture
def tls(cs_settings: Settings) -> TlsFiles:
    """test_gateway's `start_gateway` gives the gateways no certificate: they make (once) and
    serve the project CA's."""
    return pki_tls(cs_settings.data_dir)


@pytest.fixture
def launch(request: pytest.FixtureRequest) -> Callable[..., GatewayProcess]:
    """test_gateway's `start_gateway` (imported above), with the `tls` above."""
    fixture: Callable[..., GatewayProcess] = request.getfixturevalue("start_gateway")
    return fixture


@pytest.fixture
def gateway(launch: Callable[..., GatewayProcess]) -> GatewayProcess:
    return launch()


def test_an_agent_with_only_its_client_config_file_sends_through_the_gateway(
        cs_settings: Settings, gateway: GatewayProcess, tmp_path: Path) -> None:
    assert "made the project CA's gateway certificate" in gateway.log_file.read_text()
    config = tmp_path / "agent-machine" / f"{AGENT}.json"
    config.parent.mkdir()
    made = subprocess.run(
        [sys.executable, "-m", "clawstream.cli", "tokens", "create", "--agent", AGENT,
         "--write-config", str(config), "--url", gateway.url],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    doc = json.loads(config.read_text())
    token = doc["ingest_token"]
    assert made.stdout == "" and token not in made.stderr  # only in the file (0600)
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    assert doc["ingest_ca_pem"] == (cs_settings.data_dir / "security/pki/ca.crt").read_text()

    # the agent machine: that file, a folder for its spool, and nothing else
    env = {"PATH": os.environ["PATH"], "CLAWSTREAM_KAFKA_CLIENT_CONFIG": str(config),
           "CLAWSTREAM_DATA_DIR": str(config.parent / "data")}
    if "PYTHONPATH" in os.environ:  # (a checkout run from another's virtual environment)
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    agent = subprocess.run([sys.executable, "-c", AGENT_SCRIPT, AGENT, str(EVENTS)],
                           cwd=config.parent, env=env, capture_output=True, text=True,
                           timeout=180)
    assert agent.returncode == 0, agent.stderr[-3000:]
    result = json.loads(agent.stdout.strip().splitlines()[-1])
    assert result == {"url": gateway.url, "left": 0, "failed": False, "delivered": EVENTS}

    land(cs_settings)
    assert stored(cs_settings, AGENT) == (EVENTS, EVENTS, 1, EVENTS,
                                          [f"token:{doc['ingest_token_id']}"])
    for text in (gateway.log_file.read_text(), agent.stderr):
        assert token not in text and token[20:] not in text


def test_prometheus_scrapes_both_replicas_over_https(
        launch: Callable[..., GatewayProcess], tmp_path: Path) -> None:
    """docker-compose's scrape job as it is (HTTPS, the CA, server name "gateway"), pointed at
    two replicas here: each serves the one certificate of the project CA they share."""
    prom = shutil.which("prometheus")
    if prom is None:
        pytest.skip("Debian's prometheus is not installed (make test installs it)")
    replicas = [launch(gateway_tls_hosts="gateway") for _ in range(2)]
    config = yaml.safe_load((ROOT / "infra/prometheus/prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "clawstream-gateway")
    assert job["static_configs"][0]["targets"] == ["gateway-1:8443", "gateway-2:8443"]
    job["tls_config"]["ca_file"] = str(replicas[0].tls.ca)
    job["static_configs"] = [{"targets": [gw.url.removeprefix("https://") for gw in replicas]}]
    job["scrape_interval"] = "1s"
    config = {"global": {"scrape_interval": "1s"}, "scrape_configs": [job]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    with open(tmp_path / "prometheus.log", "wb") as log:
        proc = subprocess.Popen([prom, f"--config.file={tmp_path / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp_path / 'db'}",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline, active = time.monotonic() + 60, []
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets",
                                            timeout=5) as resp:
                    active = json.loads(resp.read())["data"]["activeTargets"]
            except OSError:
                active = []
            if len(active) == 2 and all(t["health"] == "up" for t in active):
                break
            time.sleep(0.5)
        assert len(active) == 2 and all(t["health"] == "up" for t in active), (
            [(t["scrapeUrl"], t["health"], t["lastError"]) for t in active],
            (tmp_path / "prometheus.log").read_text()[-2000:])
        assert {t["scrapeUrl"] for t in active} == {f"{gw.url}/metrics" for gw in replicas}
    finally:
        proc.terminate()
        proc.wait(30)
