"""The HTTPS ingest gateway against the real broker and chdb: `clawstream gateway` runs as its
own process with a throw-away CA's certificate; agents send through the SDK's HTTPS transport
or plain HTTP clients; the sink lands what Kafka holds in ClickHouse."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from gateway_helpers import GatewayProcess, TlsFiles, make_tls
from kafka_read import end_offsets, read_messages
from ports import free_port

from clawstream.gateway.batch import AVRO_BATCH, frame
from clawstream.gateway.tokens import create_token, revoke_token
from clawstream.settings import Settings
from consumers import clickhouse as ch
from consumers.sink import Sink
from producers.sdk import AgentClient
from producers.settings import SdkSettings
from schemas.headers import DLQ_REASON, PRINCIPAL, SOURCE_TOPIC, parse_headers
from schemas.samples import sample
from schemas.serde import Serde
from schemas.topics import DLQ, EVENT_TOPICS

pytestmark = pytest.mark.integration

StartGateway = Callable[..., GatewayProcess]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def start_gateway(cs_settings: Settings, tls: TlsFiles, tmp_path: Path) -> Iterator[StartGateway]:
    """Start `clawstream gateway` replicas (settings from the environment plus `env`)."""
    started: list[GatewayProcess] = []

    def start(**env: str) -> GatewayProcess:
        name = f"gateway-{len(started)}.log"
        gw = GatewayProcess(tls, free_port(), tmp_path / name,
                            {f"CLAWSTREAM_{k.upper()}": v for k, v in env.items()})
        started.append(gw)
        return gw.start()

    yield start
    for gw in started:
        gw.stop()


def agent_settings(settings: Settings, gw: GatewayProcess, token: str,
                   ca: Path | None, **extra: object) -> SdkSettings:
    """What an agent machine has: the gateway's URL, its token and the CA (no Kafka)."""
    return SdkSettings(bootstrap_servers="127.0.0.1:1", topic_namespace=settings.topic_namespace,
                       data_dir=settings.data_dir / "agent-machine", ingest_url=gw.url,
                       ingest_token=token, ingest_ca_file=ca, **extra)


def bodies(n: int, agent: str, seed: int = 1) -> list[tuple[str, dict[str, object]]]:
    """`n` (event type, body) pairs an agent would emit: actions and outcomes."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        et = "action" if i % 2 == 0 else "outcome"
        rec = sample(et, rng, agent_id=agent)
        out.append((et, {k: v for k, v in rec.items() if k != "envelope"}))
    return out


def encoded(n: int, agent: str, seed: int = 2) -> list[bytes]:
    """`n` encoded events of `agent` (what the SDK would put on the wire)."""
    rng = random.Random(seed)
    serde = Serde()
    base = int(time.time() * 1000)
    return [serde.encode("action", sample("action", rng, agent_id=agent, session_id="s",
                                          trace_id="s", seq=i + 1, event_time=base + i))
            for i in range(n)]


def post(gw: GatewayProcess, token: str | None, body: bytes,
         content_type: str = AVRO_BATCH, **headers: str) -> httpx.Response:
    h = {"Content-Type": content_type, **headers}
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{gw.url}/v1/events", content=body, headers=h,
                      verify=gw.ssl_context(), timeout=30)


def written(settings: Settings) -> int:
    """Messages on the namespace's event topics and DLQ."""
    topics = [settings.topic(t) for t in (*EVENT_TOPICS, DLQ)]
    return sum(end_offsets(settings.bootstrap_servers, topics).values())


def land(settings: Settings) -> None:
    Sink(settings, serve_metrics_endpoint=False).run(until_idle=4)


def stored(settings: Settings, agent: str) -> tuple[int, int, int, int, list[str]]:
    """count, distinct event ids, min seq, max seq, distinct principals of `agent`."""
    rows = ch.query(settings, "SELECT count(), uniqExact(event_id), min(seq), max(seq), "
                    "groupUniqArray(principal) FROM events WHERE agent_id = {a:String}",
                    {"a": agent}).rows
    n, u, lo, hi, principals = rows[0]
    return int(n), int(u), int(lo), int(hi), sorted(principals)


def test_1000_events_through_the_sdk_are_stored_with_their_principal(
        cs_settings: Settings, start_gateway: StartGateway, tls: TlsFiles) -> None:
    token, record = create_token(cs_settings, agent="remote-1")
    gw = start_gateway()
    client = AgentClient(agent_settings(cs_settings, gw, token.get_secret_value(), tls.ca),
                         "remote-1")
    for et, body in bodies(1000, "remote-1"):
        client.emit(et, body)
    assert client.flush(60) == 0
    stats = client.stats()
    client.close()
    assert sum(stats["delivered"].values()) == 1000 and not stats["failed"]
    land(cs_settings)
    assert stored(cs_settings, "remote-1") == (1000, 1000, 1, 1000, [f"token:{record.token_id}"])
    # the access log names the principal, never the token
    log = gw.log_file.read_text()
    assert f"principal=token:{record.token_id}" in log
    assert token.get_secret_value() not in log and token.get_secret_value()[20:] not in log


def test_json_events_are_validated_against_the_same_schemas(
        cs_settings: Settings, start_gateway: StartGateway) -> None:
    token, _record = create_token(cs_settings, agent_prefix="json-")
    gw = start_gateway()
    rng = random.Random(3)
    good = sample("outcome", rng, agent_id="json-1")
    bad = sample("outcome", rng, agent_id="json-1")
    bad["status"] = "maybe"  # not one of the enum's symbols
    doc = {"events": [{"type": "outcome", "record": good}, {"type": "outcome", "record": bad},
                      {"type": "no-such-type", "record": good}]}
    r = post(gw, token.get_secret_value(), json.dumps(doc).encode(), "application/json")
    assert r.status_code == 207, r.text
    assert r.json()["accepted"] == 1
    assert [(x["index"], x["reason"]) for x in r.json()["refused"]] == [
        (1, "invalid-record"), (2, "unknown-type")]
    land(cs_settings)
    assert stored(cs_settings, "json-1")[:2] == (1, 1)


def test_without_a_valid_token_401_and_nothing_is_written(
        cs_settings: Settings, start_gateway: StartGateway) -> None:
    token, _record = create_token(cs_settings, agent="a-1")
    gw = start_gateway()
    body = frame(encoded(10, "a-1"))
    secret = token.get_secret_value()
    forged = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    for bad in (None, "not-a-token", forged):
        r = post(gw, bad, body)
        assert r.status_code == 401, (bad, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
    assert post(gw, None, body, Authorization=f"Basic {secret}").status_code == 401
    time.sleep(1)
    assert written(cs_settings) == 0
    assert forged not in gw.log_file.read_text()
    # the right token still works from the same address (below the failure throttle)
    assert post(gw, secret, body).status_code == 200


def test_failed_authentication_is_throttled_per_address(
        cs_settings: Settings, start_gateway: StartGateway) -> None:
    token, _record = create_token(cs_settings, agent="a-1")
    gw = start_gateway(gateway_auth_max_failures="3", gateway_auth_block_s="30")
    body = frame(encoded(1, "a-1"))
    codes = [post(gw, "cst_0000000000000000_" + "x" * 43, body).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    r = post(gw, token.get_secret_value(), body)  # blocked: the token is not even looked at
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert written(cs_settings) == 0


def test_one_foreign_agent_id_in_500_gives_207_and_a_dead_letter(
        cs_settings: Settings, start_gateway: StartGateway) -> None:
    token, record = create_token(cs_settings, agent="mine")
    gw = start_gateway()
    values = encoded(500, "mine")
    foreign = encoded(1, "someone-else", seed=9)[0]
    values[137] = foreign
    r = post(gw, token.get_secret_value(), frame(values))
    assert r.status_code == 207, r.text
    doc = r.json()
    assert doc["accepted"] == 499
    assert [(x["index"], x["status"], x["reason"]) for x in doc["refused"]] == [
        (137, 403, "agent-mismatch")]
    land(cs_settings)
    assert stored(cs_settings, "mine")[:2] == (499, 499)
    assert stored(cs_settings, "someone-else")[0] == 0
    dead = read_messages(cs_settings.bootstrap_servers, [cs_settings.topic(DLQ)], min_count=1)
    assert len(dead) == 1
    h = parse_headers(dead[0].headers())
    assert h[DLQ_REASON] == "agent-mismatch"
    assert h[PRINCIPAL] == f"token:{record.token_id}"
    assert h[SOURCE_TOPIC] == cs_settings.topic("claw.actions.v1")
    assert dead[0].value() == foreign


def test_over_the_size_limits_413_and_nothing_is_written(
        cs_settings: Settings, start_gateway: StartGateway) -> None:
    token, _record = create_token(cs_settings, agent="big")
    gw = start_gateway(gateway_max_body_bytes="20000", gateway_max_events="50")
    secret = token.get_secret_value()
    values = encoded(200, "big")
    assert len(frame(values)) > 20000
    r = post(gw, secret, frame(values))
    assert r.status_code == 413 and r.json()["error"] == "too-large"
    r = post(gw, secret, frame(values[:60]))
    assert r.status_code == 413 and r.json()["error"] == "too-many-events"
    # compressed small, decompressed over the limit: decompression stops at the limit
    import cramjam
    bomb = bytes(cramjam.zstd.compress(frame(values[:40]) + b"\0" * 100_000, 3))
    r = post(gw, secret, bomb, **{"Content-Encoding": "zstd"})
    assert r.status_code == 413
    r = post(gw, secret, b"\x00\x00\x01")
    assert r.status_code == 400 and r.json()["error"] == "malformed-batch"
    time.sleep(1)
    assert written(cs_settings) == 0
    assert post(gw, secret, frame(values[:50])).status_code == 200


def test_rate_limit_429_and_the_sdk_retries_after_retry_after(
        cs_settings: Settings, start_gateway: StartGateway, tls: TlsFiles) -> None:
    token, _record = create_token(cs_settings, agent_prefix="rl-")
    gw = start_gateway(gateway_rate_events_per_s="500", gateway_rate_burst="500")
    secret = token.get_secret_value()
    assert post(gw, secret, frame(encoded(500, "rl-0"))).status_code == 200
    r = post(gw, secret, frame(encoded(500, "rl-0", seed=5)))
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    client = AgentClient(agent_settings(cs_settings, gw, secret, tls.ca), "rl-1")
    for et, body in bodies(2000, "rl-1"):
        client.emit(et, body)
    started = time.monotonic()
    assert client.flush(60) == 0
    took = time.monotonic() - started
    client.close()
    land(cs_settings)
    assert stored(cs_settings, "rl-1")[:4] == (2000, 2000, 1, 2000)
    assert took >= 2.0  # 2000 events at 500/s after the burst went to rl-0: it did wait
    metrics = httpx.get(f"{gw.url}/metrics", verify=gw.ssl_context()).text
    assert 'clawstream_gateway_requests_total{code="429"}' in metrics
    assert 'clawstream_gateway_rejected_events_total{reason="rate-limited"}' in metrics


def test_a_revoked_token_is_refused_by_two_replicas_within_5_s(
        cs_settings: Settings, start_gateway: StartGateway) -> None:
    token, record = create_token(cs_settings, agent="rev")
    replicas = [start_gateway(), start_gateway()]
    secret = token.get_secret_value()
    body = frame(encoded(5, "rev"))
    assert [post(gw, secret, body).status_code for gw in replicas] == [200, 200]
    revoke_token(cs_settings, record.token_id)
    revoked_at = time.monotonic()
    refused_after: dict[int, float] = {}
    while len(refused_after) < 2 and time.monotonic() - revoked_at < 10:
        for i, gw in enumerate(replicas):
            if i not in refused_after and post(gw, secret, body).status_code == 401:
                refused_after[i] = time.monotonic() - revoked_at
        time.sleep(0.05)
    assert sorted(refused_after) == [0, 1], refused_after
    assert max(refused_after.values()) <= 5.0, refused_after


def test_a_client_that_does_not_trust_the_ca_fails_clearly_and_keeps_its_events(
        cs_settings: Settings, start_gateway: StartGateway, tls: TlsFiles,
        caplog: pytest.LogCaptureFixture) -> None:
    token, _record = create_token(cs_settings, agent="untrusting")
    gw = start_gateway()
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{gw.url}/healthz")  # the system's CAs do not know the test CA
    secret = token.get_secret_value()
    client = AgentClient(agent_settings(cs_settings, gw, secret, None), "untrusting")
    for et, body in bodies(20, "untrusting"):
        client.emit(et, body)
    assert client.flush(3) == 20
    assert client.close(timeout=1) == 20
    text = caplog.text
    assert "certificate is not trusted" in text and "CLAWSTREAM_INGEST_CA_FILE" in text
    assert written(cs_settings) == 0
    # with the CA the same agent's next run replays the spool: nothing was lost
    client = AgentClient(agent_settings(cs_settings, gw, secret, tls.ca), "untrusting")
    assert client.flush(30) == 0
    client.close()
    land(cs_settings)
    assert stored(cs_settings, "untrusting")[:4] == (20, 20, 1, 20)


def test_an_event_over_kafkas_message_size_is_refused_alone(
        cs_settings: Settings, start_gateway: StartGateway) -> None:
    """An item Kafka would not take (over message.max.bytes) is refused in the 207 (413
    too-large), the rest of its batch stored; the DLQ cannot hold it either, so it is only
    answered."""
    token, _record = create_token(cs_settings, agent="huge")
    gw = start_gateway()
    serde = Serde()
    frame_record = sample("frame", random.Random(4), agent_id="huge")
    frame_record["thumbnail"] = b"\xff" * 1_200_000
    big = serde.encode("frame", frame_record)
    values = encoded(3, "huge")
    r = post(gw, token.get_secret_value(), frame([values[0], big, values[1], values[2]]))
    assert r.status_code == 207, r.text
    doc = r.json()
    assert doc["accepted"] == 3
    assert [(x["index"], x["status"], x["reason"]) for x in doc["refused"]] == [
        (1, 413, "too-large")]
    time.sleep(1)
    assert written(cs_settings) == 3
