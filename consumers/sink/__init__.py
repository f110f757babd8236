"""The ClickHouse sink: every event topic landed in ClickHouse, exactly once in effect.

- `sink`: `Sink`, the glue on the runtime's consumer loop (`clawstream.kafka.consumer`):
  lifecycle, batch cuts, commit after the insert.
- `routing`: which topic goes to which tables, a message's rows, the fast path's SQL.
- `batches`: the batch being built and what one commit covers.
- `writer`: inserts with retries on a thread of their own.
- `target`: which ClickHouse the inserts go to: a server, the embedded engine this sink
  owns, or its owner's endpoint (a second sink), taken over when the owner dies.
- `resume`: start past what ClickHouse already holds after a crash.
- `metrics`: Prometheus metrics and lag.
"""

from consumers.sink.batches import SinkStats
from consumers.sink.routing import LATE_ROUTE, default_topics
from consumers.sink.sink import COMPONENT, Sink, run_sink

__all__ = ["COMPONENT", "LATE_ROUTE", "Sink", "SinkStats", "default_topics", "run_sink"]
