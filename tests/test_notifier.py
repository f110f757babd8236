"""The notifier: Alertmanager JSON, retries on 500, no retry on 4xx, a real Alertmanager."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from alerts_helpers import envelope, read_topic_records
from ports import free_port

from clawstream.kafka.config import client_config
from clawstream.settings import PROJECT_ROOT, Settings
from consumers.notifier import Notifier, to_alertmanager

T0 = 1_700_000_000_000


def alert(state: str, *, rule: str = "HighFail", agent: str = "a1", t: int = T0,
          ends_at: int | None = None, transition: str | None = None) -> dict[str, Any]:
    import uuid

    env = envelope(agent, t)
    env["event_id"] = str(uuid.uuid4())
    return {
        "envelope": env,
        "fingerprint": "fp-" + rule + agent,
        "incident_id": "inc-" + rule + agent,
        "rule": rule,
        "rule_kind": "threshold",
        "state": state,
        "severity": "critical",
        "labels": {"alertname": rule, "severity": "critical", "agent": agent, "app": ""},
        "annotations": {"summary": f"{agent} fails"},
        "value": 0.9,
        "starts_at": T0,
        "ends_at": ends_at,
        "transition": transition,
    }


def test_alertmanager_json_format() -> None:
    am = to_alertmanager(alert("firing"))
    assert am is not None
    assert am["labels"] == {"alertname": "HighFail", "severity": "critical", "agent": "a1"}
    assert am["annotations"]["summary"] == "a1 fails"
    assert am["annotations"]["incident_id"] == "inc-HighFaila1"
    assert am["startsAt"] == "2023-11-14T22:13:20.000+00:00"
    assert "endsAt" not in am
    assert am["generatorURL"].startswith("http://")
    res = to_alertmanager(alert("resolved", ends_at=T0 + 60_000))
    assert res is not None and res["endsAt"] == "2023-11-14T22:14:20.000+00:00"
    assert to_alertmanager(alert("pending")) is None
    assert to_alertmanager(alert("inactive")) is None
    tr = to_alertmanager(alert("transition", transition="OPEN->HALF_OPEN"))
    assert tr is not None and tr["annotations"]["transition"] == "OPEN->HALF_OPEN"


class Recorder:
    """A loopback HTTP server answering a scripted list of status codes (then 200)."""

    def __init__(self, codes: list[int]) -> None:
        self.codes = list(codes)
        self.requests: list[tuple[int, Any]] = []
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                code = rec.codes.pop(0) if rec.codes else 200
                rec.requests.append((code, body))
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v2/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def produce_alerts(settings: Settings, records: list[dict[str, Any]]) -> None:
    from alerts_helpers import produce

    produce(settings, [("alert", r) for r in records])


def run_until(n: Notifier, cond: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not cond():
        n.step()
    assert cond(), "condition not reached"


def committed_all(settings: Settings, group: str) -> bool:
    from confluent_kafka import Consumer, TopicPartition

    topic = settings.topic("claw.alerts.v1")
    c = Consumer(client_config(settings, "tool", "consumer", {"group.id": group}))
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        tps = [TopicPartition(topic, p) for p in parts]
        committed = {tp.partition: tp.offset for tp in c.committed(tps, timeout=10)}
        for tp in tps:
            _, high = c.get_watermark_offsets(tp, timeout=10)
            if high > 0 and committed[tp.partition] != high:
                return False
        return True
    finally:
        c.close()


@pytest.mark.integration
def test_notifier_retries_500_then_delivers_and_commits(cs_settings: Settings) -> None:
    server = Recorder([500, 500])
    produce_alerts(cs_settings, [alert("pending"), alert("firing"),
                                 alert("resolved", ends_at=T0 + 5000)])
    n = Notifier(cs_settings, [server.url], backoff_initial=0.05, batch_wait_s=0.5)
    try:
        run_until(n, lambda: any(code == 200 for code, _ in server.requests))
        codes = [c for c, _ in server.requests]
        assert codes == [500, 500, 200]
        body = server.requests[-1][1]
        assert body == server.requests[0][1]  # the same batch, retried
        assert sorted(a["annotations"]["state"] for a in body) == ["firing", "resolved"]
        assert committed_all(cs_settings, n.group)
    finally:
        n.close()
        server.close()


@pytest.mark.integration
def test_notifier_4xx_is_not_retried_goes_to_dlq(cs_settings: Settings) -> None:
    server = Recorder([400])
    produce_alerts(cs_settings, [alert("firing", agent="a7")])
    from confluent_kafka import Producer

    p = Producer(client_config(cs_settings, "tool", "producer"))
    p.produce(cs_settings.topic("claw.alerts.v1"), key=b"a7", value=b"\x00junk")
    p.flush(10)
    n = Notifier(cs_settings, [server.url], backoff_initial=0.05, batch_wait_s=0.5)
    try:
        run_until(n, lambda: len(server.requests) >= 1 and committed_all(cs_settings, n.group))
        n.step()
        assert [c for c, _ in server.requests] == [400]
        from schemas.headers import parse_headers

        heads = [parse_headers(m.headers())
                 for m in read_topic_records(cs_settings, "claw.dlq.v1", raw=True)]
        reasons = sorted(h["clawstream.error.reason"] for h in heads)
        assert "webhook-rejected" in reasons
        assert all(h["clawstream.failed.by"] == "notifier" for h in heads)
        assert len(heads) == 2  # the rejected alert and the junk message
    finally:
        n.close()
        server.close()


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


@pytest.fixture
def alertmanager(tmp_path: Path):
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.skip("prometheus-alertmanager binary not installed (apt install "
                    "prometheus-alertmanager)")
    port = free_port()
    cfg = tmp_path / "am.yml"
    cfg.write_text("route:\n  receiver: default\n  group_wait: 1s\nreceivers:\n  - name: default\n")
    log = open(tmp_path / "alertmanager.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [binary, f"--config.file={cfg}", f"--storage.path={tmp_path / 'am-data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            get_json(url + "/api/v2/status")
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("alertmanager did not start: " + (tmp_path / "alertmanager.log").read_text())
    yield url
    proc.terminate()
    proc.wait(15)
    log.close()


@pytest.mark.integration
@pytest.mark.slow
def test_notifier_cli_delivers_to_real_alertmanager(
    cs_settings: Settings, alertmanager: str, tmp_path: Path
) -> None:
    now = int(time.time() * 1000)
    firing = alert("firing", rule="RealAM", agent="am-1", t=now)
    firing["starts_at"] = now
    produce_alerts(cs_settings, [firing])
    log = open(tmp_path / "notifier.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "clawstream.cli", "notifier", "--webhook",
         alertmanager + "/api/v2/alerts", "--metrics-port", "0", "--backoff", "0.1"],
        cwd=PROJECT_ROOT, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        found: list[Any] = []
        while time.monotonic() < deadline and not found:
            found = get_json(alertmanager + '/api/v2/alerts?filter=alertname%3D%22RealAM%22')
            time.sleep(0.3)
        assert found, (tmp_path / "notifier.log").read_text()[-2000:]
        a = found[0]
        assert a["labels"]["agent"] == "am-1" and a["labels"]["severity"] == "critical"
        assert a["annotations"]["incident_id"] == "inc-RealAMam-1"
        assert a["status"]["state"] == "active"
        amtool = shutil.which("amtool")
        if amtool:
            out = subprocess.run(
                [amtool, "alert", "query", f"--alertmanager.url={alertmanager}",
                 "alertname=RealAM", "-o", "json"],
                capture_output=True, text=True, timeout=30, check=True).stdout
            assert json.loads(out)[0]["labels"]["agent"] == "am-1"
        # resolving: Alertmanager stops listing it as active
        resolved = alert("resolved", rule="RealAM", agent="am-1", t=now + 1000,
                         ends_at=now + 1000)
        resolved["starts_at"] = now
        produce_alerts(cs_settings, [resolved])
        deadline = time.monotonic() + 60
        active = found
        while time.monotonic() < deadline and active:
            active = get_json(alertmanager + "/api/v2/alerts?active=true&filter="
                              "alertname%3D%22RealAM%22")
            time.sleep(0.3)
        assert active == []
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
