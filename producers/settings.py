"""The agent side's settings: what a machine running agents needs, and nothing of the server.

`SdkSettings` reads the same `CLAWSTREAM_*` environment variables (or `.env`) as the server's
`clawstream.settings.Settings`, which extends it: one variable configures both sides, and
`clawstream settings` lists these fields with the others. The SDK (`producers.sdk`), the fleet
simulator and the reference agent take an `SdkSettings`; a server `Settings` is one too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: What a Kafka topic name may hold. The namespace prefixes topic names and every name
#: derived from it (a folder under data_dir among them), so it may hold nothing else.
_NAMESPACE_RE = re.compile(r"[A-Za-z0-9._-]*")


class SdkSettings(BaseSettings):
    """The agent side's configuration; field names map to `CLAWSTREAM_<NAME>` variables."""

    model_config = SettingsConfigDict(env_prefix="CLAWSTREAM_", env_file=".env", extra="ignore")

    # --- Kafka -----------------------------------------------------------------------------
    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers (host:port, comma separated)."
    )
    topic_namespace: str = Field(
        "", description="Prefix put before every topic name and every group, app id, internal "
        "topic, database and chdb directory name derived by default: an environment of its "
        "own on a shared broker, ClickHouse or data folder.",
    )
    schema_registry_url: str | None = Field(
        None,
        description="Confluent-compatible schema registry; when unset, Avro single-object "
        "encoding is written instead of the Confluent framing.",
    )
    # Security: how this process authenticates to Kafka (clawstream.kafka.security resolves
    # them: explicit fields > the client config file > the local store > plaintext).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL", "SASL_PLAINTEXT"] | None = (
        Field(None, description="How clients talk to Kafka; unset: as the credential found says "
              "(SASL_SSL), or PLAINTEXT when there is none (see clawstream.kafka.security)."))
    kafka_sasl_mechanism: str = Field("SCRAM-SHA-512", description="SASL mechanism.")
    kafka_sasl_username: str | None = Field(None, description="SASL user of this process.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (a secret).")
    kafka_ssl_ca_location: Path | None = Field(
        None, description="CA certificate (PEM) that signed the brokers' certificates.")
    kafka_client_config: Path | None = Field(
        None, description="A client config file from `clawstream credentials add` (bootstrap, "
        "user, password, CA): all an agent machine needs.")

    # --- local files ---------------------------------------------------------------------------
    data_dir: Path = Field(
        PROJECT_ROOT / ".data", description="Where local state lives (chdb, spool, blobs, broker)."
    )

    # --- SDK -----------------------------------------------------------------------------------
    producer_name: str = Field("clawstream-sdk", description="Name written in envelope.producer.")
    spool_max_bytes: int = Field(
        1 << 30, description="Disk spool cap per agent; beyond it the SDK refuses new events."
    )

    # --- the HTTPS ingest gateway (instead of Kafka) --------------------------------------------
    ingest_url: str = Field(
        "", description="https://host:port of an ingest gateway: agents send through it "
        "instead of to Kafka (empty: Kafka at bootstrap_servers).")
    ingest_token: SecretStr | None = Field(
        None, description="The agent's gateway token (a secret; `clawstream tokens create`).")
    ingest_ca_file: Path | None = Field(
        None, description="CA certificate (PEM) the gateway's certificate is checked against; "
        "unset: the system's CAs.")
    ingest_ca_pem: str = Field(
        "", description="The same CA as PEM text, as a client config file carries it "
        "(ingest_ca_file, when set, wins).")
    ingest_batch_events: int = Field(500, gt=0, description="Events per request at most.")
    ingest_linger_ms: float = Field(
        20.0, ge=0, description="Longest wait for a batch to fill before it is sent.")
    ingest_connections: int = Field(
        2, gt=0, description="Requests in flight at once (an agent's events always share one, "
        "in order).")
    ingest_compression: str = Field("zstd", description="Request body compression: zstd or none.")

    # --- agent side (perception / execution) --------------------------------------------------
    agent_display: str | None = Field(
        None, description="X display the agent sees and acts on (default: $DISPLAY)."
    )
    capture_fps: float = Field(4.0, description="Most screen captures per second.")
    capture_region: str = Field("", description="x,y,w,h of the captured region; empty = screen.")
    redact_emails: bool = Field(True, description="Mask e-mail addresses seen on screen.")
    action_rate_limit: float = Field(5.0, description="Most GUI actions per second.")

    # --- observability -------------------------------------------------------------------------
    metrics_host: str = Field("127.0.0.1", description="Bind address of /metrics endpoints.")
    sdk_metrics_port: int = Field(9404, description="/metrics port of an SDK host (fleet, agent).")

    @field_validator("topic_namespace")
    @classmethod
    def _topic_name_characters(cls, value: str) -> str:
        if not _NAMESPACE_RE.fullmatch(value):
            raise ValueError("a topic namespace prefixes Kafka topic names, so it holds only "
                             f"letters, digits, '.', '_' and '-': {value!r}")
        return value

    @field_validator("kafka_client_config", "kafka_ssl_ca_location", mode="before")
    @classmethod
    def _empty_path_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _from_client_config(self) -> SdkSettings:
        """A client config file says where its cluster is and, when it holds a gateway token
        (`clawstream tokens create --write-config`), the gateway's URL, the token and the CA:
        with one, an agent machine needs nothing else. Settings given explicitly win."""
        if not self.kafka_client_config:
            return self
        try:
            data = json.loads(Path(self.kafka_client_config).read_text())
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the client config file "
                             f"{self.kafka_client_config}: {exc}") from None
        for name in ("bootstrap_servers", "ingest_url", "ingest_ca_pem", "ingest_token"):
            if name in data and name not in self.model_fields_set:
                value = data[name]
                self.__dict__[name] = SecretStr(value) if name == "ingest_token" else value
        return self

    def topic(self, name: str) -> str:
        """The physical topic name for a logical one (adds the namespace)."""
        return f"{self.topic_namespace}{name}"


def sdk_settings() -> SdkSettings:
    """The agent side's settings as the environment says now. Not cached: a command reads
    them once, and a test or tool that changes the environment has no cache to clear."""
    return SdkSettings()
