"""`clawstream notifier`: deliver alerts from Kafka to Alertmanager-compatible webhooks."""

from __future__ import annotations

import signal

import click


@click.command("notifier")
@click.option("--webhook", "webhooks", multiple=True,
              help="Webhook URL (repeatable); default: CLAWSTREAM_ALERT_WEBHOOKS.")
@click.option("--attempts", default=6, show_default=True, help="POST attempts per batch.")
@click.option("--backoff", default=0.2, show_default=True,
              help="First retry delay in seconds (doubles each time, at most 5 s).")
@click.option("--metrics-port", type=int, default=None,
              help="/metrics port (default: CLAWSTREAM_NOTIFIER_METRICS_PORT, 0 = off).")
def notifier(webhooks: tuple[str, ...], attempts: int, backoff: float,
             metrics_port: int | None) -> None:
    """Consume claw.alerts.v1 and POST /api/v2/alerts JSON to each webhook.

    Retries 5xx and connection errors with exponential backoff, never 4xx; commits offsets
    only after delivery, or after giving up with a DLQ record.
    """
    from clawstream.metrics import serve_metrics
    from clawstream.settings import get_settings
    from consumers.notifier import Notifier

    settings = get_settings()
    port = settings.notifier_metrics_port if metrics_port is None else metrics_port
    serve_metrics(port, settings.metrics_host)
    n = Notifier(settings, list(webhooks) or None, attempts=attempts, backoff_initial=backoff)
    if not n.webhooks:
        raise click.ClickException(
            "no webhook: pass --webhook URL or set CLAWSTREAM_ALERT_WEBHOOKS")
    signal.signal(signal.SIGTERM, lambda *_: n.stop())
    try:
        n.run()
    except KeyboardInterrupt:
        pass
    finally:
        n.close()
