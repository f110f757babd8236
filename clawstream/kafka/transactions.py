"""The transactional producer: outputs, state and input offsets made visible all at once.

`TransactionalProducer` is a `ReliableProducer` whose messages go out in Kafka transactions: the
first message after a commit begins one, and `commit(offsets, group)` adds the consumer's
input offsets (`send_offsets_to_transaction` with the consumer group's metadata) and commits.
A read_committed reader sees all of a transaction's messages or none, and the input offsets
move only with them: a crash before the commit re-reads the input and the outputs written
meanwhile are never seen.

Zombies are fenced two ways: the group metadata carries the consumer's generation, so a worker
that lost its partitions (frozen past the session timeout) cannot commit offsets for them (the
broker refuses, the transaction is aborted); and a producer started with the same
transactional id aborts the old one's open transaction and refuses its next commit. Either
raises `TransactionFailed`: what was produced since the last commit is aborted, and the caller
must not go on from its in-memory state (it restarts from the committed offsets).

`instance_slot(directory)` gives a worker process a transactional id that a restart takes over
(as Kafka Streams keeps its process id in its state directory): the lowest slot number whose
lock file in `directory` no running process holds. A worker killed with -9 and started again
on the same host takes its slot back, and its producer's start aborts the killed one's open
transaction at once; with an id of its own, read_committed readers of the partitions that
transaction wrote (its own changelog recovery among them) would wait for the broker's
transaction timeout. Two live workers never share a slot (the lock is held while the process
lives, a frozen one keeps it: that zombie is fenced by its group generation instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from confluent_kafka import KafkaException, TopicPartition

from clawstream.kafka.config import KafkaSettings, Role, transactional
from clawstream.kafka.producer import Headers, OnDelivery, ReliableProducer

#: How long transactional calls (init, commit, abort) wait for the broker.
TXN_CALL_TIMEOUT_S = 60.0


#: the lock files of the slots this process holds (kept open while it lives)
_SLOTS: list[IO[bytes]] = []


def instance_slot(directory: Path) -> int:
    """The lowest slot number in `directory` that no running process holds; held from now
    on by this process (released by the kernel when it exits, however it exits)."""
    directory.mkdir(parents=True, exist_ok=True)
    slot = 0
    while True:
        f = open(directory / f"slot-{slot}.lock", "ab")  # noqa: SIM115 - held while we live
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            slot += 1
            continue
        f.truncate(0)
        f.write(str(os.getpid()).encode())
        f.flush()
        _SLOTS.append(f)
        return slot


class TransactionFailed(RuntimeError):
    """The transaction was aborted (fenced, or the broker refused it): its messages are never
    visible and its input offsets were not committed."""


class TransactionalProducer(ReliableProducer):
    def __init__(self, settings: KafkaSettings, role: Role, client_id: str,
                 transactional_id: str, overrides: Mapping[str, Any] | None = None) -> None:
        super().__init__(settings, role, client_id,
                         {**transactional(transactional_id), **(overrides or {})})
        self.transactional_id = transactional_id
        self.in_transaction = False
        self.producer.init_transactions(TXN_CALL_TIMEOUT_S)

    def _begin(self) -> None:
        if not self.in_transaction:
            self.producer.begin_transaction()
            self.in_transaction = True

    def produce(self, topic: str, value: bytes | None, key: bytes | None = None, *,
                partition: int = -1, headers: Headers | None = None,
                on_delivery: OnDelivery | None = None) -> None:
        """Queue one message in the current transaction (begun if none is open)."""
        self._begin()
        super().produce(topic, value, key, partition=partition, headers=headers,
                        on_delivery=on_delivery)

    def produce_many(self, messages: Sequence[tuple[str, bytes, bytes | None]], *,
                     headers: Headers | None = None,
                     on_delivery: OnDelivery | None = None) -> None:
        """Queue messages in the current transaction (begun if none is open)."""
        self._begin()
        super().produce_many(messages, headers=headers, on_delivery=on_delivery)

    def commit(self, offsets: list[TopicPartition] | None = None,
               group_metadata: Any = None) -> None:
        """Commit what was produced since the last commit, with the input `offsets` of the
        consumer group `group_metadata` (`Consumer.consumer_group_metadata()`). Nothing open
        and no offsets: nothing to do. Raises TransactionFailed after aborting."""
        if not self.in_transaction and not offsets:
            return
        try:
            if not self.in_transaction:
                self.producer.begin_transaction()
                self.in_transaction = True
            if offsets:
                self.producer.send_offsets_to_transaction(offsets, group_metadata,
                                                          TXN_CALL_TIMEOUT_S)
            self.producer.commit_transaction(TXN_CALL_TIMEOUT_S)
            self.errors.clear()
        except KafkaException as exc:
            self.abort()
            raise TransactionFailed(f"{self.transactional_id}: {exc}") from exc
        finally:
            self.in_transaction = False

    async def commit_async(self, offsets: list[TopicPartition] | None = None,
                           group_metadata: Any = None) -> None:
        """`commit` off the event loop."""
        await asyncio.get_running_loop().run_in_executor(None, self.commit, offsets,
                                                         group_metadata)

    def abort(self) -> None:
        """Abort the open transaction, if the producer still can (a fenced one cannot: its
        transaction was aborted for it)."""
        self.in_transaction = False
        self.errors.clear()
        # fatal (fenced) or nothing to abort: the broker aborts or aborted it
        with contextlib.suppress(KafkaException):
            self.producer.abort_transaction(TXN_CALL_TIMEOUT_S)
