"""The alert notifier: `claw.alerts.v1` -> Alertmanager-compatible webhooks.

Each batch of Alert events becomes one JSON array in the Alertmanager `/api/v2/alerts`
format (labels, annotations, startsAt, endsAt, generatorURL) POSTed to every URL in
settings.alert_webhooks. 5xx answers and connection errors are retried with exponential
backoff (tenacity); 4xx answers are not (the payload will not get better). Offsets are
committed only once every webhook took the batch, or after giving up, in which case the
batch's messages go to the DLQ with the reason: no alert is dropped silently.

Only what a pager needs is sent: firing, renotify and breaker transitions (as firing
updates, same labels) and resolved. pending/inactive stay in ClickHouse.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from confluent_kafka import Message
from prometheus_client import Counter, Histogram
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from clawstream.kafka.consumer import GroupConsumer, next_offsets
from clawstream.kafka.deadletter import dead_letter_queue
from clawstream.settings import Settings
from schemas.serde import Serde
from schemas.topics import ALERTS

log = logging.getLogger("clawstream.notifier")

COMPONENT = "notifier"
NOTIFY_STATES = ("firing", "renotify", "transition", "resolved")
GENERATOR_BASE = "http://clawstream.local/alerts"

DELIVERED = Counter("clawstream_notifier_alerts_delivered_total",
                    "Alerts accepted by a webhook.", ["webhook"])
POSTS = Counter("clawstream_notifier_posts_total", "Webhook POSTs by result.",
                ["webhook", "result"])
RETRIES = Counter("clawstream_notifier_retries_total", "Webhook POSTs retried.", ["webhook"])
GAVE_UP = Counter("clawstream_notifier_gave_up_total",
                  "Batches a webhook never took (sent to the DLQ).", ["webhook", "reason"])
SKIPPED = Counter("clawstream_notifier_skipped_total",
                  "Alert events not sent (state not notified, or a duplicate).", ["reason"])
DLQ_SENT = Counter("clawstream_notifier_dlq_total", "Messages sent to the DLQ.", ["reason"])
POST_SECONDS = Histogram("clawstream_notifier_post_seconds", "Webhook POST latency.",
                         ["webhook"])


class RetryableStatus(Exception):
    """A 5xx or 429 answer: worth trying again."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:200]}")
        self.status = status


class Rejected(Exception):
    """A 4xx answer: the receiver refuses this payload; retrying will not help."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:200]}")
        self.status = status


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="milliseconds")


def to_alertmanager(rec: dict[str, Any], generator_base: str = GENERATOR_BASE) -> dict | None:
    """One Alert record as an Alertmanager v2 alert, or None when it is not notified."""
    state = rec["state"]
    if state not in NOTIFY_STATES:
        return None
    labels = {k: v for k, v in rec["labels"].items() if v != ""}
    labels.setdefault("alertname", rec["rule"])
    labels.setdefault("severity", rec["severity"])
    annotations = dict(rec.get("annotations") or {})
    annotations.update({
        "incident_id": rec["incident_id"],
        "fingerprint": rec["fingerprint"],
        "rule_kind": rec["rule_kind"],
        "state": state,
    })
    if rec.get("value") is not None:
        annotations["value"] = f"{rec['value']:.6g}"
    if rec.get("transition"):
        annotations["transition"] = rec["transition"]
    out: dict[str, Any] = {
        "labels": labels,
        "annotations": annotations,
        "startsAt": _iso(rec["starts_at"]),
        "generatorURL": f"{generator_base}/{rec['fingerprint']}?incident={rec['incident_id']}",
    }
    if state == "resolved":
        out["endsAt"] = _iso(rec.get("ends_at") or rec["envelope"]["event_time"])
    return out


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, RetryableStatus | httpx.TransportError)


class Webhook:
    """POSTs a JSON array to one URL with retries and exponential backoff."""

    def __init__(
        self,
        url: str,
        client: httpx.Client,
        *,
        attempts: int = 6,
        backoff_initial: float = 0.2,
        backoff_max: float = 5.0,
    ) -> None:
        self.url = url
        self.client = client
        self.attempts = attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max

    def _post_once(self, payload: list[dict]) -> None:
        start = time.perf_counter()
        try:
            resp = self.client.post(self.url, json=payload)
        except httpx.TransportError:
            POSTS.labels(self.url, "error").inc()
            raise
        finally:
            POST_SECONDS.labels(self.url).observe(time.perf_counter() - start)
        POSTS.labels(self.url, str(resp.status_code)).inc()
        if resp.status_code >= 500 or resp.status_code == 429:
            raise RetryableStatus(resp.status_code, resp.text)
        if resp.status_code >= 400:
            raise Rejected(resp.status_code, resp.text)

    def post(self, payload: list[dict]) -> None:
        """Deliver or raise (Rejected, RetryableStatus or httpx.TransportError) at the end."""

        def before_sleep(state: RetryCallState) -> None:
            RETRIES.labels(self.url).inc()
            exc = state.outcome.exception() if state.outcome else None
            log.warning("webhook %s failed (%s), retry %d", self.url, exc,
                        state.attempt_number)

        for attempt in Retrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff_initial, max=self.backoff_max),
            before_sleep=before_sleep,
            reraise=True,
        ):
            with attempt:
                self._post_once(payload)


class Notifier:
    """Consumes alerts (own consumer group), delivers to every webhook, commits after."""

    def __init__(
        self,
        settings: Settings,
        webhooks: Sequence[str] | None = None,
        *,
        group: str | None = None,
        batch_max: int = 200,
        batch_wait_s: float = 0.2,
        attempts: int = 6,
        backoff_initial: float = 0.2,
        backoff_max: float = 5.0,
        http_timeout_s: float = 5.0,
        generator_base: str = GENERATOR_BASE,
    ) -> None:
        self.settings = settings
        urls = webhooks if webhooks is not None else [
            u.strip() for u in settings.alert_webhooks.split(",") if u.strip()
        ]
        self.http = httpx.Client(timeout=http_timeout_s)
        self.webhooks = [Webhook(u, self.http, attempts=attempts,
                                 backoff_initial=backoff_initial, backoff_max=backoff_max)
                         for u in urls]
        self.group = group or settings.notifier_group
        self.topic = settings.topic(ALERTS)
        self.generator_base = generator_base
        self.serde = Serde.for_registry(settings.schema_registry_url)
        # a batch is delivered and committed before the next is read: nothing is held
        # across a rebalance
        self.consumer = GroupConsumer(settings, "notifier", self.group, [self.topic],
                                      overrides={"client.id": "clawstream-notifier"},
                                      batch_max=batch_max, poll_s=batch_wait_s)
        self.consumer.subscribe(on_revoke=lambda _partitions: [],
                                on_lost=lambda _partitions: None)
        self.dlq = dead_letter_queue(settings, "notifier", COMPONENT,
                                     on_sent=lambda reason: DLQ_SENT.labels(reason).inc())
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._stop = threading.Event()
        self.delivered = 0

    def _duplicate(self, event_id: str) -> bool:
        if event_id in self._recent:
            return True
        self._recent[event_id] = None
        if len(self._recent) > 10_000:
            self._recent.popitem(last=False)
        return False

    def step(self) -> int:
        """One read-deliver-commit round; returns the number of messages consumed."""
        batch = self.consumer.read()
        if not batch:
            return 0
        self.deliver(batch)
        return len(batch)

    def deliver(self, batch: list[Message]) -> None:
        """POST the batch's alerts to every webhook, then commit it. Messages that are no
        alert, and alerts a webhook never took, go to the DLQ first."""
        payload: list[dict] = []
        carried: list[Message] = []

        def take(m: Message) -> None:
            rec = self.serde.decode_as(m.value(), ("alert",), self.topic).record
            am = to_alertmanager(rec, self.generator_base)
            if am is None:
                SKIPPED.labels(rec["state"]).inc()
            elif self._duplicate(rec["envelope"]["event_id"]):
                SKIPPED.labels("duplicate").inc()
            else:
                payload.append(am)
                carried.append(m)

        self.dlq.each(batch, take)
        if payload:
            for hook in self.webhooks:
                try:
                    hook.post(payload)
                    DELIVERED.labels(hook.url).inc(len(payload))
                    self.delivered += len(payload)
                except (Rejected, RetryableStatus, httpx.HTTPError) as exc:
                    reason = "webhook-rejected" if isinstance(exc, Rejected) else "webhook-failed"
                    log.error("giving up on %s for %d alerts: %s", hook.url, len(payload), exc)
                    GAVE_UP.labels(hook.url, reason).inc()
                    for m in carried:
                        self.dlq.send(m, reason, f"{hook.url}: {exc}")
        self.dlq.flush()
        self.consumer.commit_now(next_offsets(batch))

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Loop until stop() (or `until()` is true)."""
        log.info("notifier: %s -> %s (group %s)", self.topic,
                 [h.url for h in self.webhooks] or "no webhooks", self.group)

        def done() -> bool:
            return self._stop.is_set() or (until is not None and until())

        def on_batch(batch: list[Message]) -> None:
            if batch:
                self.deliver(batch)
            if done():
                self.consumer.stop()

        if not done():
            self.consumer.drive(on_batch)

    def stop(self) -> None:
        self._stop.set()
        self.consumer.stop()

    def close(self) -> None:
        self.consumer.close()
        self.dlq.close()
        self.http.close()
