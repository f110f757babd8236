"""Free loopback ports for the servers tests start (brokers, registries, metrics, webhooks)."""

from __future__ import annotations

import socket


def free_ports(n: int) -> list[int]:
    """`n` distinct ports nothing listens on right now (all held open while choosing)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    """One port nothing listens on right now."""
    return free_ports(1)[0]


def consecutive_free_ports(n: int) -> int:
    """The first of `n` consecutive ports nothing listens on right now (a local cluster's
    node i takes port + 2(i-1) and the controller port beside it)."""
    for _ in range(200):
        (base,) = free_ports(1)
        if base + n > 65535:
            continue
        socks = []
        try:
            for p in range(base, base + n):
                socks.append(socket.socket())
                socks[-1].bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no run of free ports")
