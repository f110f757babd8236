"""Process-wide helpers: the stop deadline after a fatal error, GC tuning."""

from __future__ import annotations

import gc
import subprocess
import sys
import time

from clawstream.runtime import tune_gc

HANGING = """
import time
from clawstream.runtime import exit_if_not_stopped
exit_if_not_stopped(0.5, status=3)
time.sleep(30)  # a stop that never finishes
"""

STOPPING = """
from clawstream.runtime import exit_if_not_stopped
exit_if_not_stopped(30, status=3)
print("stopped cleanly")
"""


def test_a_process_that_does_not_stop_exits_at_the_deadline_with_the_status() -> None:
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-c", HANGING], capture_output=True, text=True,
                          timeout=20)
    assert done.returncode == 3
    assert time.monotonic() - t0 < 10
    assert "did not stop within 0.5 s of a fatal error: exiting (status 3)" in done.stderr


def test_the_deadline_never_keeps_a_stopping_process_alive() -> None:
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-c", STOPPING], capture_output=True, text=True,
                          timeout=20)
    assert done.returncode == 0 and done.stdout.strip() == "stopped cleanly"
    assert time.monotonic() - t0 < 10  # the timer thread is a daemon


def test_tune_gc_sets_the_young_threshold_and_zero_keeps_the_defaults() -> None:
    before = gc.get_threshold()
    try:
        tune_gc(0)
        assert gc.get_threshold() == before
        tune_gc(123_456)
        assert gc.get_threshold()[0] == 123_456
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
