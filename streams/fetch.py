"""Whole fetches from faust's consumer to a handler, for topics that are processed in batches.

faust hands every fetched message to its stream one at a time, through about ten asyncio
steps: two tasks and an `asyncio.wait` per message in the fetcher (so that a rebalance can
interrupt a delivery blocked on a full queue), the conductor's lock, the channel queue, the
stream iterator and its per-event bookkeeping. Profiled on the windows worker, that was more
time than decoding and windowing together. A topic registered here skips all of it: the
fetcher gives the handler every message of one fetch at once, still tracked as unacked like
faust's own deliveries (a rebalance or shutdown waits for their acks, and only acked offsets
are committed), and the handler acks them once it has made their effects durable. faust
agents reading the same topics still get each message the usual way (the message counts one
reference more, the handler's), as does every other topic.

Use: `create_app` installs `Transport` (below) on the app; a module calls
`route_batches(app, topic, handler)` with the faust topic it would otherwise give an agent.
The handler is also called with an empty list when a fetch comes back empty, so it can act
on idle time (flush what it holds).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from faust.transport import conductor as faust_conductor
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka

BatchHandler = Callable[[list[Any]], Awaitable[None]]


def route_batches(app: Any, topic: Any, handler: BatchHandler) -> None:
    """Subscribe to `topic` (a faust topic) and deliver its messages to `handler` in fetches.

    Agents reading the same Kafka topics through faust still get every message: the conductor
    delivers to them as usual, and a message is committed once all readers acked it.
    """
    app.topics.add(topic)  # the conductor subscribes to it (RoutingConductor keeps it off
    # the per-message delivery: nothing reads this channel)
    app.__dict__.setdefault("clawstream_batch_channels", set()).add(topic)
    routes: dict[str, BatchHandler] = app.__dict__.setdefault("clawstream_batch_routes", {})
    for name in topic.topics:
        routes[name] = handler


def release(message: Any, consumer: Any) -> None:
    """Give a routed message up unprocessed (it is read again after a restart or by the
    partition's next owner), without making it committable."""
    if not message.decref():
        consumer._unacked_messages.discard(message)


def ack_all(messages: list[Any], consumer: Any) -> None:
    """`message.ack(consumer)` for each message, with faust's bookkeeping done once per batch.

    The same steps as faust's `Message.ack` -> `ConsumerMessage.on_final_ack` ->
    `Consumer.ack` (drop the handler's reference; once no reader holds the message, record
    its offset as committable), under one acquisition of faust's ack lock instead of three
    per message: acking a fetch one message at a time cost as much as windowing it.
    """
    from faust.types.tuples import ack_lock
    from mode.utils.futures import notify

    enabled: dict[str, bool] = {}
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    committed = consumer._committed_offset
    acked_index = consumer._acked_index
    acked = consumer._acked
    unacked = consumer._unacked_messages
    n = 0
    with ack_lock:
        for m in messages:
            if m.acked:
                continue
            m.refcount = refs = max(m.refcount - 1, 0)
            if refs:
                continue  # a faust agent reading the same topic has not acked it yet
            m.acked = True
            topic = m.topic
            on = enabled.get(topic)
            if on is None:
                on = enabled[topic] = acks_enabled_for(topic)
            if not on:
                continue
            tp, offset = m.tp, m.offset
            done = committed[tp]
            if done is None or offset >= done:
                index = acked_index[tp]
                if offset not in index:
                    unacked.discard(m)
                    index.add(offset)
                    acked[tp].append(offset)
                    n += 1
        consumer._n_acked += n
    notify(consumer._waiting_for_ack)


class RoutingConductor(faust_conductor.Conductor):
    """faust's conductor, minus per-message delivery to the channels of routed topics."""

    def _update_tp_index(self, assigned: Any) -> None:
        super()._update_tp_index(assigned)
        routed = getattr(self.app, "clawstream_batch_channels", ())
        for channels in self._tp_index.values():
            channels.difference_update(routed)


class BatchingConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer whose fetcher hands routed topics' messages over in batches."""

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - I/O loop
        # faust's own loop (faust.transport.consumer.Consumer._drain_messages) with one
        # change: messages of routed topics are collected per fetch instead of delivered
        # one by one through the conductor.
        routes: dict[str, BatchHandler] = getattr(self.app, "clawstream_batch_routes", {})
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                batches: dict[BatchHandler, list[Any]] = {h: [] for h in routes.values()}
                await self.sleep(0)
                if not self.should_stop:
                    try:
                        await self._fetch_into(batches, routes)
                    except BaseException:
                        self._untrack(batches)  # never processed: read again after restart
                        raise
                    self.diag.unset_flag(CONSUMER_FETCHING)
                for handler, messages in batches.items():
                    self._mark_inbound(messages)
                    await handler(messages)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _fetch_into(self, batches: dict[BatchHandler, list[Any]],
                          routes: dict[str, BatchHandler]) -> None:  # pragma: no cover - I/O
        """One getmany: routed messages into `batches`, the others to faust's conductor."""
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = self.app.topics.acks_enabled_for
        # what track_message does, minus faust's per-message sensor calls (the windows count
        # their events in their own Prometheus metrics)
        track = self._unacked_messages.add
        callback = self.callback
        readers = self.app.topics._tp_index  # tp -> faust channels delivered per message
        commit_every = self._commit_every
        since_yield = 0
        async for tp, message in self.getmany(timeout=1.0):
            offset = message.offset
            r_offset = get_read_offset(tp)
            if r_offset is not None and offset < r_offset:
                continue  # already read (a seek went back)
            gap = offset - (r_offset or 0)
            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                await self._add_gap(tp, r_offset + 1, offset)
            if commit_every is not None and self._n_acked >= commit_every:
                self._n_acked = 0
                await self.commit()
            handler = routes.get(message.topic)
            if handler is not None:
                message.incref()  # the handler's reference; faust's readers add theirs
                track(message)
                batches[handler].append(message)
                if readers.get(tp):  # faust agents read this topic too
                    await self.wait_first(callback(message), self.suspend_flow.wait())
                since_yield += 1
                if since_yield > 1000:
                    since_yield = 0
                    await asyncio.sleep(0)
            else:
                await self.wait_first(callback(message), self.suspend_flow.wait())
            set_read_offset(tp, offset)

    def _untrack(self, batches: dict[BatchHandler, list[Any]]) -> None:
        for messages in batches.values():
            for m in messages:
                release(m, self)

    def _mark_inbound(self, messages: list[Any]) -> None:
        """Tell faust's liveness check that the stream of these partitions is processing."""
        monitor = self.app.monitor
        if monitor is not None and messages:
            now = time.monotonic()
            for tp in {m.tp for m in messages}:
                monitor.stream_inbound_time[tp] = now

    async def wait_empty(self) -> None:
        """Before a rebalance or shutdown waits for every fetched message to be acked, let the
        batch handlers finish what they hold (an empty fetch makes them persist and ack)."""
        routes: dict[str, BatchHandler] = getattr(self.app, "clawstream_batch_routes", {})
        for handler in set(routes.values()):
            await handler([])
        await super().wait_empty()


class Transport(faust_aiokafka.Transport):
    """faust's aiokafka transport with the batching consumer and the routing conductor."""

    Consumer = BatchingConsumer
    Conductor = RoutingConductor


def current(app: Any, message: Any) -> bool:
    """Is this message from the current assignment (not from before a rebalance)?"""
    return app.flow_control.is_active() and message.generation_id == app.consumer_generation_id
