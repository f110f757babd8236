"""The event-time state of each partition in a changelog-backed faust table: persist, restore.

The open windows, pending actions, open sessions and the per-source watermark marks of every
input partition live in one plain changelog-backed table (`event-time-state`, key
"<partition>/<operator>/<key>", value bytes). The processor writes that changelog itself (what
changed since the last persist, the clock record last, through its own producer) and, when it
first sees a partition, reads it back to its end offset: faust's in-memory recovery can leave
out a partition's newest record, which for us is the clock record the whole partition's state
hangs on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from clawstream.kafka.producer import ReliableProducer
from clawstream.kafka.reader import PartitionReader
from clawstream.settings import Settings
from streams.windowing import PartitionPipeline

log = logging.getLogger("clawstream.streams.windows")

STATE_TABLE = "event-time-state"


def raw_table(app: Any, name: str, partitions: int, help: str) -> Any:
    """A faust table of bytes keys and values whose changelog the processor writes itself and
    reads back itself (`read_changelog`): with exactly-once, faust's recovery skips it."""
    import faust

    from streams.worker_app import OWNER_RESTORED

    table = app.Table(name, partitions=partitions, key_type=bytes, value_type=bytes,
                      help=help,
                      schema=faust.Schema(key_serializer="raw", value_serializer="raw"))
    setattr(table, OWNER_RESTORED, True)
    return table


def changelog_topic(table: Any) -> str:
    name: str = table.changelog_topic.get_topic_name()
    return name


def read_changelog(settings: Settings, table: Any, partition: int) -> dict[bytes, bytes]:
    """The latest value per key of one changelog partition, read to its end offset (blocking).

    Read here rather than trusted to faust's in-memory recovery, whose end-offset arithmetic
    can leave out the newest record of a partition.
    """
    topic = changelog_topic(table)
    state: dict[bytes, bytes] = {}
    # a compacted log has gaps: a start offset compacted away reads on from the next one
    with PartitionReader(settings, "worker", f"{settings.worker_app_id}-restore",
                         {"auto.offset.reset": "earliest"}) as reader:
        low, high = reader.watermarks(topic, partition)
        for m in reader.read({(topic, partition): (low, high)}):
            key, value = m.key(), m.value()
            if key is None:
                continue
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
    return state


class PartitionStates:
    """The pipelines of the partitions this worker processes, and their persisted state."""

    def __init__(self, app: Any, settings: Settings, partitions: int,
                 new_pipeline: Callable[[], PartitionPipeline]) -> None:
        self.settings = settings
        self.new_pipeline = new_pipeline
        self.pipelines: dict[int, PartitionPipeline] = {}
        self.table = raw_table(
            app, STATE_TABLE, partitions,
            "Open windows, pending actions, open sessions and watermarks per partition.")

    async def ensure(self, partitions: set[int]) -> None:
        """Build (and restore from the changelog) the pipelines of newly seen partitions.

        The changelog is read with a blocking client, so off the event loop: faust's
        heartbeats, timers and other agents keep running while a partition's state loads.
        """
        loop = asyncio.get_running_loop()
        for partition in partitions - self.pipelines.keys():
            state = await loop.run_in_executor(None, read_changelog, self.settings, self.table,
                                               partition)
            pl = self.pipelines[partition] = self.new_pipeline()
            prefix = f"{partition}/".encode()
            restored = pl.restore((key[len(prefix):].decode(), value)
                                  for key, value in state.items() if key.startswith(prefix))
            if restored:
                log.info("partition %d: restored %d state keys, watermark %s", partition,
                         restored, pl.watermark)

    def drop(self, partitions: set[int]) -> None:
        """Forget partitions that went to another worker (it restores them itself)."""
        for p in partitions:
            self.pipelines.pop(p, None)

    def write(self, producer: ReliableProducer, touched: set[int]) -> None:
        """Produce the changed state of `touched` partitions to the changelog, the clock
        record of each last (the caller flushes, after the outputs it accounts for)."""
        topic = changelog_topic(self.table)
        for p in touched:
            pl = self.pipelines.get(p)
            if pl is None:  # revoked meanwhile; its new owner restores from the changelog
                continue
            for key, value in pl.take_dirty().items():
                producer.produce(topic, value, f"{p}/{key}".encode(), partition=p)
