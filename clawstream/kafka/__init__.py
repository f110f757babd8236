"""The one Kafka runtime: every client configuration, the reliable producer, the consumer
loop and the dead-letter path of clawstream live here.

- `config`: `client_config(settings, role, kind)` is the only place a librdkafka (or
  faust/aiokafka) configuration is built, so the security settings reach every client from
  one module; group liveness timings too.
- `producer`: `ReliableProducer`, a confluent-kafka producer whose `flush` fails loudly when a
  message was not acknowledged (callers make state durable / commit only after it).
- `deadletter`: `InvalidMessage` (what handlers raise for input they cannot use, beside the
  contract's `DecodeError`) and `DeadLetterQueue` (the one path to `claw.dlq.v1`, with a
  limit that stops a runaway; `each` runs a handler over a batch and dead-letters what it
  rejects).
- `consumer`: the consumer-group loop the event-time processor (`BatchConsumer`, asyncio),
  the sink and the notifier (`GroupConsumer`, its synchronous core) run on: batches, commit
  only what is durable, rebalance callbacks (an assignment hook may seek), which partitions
  can be read at all; `membership`: the proof of membership after a long pause.
- `reader`: `PartitionReader`, one-off reads of known offsets outside any group (the sink's
  resume probe, a changelog restore).

Why not sentry-arroyo (2.48 on PyPI, Sentry's consumer library: batching strategies, commit
policies, a DLQ with limits)? Its `StreamProcessor` subscribes to one topic (the sink reads a
dozen in one group), polls and wraps one message at a time in Python objects (the sink's fast
path hands whole batches of raw bytes to ClickHouse), has no asyncio driver for the
event-time processor, offers no hook to seek on assignment (the sink resumes from the offsets
stored in ClickHouse), no proof of membership after a pause, no partition readability for
watermarks, and its Kafka DLQ producer writes only the original partition and offset, not the
reason headers of our contract (`schemas.headers`). Using it meant rebuilding those around it
and rewriting both owners; the loop here is a few hundred lines, and its DLQ follows arroyo's
semantics (typed invalid-message errors, a limit on consecutive invalid messages).

Nothing here imports the server packages (`streams`, `consumers`) or the agent side, so both
sides can build on it.
"""
