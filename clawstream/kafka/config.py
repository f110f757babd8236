"""Every Kafka client configuration of clawstream, built in one place.

`client_config(settings, role, kind, overrides)` returns the librdkafka dict for a producer,
consumer or admin client acting for `role` (which principal it is: `clawstream.kafka.security`
picks that role's credential); `faust_config(settings, role)` the same for a faust app
(aiokafka), whose credential is a `FaustAuth` that the app's module turns into faust's own
credentials object (the runtime never imports faust: the agent side imports it). Overrides
are for what is specific to one client (its group, client id, batching), never for
connection or security settings.

The processing guarantee (`processing_guarantee` of the settings) is applied here too: with
`exactly_once`, every consumer reads committed data only (`isolation.level`, not overridable:
an aborted transaction's records must never reach a reader), and `transactional(id)` is the
configuration of a transactional producer.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

#: A member that stops heartbeating leaves its group after this long (a kill -9: the others
#: take its partitions over then); the same for faust's groups and the librdkafka ones.
SESSION_TIMEOUT_S = 10.0
HEARTBEAT_INTERVAL_S = 2.0

Guarantee = Literal["at_least_once", "exactly_once"]
#: A transaction left open this long (its producer killed or frozen) is aborted by the broker;
#: read_committed readers of its partitions wait for it at most this long.
TRANSACTION_TIMEOUT_S = 30.0

Role = Literal["agent", "worker", "sink", "notifier", "gateway", "admin", "reader", "tool"]
Kind = Literal["producer", "consumer", "admin"]

#: librdkafka's log lines go through Python logging, warnings and up (its info chatter stays
#: out of CLI output)
RDKAFKA_LOG = logging.getLogger("clawstream.librdkafka")
RDKAFKA_LOG.setLevel(logging.WARNING)

#: what no override may change: connection and security belong to the settings
_FIXED = frozenset({"bootstrap.servers", "security.protocol", "sasl.mechanism",
                    "sasl.mechanisms", "sasl.username", "sasl.password", "ssl.ca.location",
                    "ssl.ca.pem", "isolation.level"})


class KafkaSettings(Protocol):
    """What a client configuration is built from (the agent's and the server's settings
    both have it)."""

    @property
    def bootstrap_servers(self) -> str: ...


@dataclass(frozen=True)
class Bootstrap:
    """Connection settings of a bare address (admin helpers that are given one)."""

    bootstrap_servers: str


def kafka_settings(target: str | KafkaSettings) -> KafkaSettings:
    """Settings for `target`: settings as they are, or a bootstrap address."""
    return Bootstrap(target) if isinstance(target, str) else target


def guarantee(settings: KafkaSettings) -> Guarantee:
    """The settings' processing guarantee (settings without one: at-least-once)."""
    found = getattr(settings, "processing_guarantee", "at_least_once")
    return "exactly_once" if found == "exactly_once" else "at_least_once"


def transactional(transactional_id: str) -> dict[str, Any]:
    """The configuration of a transactional producer with this id (a new producer with the
    same id fences the old one: its open transaction is aborted, its next commit refused)."""
    return {"transactional.id": transactional_id,
            "transaction.timeout.ms": round(TRANSACTION_TIMEOUT_S * 1000)}


def _connection(settings: KafkaSettings, role: Role) -> dict[str, Any]:
    """Where to connect and as whom (`clawstream.kafka.security` picks the credential)."""
    from clawstream.kafka.security import credential_for, librdkafka_security

    return {"bootstrap.servers": settings.bootstrap_servers,
            **librdkafka_security(credential_for(settings, role))}


#: each kind of client error is reported at most this often (librdkafka retries every second)
REPORT_EVERY_S = 30.0
_reported: dict[Any, float] = {}


def report_client_error(err: Any) -> None:
    """librdkafka's error callback: a failed authentication or TLS handshake is said at once,
    with what to check, instead of as retries that look like a hang (then at most every
    `REPORT_EVERY_S` per kind of error)."""
    from confluent_kafka import KafkaError

    code = err.code() if hasattr(err, "code") else None
    now = time.monotonic()
    if now - _reported.get(code, -REPORT_EVERY_S) < REPORT_EVERY_S:
        return
    _reported[code] = now
    if code in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
        RDKAFKA_LOG.error("Kafka refused the credential (%s): check the SASL user and password "
                          "(CLAWSTREAM_KAFKA_* or the client config file); a revoked "
                          "credential needs a new one", err)
    elif code == KafkaError._SSL:
        RDKAFKA_LOG.error("TLS with the broker failed (%s): is the CA the broker's "
                          "(CLAWSTREAM_KAFKA_SSL_CA_LOCATION or the client config file)?", err)
    elif code == KafkaError._ALL_BROKERS_DOWN:
        RDKAFKA_LOG.warning("no Kafka broker reachable: %s", err)
    else:
        RDKAFKA_LOG.warning("Kafka client: %s", err)


_DEFAULTS: dict[Kind, dict[str, Any]] = {
    # idempotent and acknowledged by every in-sync replica: nothing accepted is lost or
    # doubled by a retry; lz4 batches; keys placed like faust and the JVM clients do
    "producer": {"enable.idempotence": True, "acks": "all", "compression.type": "lz4",
                 "linger.ms": 5, "partitioner": "murmur2_random"},
    # offsets are committed by the code once the work behind them is durable
    "consumer": {"enable.auto.commit": False, "auto.offset.reset": "earliest",
                 "session.timeout.ms": round(SESSION_TIMEOUT_S * 1000),
                 "heartbeat.interval.ms": round(HEARTBEAT_INTERVAL_S * 1000)},
    "admin": {},
}


def client_config(settings: KafkaSettings, role: Role, kind: Kind = "producer",
                  overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The confluent-kafka configuration of one client of `kind` acting for `role`.
    `overrides` (librdkafka names) tune this client; connection and security settings come
    from `settings` only."""
    conf: dict[str, Any] = {**_connection(settings, role), "logger": RDKAFKA_LOG,
                            "error_cb": report_client_error, **_DEFAULTS[kind]}
    if kind == "consumer" and guarantee(settings) == "exactly_once":
        conf["isolation.level"] = "read_committed"
    for name, value in (overrides or {}).items():
        if name in _FIXED:
            raise ValueError(f"{name} comes from the settings, not from an override")
        conf[name] = value
    if kind == "producer" and (str(conf["acks"]) not in ("all", "-1")
                               or conf["enable.idempotence"] is not True):
        # on a replicated cluster a record is acknowledged once min.insync.replicas have it:
        # what an acknowledged write survives (one broker lost) rests on acks=all
        raise ValueError("every producer is idempotent with acks=all: not overridable")
    return conf


@dataclass(frozen=True)
class FaustAuth:
    """How a faust app authenticates (SASL over TLS, or TLS alone when `username` is None);
    `streams.app` turns it into `faust.SASLCredentials` / `faust.SSLCredentials`. The password
    stays a secret (a pydantic `SecretStr`) until that moment."""

    ssl_context: ssl.SSLContext | None
    username: str | None = None
    password: Any = None
    mechanism: str = "SCRAM-SHA-512"

    def __repr__(self) -> str:
        return f"FaustAuth(username={self.username!r}, mechanism={self.mechanism!r})"


def faust_config(settings: KafkaSettings, role: Role) -> dict[str, Any]:
    """The broker part of a faust App's configuration (aiokafka underneath): brokers, group
    liveness timings, acks, and under `broker_credentials` a `FaustAuth` when the broker
    needs a credential. Whether its consumer reads committed data only is
    `guarantee(settings)` (faust has no setting for it short of its own transactions:
    `streams.worker_app` applies it)."""
    from clawstream.kafka.security import credential_for

    conf: dict[str, Any] = {
        "broker": [f"kafka://{h.strip()}" for h in settings.bootstrap_servers.split(",")
                   if h.strip()],
        "broker_session_timeout": SESSION_TIMEOUT_S,
        "broker_heartbeat_interval": HEARTBEAT_INTERVAL_S,
        "producer_acks": -1,
    }
    cred = credential_for(settings, role)
    if cred is not None and cred.security_protocol != "PLAINTEXT":
        context = None
        if cred.security_protocol.endswith("SSL"):
            context = ssl.create_default_context(cadata=cred.ca_pem or None)
        if cred.security_protocol.startswith("SASL"):
            conf["broker_credentials"] = FaustAuth(context, cred.username, cred.password,
                                                   cred.sasl_mechanism)
        else:
            conf["broker_credentials"] = FaustAuth(context)
    return conf
