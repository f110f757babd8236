"""The broker part of a faust app's configuration (aiokafka underneath), from the same
settings and credentials as every other client (`clawstream.kafka.config`). Kept apart so the
agent side, which imports the runtime's config, never imports faust."""

from __future__ import annotations

import ssl
from typing import Any

from clawstream.kafka.config import HEARTBEAT_INTERVAL_S, SESSION_TIMEOUT_S, KafkaSettings, Role
from clawstream.kafka.security import credential_for


def faust_config(settings: KafkaSettings, role: Role) -> dict[str, Any]:
    """Brokers, credentials, group liveness timings and acks of a faust App."""
    conf: dict[str, Any] = {
        "broker": [f"kafka://{h.strip()}" for h in settings.bootstrap_servers.split(",")
                   if h.strip()],
        "broker_session_timeout": SESSION_TIMEOUT_S,
        "broker_heartbeat_interval": HEARTBEAT_INTERVAL_S,
        "producer_acks": -1,
    }
    cred = credential_for(settings, role)
    if cred is not None and cred.security_protocol != "PLAINTEXT":
        import faust

        context = None
        if cred.security_protocol.endswith("SSL"):
            context = ssl.create_default_context(cadata=cred.ca_pem or None)
        if cred.security_protocol.startswith("SASL"):
            conf["broker_credentials"] = faust.SASLCredentials(
                username=cred.username, password=cred.password.get_secret_value(),
                ssl_context=context, mechanism=cred.sasl_mechanism)
        else:
            conf["broker_credentials"] = faust.SSLCredentials(context)
    return conf
