"""One source of truth for configuration.

Every process reads the same `Settings` from environment variables prefixed `CLAWSTREAM_`
(or a `.env` file), so one variable switches a piece between embedded and production mode
while the code path stays the same.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Runtime configuration; field names map to `CLAWSTREAM_<NAME>` variables."""

    model_config = SettingsConfigDict(env_prefix="CLAWSTREAM_", env_file=".env", extra="ignore")

    # --- Kafka -----------------------------------------------------------------------------
    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers (host:port, comma separated)."
    )
    topic_namespace: str = Field(
        "", description="Prefix put before every topic name; lets test runs share one broker."
    )
    schema_registry_url: str | None = Field(
        None,
        description="Confluent-compatible schema registry; when unset, Avro single-object "
        "encoding is written instead of the Confluent framing.",
    )
    kafka_version: str = Field("4.1.1", description="Apache Kafka version fetched by Maven.")

    # --- local files ---------------------------------------------------------------------------
    data_dir: Path = Field(
        PROJECT_ROOT / ".data", description="Where local state lives (chdb, spool, blobs, broker)."
    )
    cache_dir: Path = Field(
        PROJECT_ROOT / ".cache", description="Downloaded artifacts (Kafka jars)."
    )

    # --- ClickHouse ---------------------------------------------------------------------------
    clickhouse_dsn: str | None = Field(
        None,
        description="clickhouse-connect DSN: chdb:///path (embedded) or http://host:8123 "
        "(server). Default: chdb under data_dir.",
    )
    clickhouse_database: str = Field("clawstream", description="ClickHouse database name.")
    chdb_endpoint_port: int = Field(
        8124, description="Loopback port where the chdb owner serves queries to other commands."
    )

    # --- SDK -----------------------------------------------------------------------------------
    producer_name: str = Field("clawstream-sdk", description="Name written in envelope.producer.")
    spool_max_bytes: int = Field(
        1 << 30, description="Disk spool cap per agent; beyond it the SDK refuses new events."
    )

    # --- sink ----------------------------------------------------------------------------------
    sink_group: str = Field("clawstream-sink", description="Consumer group of the sink.")
    sink_batch_rows: int = Field(50_000, description="Rows per ClickHouse insert at most.")
    sink_batch_seconds: float = Field(0.5, description="Longest wait before a partial batch.")

    # --- streams -------------------------------------------------------------------------------
    worker_app_id: str = Field("clawstream-streams", description="Faust application id.")
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
    sink_metrics_port: int = Field(9401, description="/metrics port of the sink.")
    worker_metrics_port: int = Field(9402, description="/metrics port of a stream worker.")
    notifier_metrics_port: int = Field(9403, description="/metrics port of the notifier.")
    sdk_metrics_port: int = Field(9404, description="/metrics port of an SDK host (fleet, agent).")
    log_level: str = Field("INFO", description="Logging level.")

    @property
    def resolved_clickhouse_dsn(self) -> str:
        """The DSN in force: the configured one, or embedded chdb under data_dir."""
        return self.clickhouse_dsn or f"chdb://{(self.data_dir / 'chdb').resolve()}"

    @property
    def is_embedded_clickhouse(self) -> bool:
        return self.resolved_clickhouse_dsn.startswith("chdb://")

    def topic(self, name: str) -> str:
        """The physical topic name for a logical one (adds the namespace)."""
        return f"{self.topic_namespace}{name}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings; tests that change the environment clear this cache."""
    return Settings()
