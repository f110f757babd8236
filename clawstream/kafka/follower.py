"""Following a small topic whole: every partition from its beginning, then what comes next.

For state that every replica of a service must hold in full and see change within a second,
such as the ingest gateway's tokens on a compacted topic: no consumer group (each replica
reads everything), nothing committed, and `caught_up` set once every partition was read up
to the end it had when the follower started, so a service can refuse work until then.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from clawstream.kafka.config import KafkaSettings, Role, client_config

log = logging.getLogger(__name__)


class TopicFollower:
    """Hands every message of `topic` to `handle` (on its own thread), from the beginning of
    every partition, until `close`."""

    def __init__(self, settings: KafkaSettings, role: Role, topic: str, client_id: str,
                 handle: Callable[[Message], None], *, poll_s: float = 0.2) -> None:
        self.topic = topic
        self.handle = handle
        self.poll_s = poll_s
        self.caught_up = threading.Event()
        self.error: str | None = None
        self._stop = threading.Event()
        self._consumer = Consumer(client_config(settings, role, "consumer", {
            # partitions assigned by hand and read whole on every start: nothing to commit
            # (a group's offsets would also need a group ACL)
            "group.id": client_id, "client.id": client_id, "enable.partition.eof": True,
            "enable.auto.commit": False, "fetch.wait.max.ms": 100,
        }))
        self._thread = threading.Thread(target=self._run, name=f"follow-{topic}", daemon=True)

    def start(self, timeout: float = 30.0) -> TopicFollower:
        """Assign every partition from its beginning and start the thread; raises when the
        topic's metadata cannot be read within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                md = self._consumer.list_topics(self.topic, timeout=max(0.5, deadline
                                                                        - time.monotonic()))
                meta = md.topics.get(self.topic)
                if meta is not None and meta.error is None and meta.partitions:
                    break
                why = str(meta.error) if meta is not None else "no metadata"
            except KafkaException as exc:
                why = str(exc)
            if time.monotonic() >= deadline:
                raise RuntimeError(f"cannot follow {self.topic}: {why}")
            time.sleep(0.2)
        self._pending = set(meta.partitions)
        self._consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING)
                               for p in meta.partitions])
        self._thread.start()
        return self

    def _run(self) -> None:
        consumer = self._consumer
        while not self._stop.is_set():
            try:
                messages = consumer.consume(1000, self.poll_s)
            except Exception as exc:  # (closed under us, or a librdkafka error)
                self.error = str(exc)
                log.warning("following %s: %s", self.topic, exc)
                time.sleep(self.poll_s)
                continue
            for msg in messages:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        self._pending.discard(msg.partition() or 0)
                        if not self._pending:
                            self.caught_up.set()
                    else:
                        self.error = str(err)
                        log.warning("following %s: %s", self.topic, err)
                    continue
                try:
                    self.handle(msg)
                except Exception:  # one bad record must not stop the follower
                    log.exception("following %s: a record could not be handled", self.topic)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._consumer.close()
