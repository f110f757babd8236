"""Every Kafka client configuration of clawstream, built in one place.

`client_config(settings, role, kind, overrides)` returns the librdkafka dict for a producer,
consumer or admin client acting for `role` (which principal it is: the security settings
will pick that role's credentials here); `faust_config(settings, role)` the same for a faust
app (aiokafka). Overrides are for what is specific to one client (its group, client id,
batching), never for connection or security settings.

The processing guarantee (`processing_guarantee` of the settings) is applied here too: with
`exactly_once`, every consumer reads committed data only (`isolation.level`, not overridable:
an aborted transaction's records must never reach a reader), and `transactional(id)` is the
configuration of a transactional producer.
"""

from __future__ import annotations

import logging
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
                    "sasl.username", "sasl.password", "ssl.ca.location", "isolation.level"})


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
    return {"bootstrap.servers": settings.bootstrap_servers}


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
                            **_DEFAULTS[kind]}
    if kind == "consumer" and guarantee(settings) == "exactly_once":
        conf["isolation.level"] = "read_committed"
    for name, value in (overrides or {}).items():
        if name in _FIXED:
            raise ValueError(f"{name} comes from the settings, not from an override")
        conf[name] = value
    return conf


def faust_config(settings: KafkaSettings, role: Role) -> dict[str, Any]:
    """The broker part of a faust App's configuration (aiokafka underneath). Whether its
    consumer reads committed data only is `guarantee(settings)` (faust has no setting for it
    short of its own transactions: `streams.worker_app` applies it)."""
    return {
        "broker": [f"kafka://{h.strip()}" for h in settings.bootstrap_servers.split(",")
                   if h.strip()],
        "broker_session_timeout": SESSION_TIMEOUT_S,
        "broker_heartbeat_interval": HEARTBEAT_INTERVAL_S,
        "producer_acks": -1,
    }
