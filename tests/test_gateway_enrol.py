"""Enrolling a remote agent in one file, end to end: `clawstream gateway` serves the project
CA's certificate (no TLS settings), `clawstream tokens create --write-config` writes the URL,
token and CA into a client config file, and an agent process given only that file sends
through the gateway; the sink stores its events with their principal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_helpers import ROOT, GatewayProcess, pki_tls
from ports import free_port
from test_gateway import land, stored

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
def gateway(cs_settings: Settings, tmp_path: Path) -> Iterator[GatewayProcess]:
    """A gateway given no certificate: it makes and serves the project CA's."""
    gw = GatewayProcess(pki_tls(cs_settings.data_dir), free_port(), tmp_path / "gateway.log")
    yield gw.start()
    gw.stop()


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
