"""The agent SDK: the one object an agent uses to emit every event type.

`AgentClient` fills the envelope (event_id, per-agent `seq` that survives restarts,
session/trace ids, parent_id, event_time), encodes Avro with compiled encoders (the optional
C accelerator `producers._accel` when it was built, else `schemas.codegen`'s) and produces
through an idempotent confluent-kafka producer (acks=all, lz4, batching), keyed by agent_id.

Outage handling (nothing is lost, per-agent order holds, seq has no gaps):

- *direct* mode: events go straight into librdkafka. Its queue survives short outages by
  itself (long ``message.timeout.ms``, idempotent retries keep order).
- When the broker is unreachable (``_ALL_BROKERS_DOWN``), the local queue stays full, or a
  delivery fails, the client switches to *spooling*: every new event is appended to the disk
  spool, events librdkafka gives back go in front of it, and the spool is replayed once the
  broker answers (`producers.sdk.outage`).

Delivery failures are never silent: per-type counters, the `on_delivery_error` hook, logs
and Prometheus metrics (``clawstream_sdk_*``, `producers.sdk.accounting`).

The package, one concern a module:

- `client`: `AgentClient` (emit, the transport's delivery listener, stats, close)
- `events`: the typed helpers (`frame`, `detection`, `plan`, `action`, `outcome`,
  `heartbeat`, `state_delta`) and frames' claim check
- `encoding`: envelope and body encoding, event ids, the persistent seq
- `transport`: `Transport` (the shared producer and its thread), `producer_config`, the
  `DeliveryListener` protocol through which it reports to clients, and `make_transport`
  (Kafka, or the HTTPS gateway when `ingest_url` is set)
- `https`: `HttpsTransport`, the same through the ingest gateway
- `outage`: the disk spool during outages and its replay
- `accounting`: delivery counts and the SDK's Prometheus metrics

Configuration is the agent side's `producers.settings.SdkSettings` (a server `Settings` is
one too).
"""

from producers.sdk.accounting import (
    DELIVERY_LATENCY,
    EVENTS_FAILED,
    EVENTS_PRODUCED,
    EVENTS_REPLAYED,
    EVENTS_SPOOLED,
    SPOOL_DEPTH_BYTES,
    SPOOL_DEPTH_MESSAGES,
    DeliveryCounts,
    serve_sdk_metrics,
)
from producers.sdk.client import AgentClient, DeliveryFailure
from producers.sdk.encoding import (
    EventEncoder,
    RandomIds,
    SeqCounter,
    TypeInfo,
    accelerator,
    agent_dir_name,
    envelope_seq,
)
from producers.sdk.events import ClaimCheck, StoredImage, TypedEvents
from producers.sdk.outage import OutageSpool, ReplayBatch
from producers.sdk.transport import (
    PERMANENT_ERRORS,
    DeliveryListener,
    Transport,
    make_transport,
    producer_config,
)
from producers.settings import SdkSettings
from producers.spool import Spool, SpoolFullError

__all__ = [
    "DELIVERY_LATENCY",
    "EVENTS_FAILED",
    "EVENTS_PRODUCED",
    "EVENTS_REPLAYED",
    "EVENTS_SPOOLED",
    "PERMANENT_ERRORS",
    "SPOOL_DEPTH_BYTES",
    "SPOOL_DEPTH_MESSAGES",
    "AgentClient",
    "ClaimCheck",
    "DeliveryCounts",
    "DeliveryFailure",
    "DeliveryListener",
    "EventEncoder",
    "OutageSpool",
    "RandomIds",
    "ReplayBatch",
    "SdkSettings",
    "SeqCounter",
    "Spool",
    "SpoolFullError",
    "StoredImage",
    "Transport",
    "TypeInfo",
    "TypedEvents",
    "accelerator",
    "agent_dir_name",
    "envelope_seq",
    "make_transport",
    "producer_config",
    "serve_sdk_metrics",
]
