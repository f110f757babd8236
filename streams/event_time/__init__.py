"""The event-time runtime: windows, correlation and sessions on Faust, over the pure
`streams.windowing` code.

`register(app, settings)` declares the event-time processor on the worker's faust app (it is
the worker's core module, `streams.app.APP_MODULES`). The processor reads partition p of every
event topic (they are co-partitioned by agent_id) in a consumer group of its own
(`clawstream.kafka.consumer.BatchConsumer`: librdkafka fetches in its own threads and hands
whole batches over; faust's consumer parsed every record in Python and delivered them one by
one) and runs one `PartitionPipeline` per partition: windows, action↔outcome correlation and
sessions share the partition's watermark. Its state table, fleet-wide merge agent and timers
are faust's, in the worker's faust app.

- `processor`: the batch loop and the commit order (outputs, then state, then offsets), held
  and idle partitions;
- `state`: the per-partition state in the changelog-backed table `event-time-state`,
  persisted and restored;
- `outputs`: the pipeline's typed outputs produced to their topics;
- `fleet`: the fleet-wide merge agent and the partitions' reports to it.

Why not faust's windowed tables: they close windows on the wall clock and drop late writes.

The watermark of a partition is the highest event time seen on it (each bounded by its
arrival: agents' clocks are not trusted, see `streams.windowing.pipeline`) minus the lateness,
held back by any source topic that still has a backlog or cannot be read now (leader away),
see `streams.windowing.watermark`, so a restart with a backlog, a heap of undecodable messages
or a broker failover does not turn one topic's events late because another was read first.
A partition with no new event for `IDLE_S` whose topics are all caught up and readable is
idle: its watermark moves on with the watermarks of this worker's busy partitions (the lowest
of them), so the windows of agents that paused or stopped close with everyone else's and
fleet-wide windows never wait for a quiet partition. It moves with the others' event time,
not the wall clock, so a replay of old events (a backfill, a worker catching up) keeps its own
pace; when every partition is quiet, nothing moves (the last windows wait for new events).

Fleet-wide ('*') windows: each partition closes its own partial fleet window on its own
watermark and sends it with its watermark to a single-partition internal topic; the
`event-time-fleet` agent merges partials per window and closes it when the minimum watermark
over the active partitions passes its end (see `streams.windowing.fleet`).
"""

from __future__ import annotations

from typing import Any

from clawstream.settings import Settings
from streams.event_time.processor import IDLE_S, EventTimeProcessor

__all__ = ["IDLE_S", "EventTimeProcessor", "register"]


def register(app: Any, settings: Settings) -> EventTimeProcessor:
    """Declare the event-time processor on the faust app: event topics -> windows
    (claw.aggregates.v1), late and refused events (claw.late.v1), lost outcomes
    (claw.outcomes.v1), sessions (claw.sessions.v1) and plan progress (internal topic)."""
    proc = EventTimeProcessor(app, settings)
    app.clawstream_event_time = proc
    return proc
