"""The one Kafka runtime: every client configuration, the reliable producer, the consumer
loop and the dead-letter path of clawstream live here.

- `config`: `client_config(settings, role, kind)` is the only place a librdkafka (or
  faust/aiokafka) configuration is built, so the security settings reach every client from
  one module; group liveness timings too.
- `producer`: `ReliableProducer`, a confluent-kafka producer whose `flush` fails loudly when a
  message was not acknowledged (callers make state durable / commit only after it).
- `deadletter`: `InvalidMessage` (what handlers raise for input they cannot use) and
  `DeadLetterQueue` (the one path to `claw.dlq.v1`, with a limit that stops a runaway).
- `consumer`: `BatchConsumer`, the consumer-group loop the event-time processor, the sink and
  the notifier run on: batches, commit only what is durable, rebalance callbacks, proof of
  membership after a long pause, which partitions can be read at all.

Nothing here imports the server packages (`streams`, `consumers`) or the agent side, so both
sides can build on it.
"""
