"""Did the action do what it should? Checked on the next frames.

Methods (the Outcome's `verification.method`):
- text_seen: the expected text appears (anywhere, or inside a given box) on a later frame;
- change_seen: a later frame differs from the one before the action (inside a box if given);
- none: nothing to check.
`poll` calls `observe()` (one perception step; returns the new observation or None when the
screen did not change) until the check passes or the timeout runs out; each new observation is
handed to `on_observation` first, so the agent can emit its frame and detection events.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from producers.perception.types import Box, intersects


@dataclass
class Expectation:
    method: str  # none | text_seen | change_seen
    expected: str | None = None
    box: Box | None = None  # where to look (a field's box)
    timeout_s: float = 3.0


@dataclass
class VerifyResult:
    method: str
    expected: str | None
    observed: str | None
    passed: bool

    def to_record(self, mask: Callable[[str | None], str | None] = lambda s: s) -> dict[str, Any]:
        return {"method": self.method, "expected": mask(self.expected),
                "observed": mask(self.observed), "passed": self.passed}


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9@.]+", " ", text.lower()).strip()


def text_in(obs: Any, expected: str, box: Box | None) -> tuple[bool, str]:
    if box is None:
        seen = obs.texts()
    else:
        seen = " ".join(e.text for e in obs.elements
                        if e.text and intersects(e.box, box) and e.kind != "window")
    return _norm(expected) in _norm(seen), seen


def poll(expect: Expectation, observe: Callable[[], Any | None],
         on_observation: Callable[[Any], object] = lambda _o: None,
         interval: float = 0.1, current: Any | None = None) -> VerifyResult:
    """Poll until `expect` holds; `current` (the latest observation) counts for text_seen."""
    if expect.method == "none":
        return VerifyResult("none", None, None, True)
    if expect.method == "text_seen" and current is not None:
        ok, seen = text_in(current, expect.expected or "", expect.box)
        if ok:
            return VerifyResult("text_seen", expect.expected, seen[:500], True)
    deadline = time.monotonic() + expect.timeout_s
    observed: str | None = None
    while True:
        obs = observe()
        if obs is not None:
            on_observation(obs)
            if expect.method == "change_seen":
                regions = obs.change.regions
                hit = [r for r in regions if expect.box is None or intersects(r, expect.box)]
                observed = f"{len(hit)} changed region(s)"
                if hit:
                    return VerifyResult("change_seen", expect.expected, observed, True)
            elif expect.method == "text_seen":
                ok, seen = text_in(obs, expect.expected or "", expect.box)
                observed = seen[:500]
                if ok:
                    return VerifyResult("text_seen", expect.expected, observed, True)
        if time.monotonic() >= deadline:
            return VerifyResult(expect.method, expect.expected, observed, False)
        time.sleep(interval)
