"""Did the action do what it should? Checked on the next frames.

Methods (the Outcome's `verification.method`):
- field_text: the target field itself changed and now reads exactly the expected text (its own
  content, not text seen anywhere: "Carol" typed over "Bob" must read "Carol", not "BobCarol");
- state: the target's own pixels (a check box's or radio's indicator) changed from what they
  were before the action, i.e. its mark was toggled;
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

import numpy as np

from producers.perception.types import Box, intersects, iou

#: kinds whose own text a typing step can be verified by
FIELD_KINDS = ("text_field", "combobox")
#: mean absolute difference (grey levels) above which an indicator counts as toggled
STATE_DIFF = 12.0


@dataclass
class Expectation:
    method: str  # none | field_text | state | text_seen | change_seen
    expected: str | None = None
    box: Box | None = None  # where to look (the target's box, screen coordinates)
    timeout_s: float = 3.0
    before: np.ndarray | None = None  # state: the target's grey pixels before the action


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


def crop(obs: Any, box: Box) -> np.ndarray:
    """The grey pixels of a screen box in an observation's raw frame."""
    import cv2

    ox, oy = getattr(obs, "offset", (0, 0))
    x, y, w, h = box
    frame = obs.frame
    gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return gray[max(0, y - oy):max(0, y - oy + h), max(0, x - ox):max(0, x - ox + w)]


#: a text cursor just after the last glyph reads as one of these
CURSOR_GLYPHS = "lI|1!i"


def same_text(observed: str, expected: str) -> bool:
    """The field reads exactly `expected`; a text cursor read as a trailing l, I or | after
    the last typed glyph is not part of the content."""
    got, want = _norm(observed), _norm(expected)
    if got == want:
        return True
    return (observed.rstrip()[-1:] in CURSOR_GLYPHS and _norm(observed.rstrip()[:-1]) == want
            and bool(want))


def field_text(obs: Any, box: Box) -> str | None:
    """The text of the element at the field's box (a detected field first; else whatever
    box was detected there, still the field's own pixels), or None when nothing is there."""
    near = [e for e in obs.elements if e.kind not in ("window", "text")
            and iou(e.box, box) >= 0.5]
    if not near:
        return None
    best = max(near, key=lambda e: (e.kind in FIELD_KINDS, iou(e.box, box)))
    return best.text or ""


def state_changed(obs: Any, box: Box, before: np.ndarray) -> tuple[bool, str]:
    after = crop(obs, box)
    if after.shape != before.shape or after.size == 0:
        return False, "target out of view"
    diff = float(np.abs(after.astype(np.int16) - before.astype(np.int16)).mean())
    return diff >= STATE_DIFF, f"indicator changed by {diff:.1f} grey levels"


def target_changed(obs: Any, box: Box) -> bool:
    return any(intersects(r, box) for r in obs.change.regions)


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
    changed = False  # field_text: the target itself changed on some later frame
    while True:
        obs = observe()
        if obs is not None:
            on_observation(obs)
            if expect.method == "field_text" and expect.box is not None:
                changed = changed or target_changed(obs, expect.box)
                text = field_text(obs, expect.box)
                observed = (f"target unchanged ({text!r})" if not changed
                            else "no field found at the target" if text is None else text)
                if changed and text is not None and same_text(text, expect.expected or ""):
                    return VerifyResult("field_text", expect.expected, text, True)
            elif expect.method == "state" and expect.box is not None:
                if expect.before is None:
                    raise ValueError("a state check needs the target's pixels before")
                ok, observed = state_changed(obs, expect.box, expect.before)
                if ok:
                    return VerifyResult("state", expect.expected, observed, True)
            elif expect.method == "change_seen":
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
            if observed is None and expect.method in ("field_text", "state"):
                observed = "target unchanged"
            return VerifyResult(expect.method, expect.expected, observed, False)
        time.sleep(interval)
