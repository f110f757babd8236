"""Stopping the subprocesses tests start (workers, gateways): politely, or with kill -9."""

from __future__ import annotations

import signal
import subprocess


def kill9(proc: subprocess.Popen | None) -> None:
    """kill -9: no goodbye (a running process only)."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


def stop(proc: subprocess.Popen | None, grace: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
