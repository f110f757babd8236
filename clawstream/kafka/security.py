"""Which credential a client uses, and the librdkafka settings that say so.

A process connects as the first of:
1. explicit settings: `CLAWSTREAM_KAFKA_SASL_USERNAME` / `..._SASL_PASSWORD` (a secret),
   `..._SECURITY_PROTOCOL`, `..._SASL_MECHANISM`, `..._SSL_CA_LOCATION`;
2. a client config file, `CLAWSTREAM_KAFKA_CLIENT_CONFIG` (what `clawstream credentials add`
   writes: all an agent machine needs), when it holds a Kafka credential (a file with only a
   gateway token, from `clawstream tokens create --write-config`, holds none);
3. on the broker's own machine: the credential `clawstream up` made for the process's role
   and namespace in the local store (`<data_dir>/security`), when the local broker at the
   configured address runs secured;
4. otherwise plaintext (a broker started with `clawstream up --insecure`, or one that needs
   no credential).
`CLAWSTREAM_KAFKA_SECURITY_PROTOCOL=PLAINTEXT` forces 4.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clawstream.security.credentials import ADMIN, Credential, CredentialError, Store


def security_dir(settings: Any) -> Path | None:
    data_dir = getattr(settings, "data_dir", None)
    return None if data_dir is None else Path(data_dir) / "security"


def broker_mode_file(security: Path, bootstrap: str) -> Path:
    """Where a local broker records how it listens (written at each start)."""
    port = bootstrap.split(",")[0].rsplit(":", 1)[-1].strip()
    return security / f"broker-{port}.json"


def local_broker_secured(settings: Any) -> bool:
    sec = security_dir(settings)
    if sec is None:
        return False
    try:
        info = json.loads(broker_mode_file(sec, settings.bootstrap_servers).read_text())
    except (OSError, ValueError):
        return False
    # a cluster's record names all its nodes: any of them, or all, is that cluster
    recorded = {b.strip() for b in str(info.get("bootstrap", "")).split(",")}
    wanted = {b.strip() for b in settings.bootstrap_servers.split(",") if b.strip()}
    return bool(info.get("protocol") == "SASL_SSL" and wanted and wanted <= recorded)


def credential_for(settings: Any, role: str) -> Credential | None:
    """The credential a client acting for `role` uses (see the module doc), or None."""
    from pydantic import SecretStr

    protocol = getattr(settings, "kafka_security_protocol", None)
    if protocol == "PLAINTEXT":
        return None
    username = getattr(settings, "kafka_sasl_username", None)
    if username:
        password = getattr(settings, "kafka_sasl_password", None) or SecretStr("")
        ca_location = getattr(settings, "kafka_ssl_ca_location", None)
        ca = Path(ca_location).read_text() if ca_location else ""
        return Credential(username, role, getattr(settings, "topic_namespace", ""),
                          settings.bootstrap_servers, password, ca,
                          security_protocol=protocol or "SASL_SSL",
                          sasl_mechanism=getattr(settings, "kafka_sasl_mechanism",
                                                 "SCRAM-SHA-512"))
    client_file = getattr(settings, "kafka_client_config", None)
    if client_file:
        in_file = Credential.in_file(Path(client_file))
        if in_file is not None:
            return in_file
    if not local_broker_secured(settings):
        return None
    sec = security_dir(settings)
    assert sec is not None
    store = Store(sec / "credentials")
    namespace = getattr(settings, "topic_namespace", "")
    found = store.get(ADMIN) if role in (ADMIN, "tool") else store.for_role(role, namespace)
    if found is None:
        raise CredentialError(
            f"the local broker at {settings.bootstrap_servers} is secured and there is no "
            f"credential for a {role} in namespace {namespace!r}: make one with "
            f"`clawstream credentials add {role} NAME` (or `clawstream up`, which makes one "
            "per role), or point CLAWSTREAM_KAFKA_CLIENT_CONFIG at a client config file")
    return found


def librdkafka_security(cred: Credential | None) -> dict[str, Any]:
    """The librdkafka settings of a credential (none: plaintext)."""
    if cred is None:
        return {}
    conf: dict[str, Any] = {"security.protocol": cred.security_protocol}
    if cred.security_protocol.startswith("SASL"):
        conf.update({"sasl.mechanisms": cred.sasl_mechanism, "sasl.username": cred.username,
                     "sasl.password": cred.password.get_secret_value()})
    if cred.security_protocol.endswith("SSL") and cred.ca_pem:
        conf["ssl.ca.pem"] = cred.ca_pem
    return conf
