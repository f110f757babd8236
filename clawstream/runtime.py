"""Process-wide tuning of long-running, allocation-heavy loops (the stream worker, and the
benchmark's raw loop that it is measured against)."""

from __future__ import annotations

import gc


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
