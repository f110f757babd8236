"""Prometheus helpers: every long-running process exposes `/metrics` the same way.

Metric names follow `clawstream_<component>_<what>_<unit>`; components define their metrics
in their own modules with prometheus-client and call `serve_metrics` once at start.
"""

from __future__ import annotations

import logging

from prometheus_client import start_http_server

log = logging.getLogger(__name__)
_served: set[int] = set()


def serve_metrics(port: int, host: str = "127.0.0.1") -> bool:
    """Start the /metrics endpoint once per port; a busy port is logged, not fatal."""
    if port in _served or port <= 0:
        return False
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        log.warning("metrics endpoint %s:%s not started: %s", host, port, exc)
        return False
    _served.add(port)
    log.info("metrics on http://%s:%s/metrics", host, port)
    return True
