"""The HTTPS ingest gateway: remote agents send batches of events with a token that binds
their agent id; the gateway writes them to Kafka through the runtime (`clawstream.kafka`),
stamping the token's principal on each record, and answers once Kafka acknowledged them.

- `tokens`: the token format, its hash, the compacted registry topic every replica follows
- `batch`: the request encodings (Avro batch, JSON) and their size limits
- `limits`: per-token rate limits, failed-authentication throttling
- `ingest`: checking items and writing them (events, dead letters) with acknowledgements
- `app`: the Starlette routes, status codes and metrics
- `server`: uvicorn with TLS, and the `gateway` and `tokens` commands

Server side: the agent side (`producers`) never imports it; its HTTPS transport speaks the
wire format only (`producers.sdk.https`).
"""
