"""Process-wide helpers of long-running workers: GC tuning of allocation-heavy loops (the
stream worker, and the benchmark's raw loop that it is measured against), and a deadline on
stopping after a fatal error."""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading

log = logging.getLogger("clawstream.runtime")


def tune_gc(young_threshold: int) -> None:
    """Collect the young generation every `young_threshold` allocations instead of 700.

    A worker builds several dicts per decoded event and keeps hundreds of thousands of
    objects alive (open windows, pending actions, faust's and aiokafka's state); with
    CPython's defaults the cyclic collector ran every ~70 events and rescanned that heap
    often: a fifth of the worker's time. Objects built during startup are frozen (never
    scanned again: modules, the app, its topics). 0 keeps CPython's defaults.
    """
    if young_threshold <= 0:
        return
    gc.freeze()
    gc.set_threshold(young_threshold, 20, 100)


def exit_if_not_stopped(seconds: float, status: int = 1) -> threading.Timer:
    """Exit the process with `status` unless it has exited within `seconds`.

    For fatal errors in a faust worker: faust stops its app first, and that can wait forever
    for messages its crashed agents still hold (a crash during startup hangs the stop). Past
    the deadline the process goes like a killed one, which every part recovers from (nothing
    uncommitted is lost, offsets are only committed behind durable state).
    """
    def expire() -> None:
        log.critical("did not stop within %g s of a fatal error: exiting (status %d)",
                     seconds, status)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True  # never what keeps the process alive
    timer.start()
    return timer
