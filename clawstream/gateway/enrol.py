"""Enrolling a remote agent in one file.

`clawstream tokens create --agent ID --write-config PATH` writes the gateway's URL, the new
token and the CA that signed the gateway's certificate into a client config file: the format
`clawstream credentials add` writes for Kafka, with `ingest_*` fields added (to a Kafka client
config file already at PATH, or alone), mode 0600. The agent machine points
`CLAWSTREAM_KAFKA_CLIENT_CONFIG` at it and needs nothing else: the SDK's settings take
`ingest_url`, `ingest_token` and `ingest_ca_pem` from it (`producers.settings`). The token is
in that file and nowhere else: never printed, never logged.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from pydantic import SecretStr

from clawstream.gateway.tokens import TokenError, TokenRecord
from clawstream.security.credentials import CredentialError, update_client_config
from clawstream.security.local import LocalSecurity
from clawstream.settings import Settings


def check_url(url: str | None) -> str:
    """The gateway's URL as agents will use it: https://host[:port], nothing after."""
    if not url:
        raise TokenError("the gateway's URL is needed in the file: --url https://HOST:PORT "
                         "(or CLAWSTREAM_INGEST_URL)")
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.path.strip("/") or parts.query:
        raise TokenError(f"{url!r} is not a gateway URL: https://HOST[:PORT]")
    return url.rstrip("/")


def gateway_ca_pem(settings: Settings, ca_file: Path | None) -> str:
    """The CA agents check the gateway's certificate against: `ca_file`; else the project CA
    when the gateway serves the project PKI's certificate (no CLAWSTREAM_GATEWAY_TLS_CERT);
    else "" (the agent trusts its system's CAs: a public CA's certificate)."""
    if ca_file is not None:
        pem = ca_file.read_text()
    elif settings.gateway_tls_cert is None:
        pki = LocalSecurity.of(settings).pki
        if not pki.ca_cert.exists():
            raise TokenError(f"no project CA in {pki.dir}: start the gateway once, or run "
                             "`clawstream pki init --gateway-host NAME`, or name the CA that "
                             "signed the gateway's certificate with --ca")
        pem = pki.ca_pem()
    else:
        return ""
    try:
        x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise TokenError(f"{ca_file or 'the project CA'} holds no PEM certificate") from None
    return pem


def write_enrolment(path: Path, *, url: str, token: SecretStr, record: TokenRecord,
                    ca_pem: str, namespace: str) -> Path:
    """Put the gateway's URL, `token` and `ca_pem` into the client config file at `path`."""
    fields = {"ingest_url": url, "ingest_token": token.get_secret_value(),
              "ingest_token_id": record.token_id, "ingest_binding": record.binding}
    if ca_pem:
        fields["ingest_ca_pem"] = ca_pem
    try:
        return update_client_config(path, fields, namespace=namespace,
                                    name=record.agent or f"{record.agent_prefix}*")
    except CredentialError as exc:
        raise TokenError(str(exc)) from None
