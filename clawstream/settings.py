"""One source of truth for configuration.

Every process reads the same `Settings` from environment variables prefixed `CLAWSTREAM_`
(or a `.env` file), so one variable switches a piece between embedded and production mode
while the code path stays the same. `Settings` extends the agent side's `SdkSettings`
(`producers.settings`: Kafka, namespace, registry, data folder, spool, agent and SDK metrics
settings), so one variable configures both sides and `clawstream settings` shows them all.

The topic namespace is an environment (staging and production, two teams) on a shared
broker, ClickHouse server or data folder: every name a worker, sink or notifier creates or
joins derives from it (`namespaced_names`) unless that name is set explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from producers.settings import SdkSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class NamespacedNames:
    """Every name a worker, sink or notifier creates or joins, in one topic namespace.

    Two environments may share a broker, a ClickHouse server or a data folder only if they
    share none of these: a worker in another's consumer group, or restoring another's
    changelogs, would process and alert about that environment's agents. Each name is
    `<namespace><name>`, like the topics; with no namespace, the names clawstream always used.
    """

    #: faust's app id, from which faust names its consumer group, its internal and changelog
    #: topics (`<app id>-…`) and its state folder (`<data_dir>/faust/<app id>`); the
    #: event-time processor's groups are `<app id>-windows` and `<app id>-restore`
    worker_app_id: str
    #: the sink's consumer group (its resume check uses `<sink group>-resume-probe`)
    sink_group: str
    notifier_group: str
    #: a plain ClickHouse identifier: the namespace's characters other than letters, digits
    #: and `_` become `_` ("staging." gives "staging_clawstream")
    clickhouse_database: str
    #: the embedded chdb directory under data_dir (its owner file `<dir>-owner.json` lies
    #: beside it); one process per chdb directory, so namespaces need one each
    chdb_dir: str


def namespaced_names(namespace: str) -> NamespacedNames:
    """The names of `namespace` (the one place they derive from it)."""
    database = re.sub(r"[^A-Za-z0-9_]", "_", f"{namespace}clawstream")
    return NamespacedNames(
        worker_app_id=f"{namespace}clawstream-streams",
        sink_group=f"{namespace}clawstream-sink",
        notifier_group=f"{namespace}clawstream-notifier",
        clickhouse_database=f"_{database}" if database[0].isdigit() else database,
        chdb_dir=f"{namespace}chdb",
    )


#: Settings whose default is their `namespaced_names` value; an explicit value wins.
DERIVED_SETTINGS = ("worker_app_id", "sink_group", "notifier_group", "clickhouse_database")


class Settings(SdkSettings):
    """Runtime configuration of every process: the agent side's `SdkSettings` and the
    server's; field names map to `CLAWSTREAM_<NAME>` variables."""

    model_config = SettingsConfigDict(env_prefix="CLAWSTREAM_", env_file=".env", extra="ignore")

    # --- Kafka (bootstrap servers, namespace and registry: SdkSettings) ------------------------
    kafka_version: str = Field("4.1.1", description="Apache Kafka version fetched by Maven.")

    # --- local files (data_dir: SdkSettings) ----------------------------------------------------
    cache_dir: Path = Field(
        PROJECT_ROOT / ".cache", description="Downloaded artifacts (Kafka jars)."
    )

    # --- ClickHouse ---------------------------------------------------------------------------
    clickhouse_dsn: str | None = Field(
        None,
        description="clickhouse-connect DSN: chdb:///path (embedded) or http://host:8123 "
        "(server). Default: chdb in <data_dir>/<namespace>chdb.",
    )
    clickhouse_user: str | None = Field(
        None, description="User of ClickHouse: for the embedded engine's endpoint reader "
        "(default: read-only), writer or admin; for a server, the DSN's user unless set.")
    clickhouse_password: SecretStr | None = Field(
        None, description="Password of that user (a secret; keeps it out of the DSN, which is "
        "shown and logged). Unset for the embedded engine: the local users file's.")
    clickhouse_ca_location: Path | None = Field(
        None, description="CA certificate (PEM) of a ClickHouse server reached over TLS "
        "(an https:// DSN); unset: the system's CAs.")
    clickhouse_database: str = Field(
        "", description="ClickHouse database name. Default: <namespace>clawstream, with '_' "
        "for characters other than letters, digits and '_'.",
    )
    clickhouse_cluster: str = Field(
        "", description="The ClickHouse cluster (remote_servers name) when the server is one: "
        "migrations run their cluster rendering (Replicated tables per shard, Distributed tables "
        "by agent, ON CLUSTER DDL) and the sink's inserts carry a deduplication token. Empty: "
        "one node.",
    )
    chdb_endpoint_port: int = Field(
        8124, description="Loopback port where the chdb owner serves queries to other commands."
    )

    # --- dead letters --------------------------------------------------------------------------
    dlq_max_consecutive: int = Field(
        1_000_000, ge=0, description="A reader stops when this many messages in a row were "
        "invalid (dead-lettered): something is wrong upstream. 0 = never.",
    )

    # --- sink ----------------------------------------------------------------------------------
    sink_group: str = Field(
        "", description="Consumer group of the sink. Default: <namespace>clawstream-sink."
    )
    sink_batch_rows: int = Field(50_000, description="Rows per ClickHouse insert at most.")
    sink_batch_seconds: float = Field(0.5, description="Longest wait before a partial batch.")

    # --- streams -------------------------------------------------------------------------------
    worker_app_id: str = Field(
        "", description="Faust application id: its consumer group, internal and changelog "
        "topics and state folder derive from it. Default: <namespace>clawstream-streams.",
    )
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once", description="at_least_once: derived events may repeat on their topics "
        "after a crash (same deterministic ids, stored once in ClickHouse). exactly_once: the "
        "event-time processor writes its outputs, state and input offsets in one Kafka "
        "transaction per batch, and every reader of derived topics reads committed data only.",
    )
    window_lateness_s: float = Field(5.0, description="Allowed lateness before a window closes.")
    max_clock_skew_s: float = Field(
        60.0, ge=0, description="How far an event's time may be ahead of its arrival in Kafka "
        "before its agent's clock is distrusted: such an event moves no watermark, counts in no "
        "window, goes to claw.late.v1 with reason clock_skew and is counted per agent.",
    )
    tumbling_windows_s: str = Field("10,60", description="Tumbling window sizes in seconds.")
    hopping_window: str = Field("300/60", description="Hopping window size/step in seconds.")
    session_gap_s: float = Field(30.0, description="Gap that ends an episode's session window.")
    outcome_timeout_s: float = Field(
        30.0, description="An action without an outcome after this long is 'lost'."
    )
    worker_gc_threshold: int = Field(
        1_000_000, description="Allocations between two young-generation garbage collections in "
        "a worker (CPython's 700 cost a fifth of its time); 0 keeps Python's default.",
    )

    # --- alerting ------------------------------------------------------------------------------
    rules_file: Path | None = Field(None, description="User alert rules (YAML).")
    alert_webhooks: str = Field(
        "", description="Comma separated Alertmanager-compatible webhook URLs."
    )
    notifier_group: str = Field(
        "", description="Consumer group of the notifier. Default: <namespace>clawstream-notifier."
    )

    # --- ingest gateway (clawstream gateway) ---------------------------------------------------
    gateway_host: str = Field("127.0.0.1", description="Address the HTTPS gateway binds.")
    gateway_port: int = Field(8443, description="Port of the HTTPS gateway.")
    gateway_tls_cert: Path | None = Field(
        None, description="The gateway's certificate (PEM, with its chain); unset (with "
        "gateway_tls_key): one from the project CA, see gateway_tls_hosts.")
    gateway_tls_key: Path | None = Field(None, description="The gateway's private key (PEM).")
    gateway_tls_hosts: str = Field(
        "", description="Host names and addresses (comma separated) agents reach the gateway "
        "by: with no gateway_tls_cert/key, the gateway serves a certificate of the project CA "
        "valid for these, its bind address and loopback (made once under data_dir/security).")
    gateway_max_body_bytes: int = Field(
        16 << 20, gt=0, description="Largest request body, compressed or not (else 413).")
    gateway_max_events: int = Field(5000, gt=0, description="Most events in one batch (else 413).")
    gateway_rate_events_per_s: float = Field(
        50_000.0, ge=0, description="Events per second one token may send to one replica "
        "(token bucket; over it: 429 with Retry-After). 0 = no limit.")
    gateway_rate_burst: float = Field(
        100_000.0, gt=0, description="Events one token may send at once (the bucket's size).")
    gateway_auth_max_failures: int = Field(
        20, ge=0, description="Failed authentications from one address within "
        "gateway_auth_window_s before it is refused (429) for gateway_auth_block_s. 0 = never.")
    gateway_auth_window_s: float = Field(60.0, gt=0, description="See gateway_auth_max_failures.")
    gateway_auth_block_s: float = Field(60.0, gt=0, description="See gateway_auth_max_failures.")
    gateway_kafka_timeout_s: float = Field(
        15.0, gt=0, description="How long a request waits for Kafka's acknowledgements "
        "before it is answered 503 (the client retries; events carry their ids).")

    # --- observability (metrics host and SDK port: SdkSettings) -------------------------------
    sink_metrics_port: int = Field(9401, description="/metrics port of the sink.")
    worker_metrics_port: int = Field(9402, description="/metrics port of a stream worker.")
    notifier_metrics_port: int = Field(9403, description="/metrics port of the notifier.")
    log_level: str = Field("INFO", description="Logging level.")

    @model_validator(mode="after")
    def _derive_names_on_validation(self) -> Settings:
        """Every validated Settings gets its derived names (`model_copy` calls the method)."""
        return self._derive_names()

    def _derive_names(self) -> Settings:
        """Give every derived name not set explicitly (or set empty) its namespace's value.

        It is stored as a default, not marked as set, so that `model_copy` into another
        namespace derives it again instead of carrying this namespace's name over.
        """
        names = namespaced_names(self.topic_namespace)
        for name in DERIVED_SETTINGS:
            if name not in self.model_fields_set or not getattr(self, name):
                self.__dict__[name] = getattr(names, name)
                self.model_fields_set.discard(name)
        return self

    def model_copy(self, *, update: Mapping[str, Any] | None = None,
                   deep: bool = False) -> Settings:
        """A copy with `update` applied; names derived from the namespace follow it."""
        return super().model_copy(update=update, deep=deep)._derive_names()

    @property
    def resolved_clickhouse_dsn(self) -> str:
        """The DSN in force: the configured one, or the namespace's chdb under data_dir."""
        chdb_dir = self.data_dir / namespaced_names(self.topic_namespace).chdb_dir
        return self.clickhouse_dsn or f"chdb://{chdb_dir.resolve()}"

    @property
    def is_embedded_clickhouse(self) -> bool:
        return self.resolved_clickhouse_dsn.startswith("chdb://")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings; tests that change the environment clear this cache."""
    return Settings()
