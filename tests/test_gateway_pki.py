"""The gateway's certificate from the project PKI, and the client config file that enrols an
agent in one file (no broker: the files and the settings that read them)."""

from __future__ import annotations

import json
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from pydantic import SecretStr

from clawstream.gateway.enrol import check_url, gateway_ca_pem, write_enrolment
from clawstream.gateway.server import TlsConfigError, tls_files
from clawstream.gateway.tokens import TokenError, new_token
from clawstream.kafka.security import credential_for
from clawstream.security.credentials import Credential
from clawstream.security.local import LocalSecurity
from clawstream.security.pki import ensure_gateway_cert, ensure_pki
from clawstream.settings import Settings
from producers.sdk.gateway_wire import ssl_context
from producers.settings import SdkSettings


def settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", _env_file=None, **extra)  # type: ignore[call-arg]


def names(cert_file: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(n) for n in san.get_values_for_type(x509.DNSName)} | {
        str(a) for a in san.get_values_for_type(x509.IPAddress)}


def test_without_settings_the_gateway_serves_a_project_ca_certificate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CLAWSTREAM_GATEWAY_TLS_CERT", "CLAWSTREAM_GATEWAY_TLS_KEY"):
        monkeypatch.delenv(var, raising=False)
    s = settings(tmp_path, gateway_tls_hosts="gw.example, 10.1.2.3")
    cert, key = tls_files(s, "0.0.0.0")
    pki = LocalSecurity.of(s).pki
    assert (cert, key) == (pki.gateway_cert, pki.gateway_key)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(pki.dir.stat().st_mode) == 0o700
    assert names(cert) == {"gw.example", "10.1.2.3", "localhost", "127.0.0.1", "::1"}
    # what a client that trusts the project CA accepts: the chain and the key belong together
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    x509.load_pem_x509_certificate(cert.read_bytes()).verify_directly_issued_by(
        x509.load_pem_x509_certificate(pki.ca_cert.read_bytes()))
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    # made once: a second start serves the same certificate
    before = cert.read_bytes()
    assert tls_files(s) == (cert, key) and cert.read_bytes() == before


def test_a_new_host_name_gets_a_new_certificate_that_keeps_the_old_names(
        tmp_path: Path) -> None:
    pki, made = ensure_gateway_cert(tmp_path / "pki", ["gw-a.example"])
    assert made
    ca = pki.ca_cert.read_bytes()
    assert not ensure_gateway_cert(tmp_path / "pki", ["GW-A.example", "127.0.0.1"])[1]
    _, made = ensure_gateway_cert(tmp_path / "pki", ["gw-b.example"])
    assert made and pki.ca_cert.read_bytes() == ca  # the same CA: agents keep trusting it
    assert {"gw-a.example", "gw-b.example", "localhost"} <= names(pki.gateway_cert)


def test_the_broker_and_the_gateway_share_one_ca(tmp_path: Path) -> None:
    """Whichever is made first, the other is signed by the same CA (an existing CA is never
    replaced)."""
    gw_first, _ = ensure_gateway_cert(tmp_path / "a")
    ca = gw_first.ca_cert.read_bytes()
    assert ensure_pki(tmp_path / "a")[1] and gw_first.ca_cert.read_bytes() == ca
    broker_first, _ = ensure_pki(tmp_path / "b")
    ca = broker_first.ca_cert.read_bytes()
    ensure_gateway_cert(tmp_path / "b")
    assert broker_first.ca_cert.read_bytes() == ca
    x509.load_pem_x509_certificate(broker_first.gateway_cert.read_bytes()) \
        .verify_directly_issued_by(x509.load_pem_x509_certificate(ca))


def test_explicit_certificate_settings_win(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("y")
    s = settings(tmp_path, gateway_tls_cert=cert, gateway_tls_key=key)
    assert tls_files(s) == (cert, key)
    assert not LocalSecurity.of(s).pki.dir.exists()  # no PKI made for nothing
    with pytest.raises(TlsConfigError, match="both"):
        tls_files(settings(tmp_path, gateway_tls_cert=cert))


def enrol(tmp_path: Path, path: Path, agent: str = "desk-42") -> tuple[SecretStr, Settings]:
    s = settings(tmp_path)
    tls_files(s)  # (the gateway's first start makes the PKI)
    token, record = new_token(agent=agent)
    write_enrolment(path, url=check_url("https://gw.example:8443/"), token=token,
                    record=record, ca_pem=gateway_ca_pem(s, None), namespace="ns.")
    return token, s


def test_one_file_configures_an_agent_for_the_gateway(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CLAWSTREAM_INGEST_URL", "CLAWSTREAM_INGEST_TOKEN", "CLAWSTREAM_INGEST_CA_FILE",
                "CLAWSTREAM_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "desk-42.json"
    token, s = enrol(tmp_path, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["role"] == "agent" and doc["name"] == "desk-42" and doc["namespace"] == "ns."
    # a data dir of its own: the suite's secured broker records itself under ./data
    agent = SdkSettings(kafka_client_config=path, data_dir=tmp_path / "agent",  # type: ignore[call-arg]
                        _env_file=None)
    assert agent.ingest_url == "https://gw.example:8443"
    assert agent.ingest_token is not None
    assert agent.ingest_token.get_secret_value() == token.get_secret_value()
    assert agent.ingest_ca_pem == LocalSecurity.of(s).pki.ca_pem()
    assert token.get_secret_value() not in repr(agent)
    ssl_context(agent)  # the CA loads
    # no Kafka credential in it: the Kafka side connects as it would without the file
    assert Credential.in_file(path) is None
    assert credential_for(agent, "agent") is None
    # explicit settings still win
    monkeypatch.setenv("CLAWSTREAM_INGEST_URL", "https://other:1")
    assert SdkSettings(kafka_client_config=path,  # type: ignore[call-arg]
                       _env_file=None).ingest_url == "https://other:1"


def test_a_kafka_client_config_file_gets_the_gateway_added(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLAWSTREAM_BOOTSTRAP_SERVERS", raising=False)
    path = tmp_path / "laptop.json"
    Credential("laptop", "agent", "", "10.0.0.1:9093", SecretStr("pw"), "CA").write(path)
    enrol(tmp_path, path, agent="laptop")
    cred = Credential.in_file(path)
    assert cred is not None and cred.bootstrap_servers == "10.0.0.1:9093"
    agent = SdkSettings(kafka_client_config=path, _env_file=None)  # type: ignore[call-arg]
    assert agent.bootstrap_servers == "10.0.0.1:9093"
    assert agent.ingest_url == "https://gw.example:8443"
    # a second enrolment replaces the gateway fields, keeps the Kafka credential
    enrol(tmp_path, path, agent="laptop")
    assert Credential.in_file(path) == cred


@pytest.mark.parametrize("url", ["", "http://gw:80", "https://gw/v1/events", "gw:8443"])
def test_an_enrolment_names_a_gateway_url(url: str) -> None:
    with pytest.raises(TokenError):
        check_url(url)


def test_without_a_project_ca_the_enrolment_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(TokenError, match="pki init --gateway-host"):
        gateway_ca_pem(settings(tmp_path), None)
    assert gateway_ca_pem(settings(tmp_path, gateway_tls_cert=tmp_path / "x"), None) == ""
