"""The fleet-wide merge on the faust app: partitions' reports in, fleet ('*') windows out.

Each input partition closes its own partial fleet windows on its own watermark and sends them
with its watermark (its *report*) to a single-partition internal topic; owned partitions with
nothing new send a report (or, before their state is loaded, a keepalive) at least every
`REPORT_EVERY_S`, so the merge can tell an owner that is alive from one that went away. The
`event-time-fleet` agent merges partials per window (`streams.windowing.fleet.FleetMerger`)
and closes a window once the minimum watermark over the active partitions passes its end.
Its state (partials per source partition, the partitions' watermarks) is in the table
`event-time-fleet`, whose changelog it writes itself after the windows it closed are on Kafka
and before faust acks the report; whoever takes the agent's partition over reads it back.
A leader-only timer puts a `tick` on the topic, so windows close while no report comes.

With exactly-once processing the reports come in the processor's transactions (read committed
only), and the merge writes the windows it closed and its changelog in a transaction of its
own producer (transactional id `<app id>-fleet-merge`: whoever takes the merge over fences the
previous owner), committed before faust acks the report; a report that comes again after a
crash finds its windows closed in the changelog (late partials are not re-emitted).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from clawstream.kafka.producer import ReliableProducer
from clawstream.kafka.transactions import TransactionalProducer, TransactionFailed
from clawstream.settings import Settings
from streams.event_time.outputs import OutputSender
from streams.event_time.state import changelog_topic, raw_table, read_changelog
from streams.windowing.fleet import (
    FleetMerger,
    decode_report,
    encode_keepalive,
    encode_report,
)
from streams.windowing.state import WindowState

log = logging.getLogger("clawstream.streams.windows")

FLEET_TABLE = "event-time-fleet"
#: A partition reports its watermark to the fleet merge at least this often while busy.
REPORT_EVERY_S = 0.5
FLEET_TICK_S = 1.0
TICK = b"tick"
KEY = b"fleet"


class FleetMerge:
    """The fleet merge's topic, table, agent and timer, and the partitions' reports to it."""

    def __init__(self, app: Any, settings: Settings, producer: ReliableProducer,
                 sender: OutputSender, partitions: int) -> None:
        self.settings = settings
        self.producer = producer
        self.sender = sender
        self.partitions = partitions
        self.topic = app.topic(f"{app.conf.id}-fleet-partials", partitions=1, internal=True,
                               key_serializer="raw", value_serializer="raw")
        self.topic_name: str = self.topic.get_topic_name()
        self.table = raw_table(
            app, FLEET_TABLE, 1,
            "Partial fleet-wide windows per source partition and their watermarks.")
        self.merger: FleetMerger | None = None
        self.transactions = settings.processing_guarantee == "exactly_once"
        #: exactly-once: the merge's own transactional producer (made when it first runs)
        self.merge_out: TransactionalProducer | None = None
        #: per input partition: when it last reported (monotonic)
        self.last_report: dict[int, float] = {}
        app.on_partitions_revoked.connect(self._moved)
        app.on_partitions_assigned.connect(self._moved)
        app.agent(self.topic, name="event-time-fleet")(self._run)
        app.timer(FLEET_TICK_S, on_leader=True, name="event-time-fleet-tick")(self._tick)

    # -- the partitions' side: reports ----------------------------------------------------------
    def due(self, partition: int, now: float) -> bool:
        """Has the partition not reported for `REPORT_EVERY_S`?"""
        return now - self.last_report.get(partition, 0.0) >= REPORT_EVERY_S

    def report(self, partition: int, watermark: int, partials: dict[str, WindowState],
               has_data: bool, now: float) -> None:
        """The partition's watermark and the fleet partials it closed; `has_data` False: it
        never applied an event and has nothing left to read (it holds no window's share)."""
        self.last_report[partition] = now
        self.producer.produce(self.topic_name, encode_report(
            partition, watermark, partials, has_data=has_data), KEY)

    def keepalive(self, partition: int, now: float) -> None:
        """The partition's owner is alive (its state is not loaded yet: nothing else known)."""
        self.last_report[partition] = now
        self.producer.produce(self.topic_name, encode_keepalive(partition), KEY)

    # -- the merge: the agent of the single-partition topic --------------------------------------
    def _merger(self) -> FleetMerger:
        if self.merger is None:
            now = time.monotonic()
            merger = FleetMerger(started_at=now, partitions=self.partitions)
            for key, value in read_changelog(self.settings, self.table, 0).items():
                merger.load(key.decode(), value, now)
            self.merger = merger
        return self.merger

    async def _moved(self, app: Any, partitions: Any = (), **kwargs: Any) -> None:
        """The merge's input changed hands: what this worker holds in memory may be behind
        what another owner wrote meanwhile; it is read again from the changelog."""
        if any(tp.topic == self.topic_name for tp in partitions):
            self.merger = None

    async def _output(self) -> ReliableProducer:
        """Where the merge writes: the processor's producer, or (exactly-once) its own."""
        if not self.transactions:
            return self.producer
        if self.merge_out is None:
            app_id = self.settings.worker_app_id
            self.merge_out = await asyncio.get_running_loop().run_in_executor(
                None, TransactionalProducer, self.settings, "worker", f"{app_id}-fleet",
                f"{app_id}-fleet-merge")
        return self.merge_out

    async def _run(self, stream: Any) -> None:
        async for value in stream:
            merger = self._merger()
            now = time.monotonic()
            if value != TICK:
                p, wm, partials, has_data = decode_report(value)
                merger.report(p, wm, partials, has_data, now=now)
            out = await self._output()
            for rec in merger.advance(now):
                self.sender.fleet_window(rec, out)
            if isinstance(out, TransactionalProducer):
                await self._commit(out, merger)
                continue
            await out.flush_async()
            changelog = changelog_topic(self.table)
            for key, data in merger.take_dirty().items():
                out.produce(changelog, data, key.encode(), partition=0)
            await out.flush_async()  # before faust acks (and commits) the report

    async def _commit(self, out: TransactionalProducer, merger: FleetMerger) -> None:
        """The windows closed and the changelog in one transaction, before faust acks the
        report. Fenced (another worker runs the merge now): drop what this one holds."""
        changelog = changelog_topic(self.table)
        for key, data in merger.take_dirty().items():
            out.produce(changelog, data, key.encode(), partition=0)
        try:
            await out.commit_async()
        except TransactionFailed as exc:
            log.warning("fleet merge fenced, its windows aborted (another worker merges "
                        "now): %s", exc)
            self.merger = self.merge_out = None

    async def _tick(self) -> None:
        await self.topic.send(key=KEY, value=TICK)
