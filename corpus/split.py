"""The seed split, recorded in code so nobody tunes on what is held out.

Tuning seeds are what a developer may look at, render, train on and adjust thresholds
against. Held-out seeds are only ever scored, as a whole. If anything was ever adjusted by
looking at a held-out failure, draw a new held-out set: bump `HELD_OUT_DRAW`, which moves the
held-out range to seeds nobody has seen.
"""

from __future__ import annotations

TOOLKITS = ("tk", "html")
#: seeds 0..9999 are for tuning (render, inspect, train, adjust)
TUNING = range(0, 10_000)
#: which draw of held-out seeds is in force; each draw is a fresh, disjoint range
HELD_OUT_DRAW = 2


def held_out(n: int, draw: int = HELD_OUT_DRAW) -> list[int]:
    """The first `n` held-out seeds of a draw (never overlapping tuning or other draws)."""
    if n > 10_000:
        raise ValueError("a draw holds at most 10000 seeds")
    base = 1_000_000 * draw
    return list(range(base, base + n))


def tuning(n: int, start: int = 0) -> list[int]:
    if start + n > len(TUNING):
        raise ValueError("the tuning range holds 10000 seeds")
    return list(range(start, start + n))


def is_held_out(seed: int) -> bool:
    return seed >= 1_000_000
