"""What a group member owns, and whether the group may have moved on without it.

After a pause longer than the session timeout (the process was frozen, swapped out, or
starved), the group may have given the partitions to another member while this one still
holds them: nothing is handed over (so nothing is made durable by a zombie) until a
synchronous commit of the offsets already committed proves the membership still valid, or
the lost assignment has been called back. A commit carries the member id and generation, so
the broker refuses it from a member it no longer counts; committing the offsets already
committed changes nothing.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from clawstream.kafka.config import SESSION_TIMEOUT_S

log = logging.getLogger("clawstream.kafka.consumer")

Key = tuple[str, int]


class Membership:
    """Partitions assigned to us (as the rebalance callbacks said), those read to their end,
    the latest offsets committed, and when the topics were last read."""

    def __init__(self) -> None:
        self.owned: set[Key] = set()
        #: owned partitions whose end was reached (with `enable.partition.eof`)
        self.ended: set[Key] = set()
        #: latest offsets handed to a commit, per (topic, partition)
        self.committed: dict[Key, int] = {}
        self.last_read = time.monotonic()
        self.verify = False  # a long pause: prove membership before handing anything over
        #: the member and generation of the latest rebalance (`note_generation`)
        self.metadata: Any = None

    def assigned(self, partitions: list[TopicPartition], consumer: Consumer) -> None:
        self.owned |= {(tp.topic, tp.partition) for tp in partitions}
        self.note_generation(consumer)

    def note_generation(self, consumer: Consumer) -> None:
        """Keep the member id and generation (`consumer_group_metadata()`) that a transaction
        commits offsets with; called in the rebalance callbacks, on the thread that reads.

        Not asked for when committing: while `poll` runs a rebalance callback, every call
        into the consumer from another thread waits for the callback (confluent-kafka holds
        the consumer), and `BatchConsumer`'s revoke callback waits for the event loop, which
        commits the owner's transaction in it. Asking from the event loop then never returned
        (the revocation timed out, the group waited minutes for this member). A member whose
        partitions were lost keeps its old generation until it is assigned again: the broker
        refuses a commit with it (a zombie is fenced)."""
        self.metadata = consumer.consumer_group_metadata()

    def forget(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self.committed.pop(key, None)
            self.owned.discard(key)
            self.ended.discard(key)

    def note_committed(self, offsets: list[TopicPartition]) -> None:
        for tp in offsets:
            self.committed[(tp.topic, tp.partition)] = tp.offset

    def in_doubt(self) -> bool:
        """May the partitions have moved on without us? True after no read for longer than
        the session timeout, until a read proves the membership: make nothing durable then."""
        return self.verify or time.monotonic() - self.last_read > SESSION_TIMEOUT_S

    def confirmed_after_read(self, consumer: Consumer) -> bool:
        """Called after each read: may what was read be handed over? After a long pause,
        only once the group confirms we are still the owner."""
        paused = time.monotonic() - self.last_read
        if paused > SESSION_TIMEOUT_S:  # (a pause in the owner's handling or in this read)
            log.warning("no read of the topics for %.1f s (longer than the session "
                        "timeout): checking that the partitions are still ours", paused)
            self.verify = True
        ok = not self.verify or self._still_member(consumer)
        if ok:
            self.verify = False
        self.last_read = time.monotonic()
        return ok

    def _still_member(self, consumer: Consumer) -> bool:
        """Does the group still count this consumer as the owner of its partitions?"""
        offsets = [TopicPartition(t, p, o) for (t, p), o in self.committed.items()]
        if not offsets and self.owned:  # none by us yet: what the group has
            try:
                offsets = [tp for tp in consumer.committed(
                    [TopicPartition(t, p) for t, p in self.owned], timeout=10)
                    if tp.offset >= 0]
            except KafkaException:
                return False
        if not offsets:
            return True  # nothing owned, or nothing ever committed: nothing to prove it with
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.warning("partitions may have moved on (%s): nothing handed over until "
                        "the group answers", exc.args[0])
            return False
        log.info("partitions still ours after the pause")
        return True
