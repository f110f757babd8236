"""capture -> change -> detect -> OCR -> redact, with per-stage timings.

`Perception.observe()` returns None for an unchanged screen (nothing to send); the last
observation stays available for the planner. Only the redacted image ever leaves this module
in events: `Observation.image` (thumbnail and stored full image are made from it); the raw
frame is kept for local verification only.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from producers.perception.capture import ScreenCapture
from producers.perception.change import Change, ChangeDetector
from producers.perception.detect import DetectConfig, detect_elements
from producers.perception.ocr import TesseractOcr
from producers.perception.redact import Redaction, Redactor
from producers.perception.types import Element


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


@dataclass
class Observation:
    frame: np.ndarray
    image: np.ndarray
    change: Change
    elements: list[Element]
    redaction: Redaction
    timings: dict[str, float] = field(default_factory=dict)
    captured_ms: int = 0
    #: screen position of the frame's top-left pixel (a region capture's corner)
    offset: tuple[int, int] = (0, 0)

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]

    def frame_fields(self, app: str = "") -> dict[str, Any]:
        """ScreenFrame fields other than the envelope and the image parts."""
        w, h = self.size
        return {
            "app": app,
            "width": int(w),
            "height": int(h),
            "phash": self.change.phash or "",
            "change_ratio": float(self.change.ratio),
            "changed_regions": [
                {"x": int(x), "y": int(y), "w": int(bw), "h": int(bh)}
                for x, y, bw, bh in self.change.regions
            ],
            "redactions": len(self.redaction.boxes),
        }

    def detection_body(self, frame_id: str, app: str = "") -> dict[str, Any]:
        return {
            "app": app,
            "frame_id": frame_id,
            "elements": [e.to_record() for e in self.elements],
            "duration_ms": float(self.timings.get("detect_ms", 0.0)
                                 + self.timings.get("ocr_ms", 0.0)),
        }

    def texts(self) -> str:
        return " ".join(e.text for e in self.elements if e.text)

    def sees_text(self, text: str) -> bool:
        return _norm(text) in _norm(self.texts())

    def find(self, label: str, kinds: tuple[str, ...]) -> Element | None:
        """The element of one of `kinds` whose text (or label) best matches `label`."""
        want = _norm(label)
        best: tuple[float, Element] | None = None
        for e in self.elements:
            if e.kind not in kinds:
                continue
            for cand in (e.text, e.label):
                if not cand:
                    continue
                got = _norm(cand)
                if got == want:
                    score = 1.0
                elif want and want in got:
                    score = 0.8 * len(want) / max(len(got), 1) + 0.1
                else:
                    wa, wb = set(want.split()), set(got.split())
                    score = 0.5 * len(wa & wb) / max(len(wa), 1)
                if score > 0.3 and (best is None or score > best[0]):
                    best = (score, e)
        return best[1] if best else None


class Perception:
    def __init__(self, capture: ScreenCapture, *, ocr: TesseractOcr | None = None,
                 redactor: Redactor | None = None, detect_config: DetectConfig | None = None,
                 change: ChangeDetector | None = None) -> None:
        self.capture = capture
        self.change = change or ChangeDetector()
        self.ocr = ocr or TesseractOcr()
        self.redactor = redactor or Redactor()
        self.detect_config = detect_config or DetectConfig()
        self.last: Observation | None = None

    def observe(self, frame: np.ndarray | None = None) -> Observation | None:
        """Perceive one frame; None when nothing changed since the last observation."""
        t0 = time.perf_counter()
        captured_ms = time.time_ns() // 1_000_000
        if frame is None:
            frame = self.capture.grab()
        t1 = time.perf_counter()
        change = self.change.check(frame)
        t2 = time.perf_counter()
        timings = {"capture_ms": (t1 - t0) * 1e3, "change_ms": (t2 - t1) * 1e3}
        if not change.changed:
            timings["total_ms"] = (t2 - t0) * 1e3
            self.last_timings = timings
            return None
        elements = detect_elements(frame, self.detect_config)
        t3 = time.perf_counter()
        self.ocr.read_elements(frame, elements)
        t4 = time.perf_counter()
        redaction = self.redactor.apply(frame, elements)
        t5 = time.perf_counter()
        _to_screen(elements, change, self.capture.offset)
        timings.update(detect_ms=(t3 - t2) * 1e3, ocr_ms=(t4 - t3) * 1e3,
                       redact_ms=(t5 - t4) * 1e3, total_ms=(t5 - t0) * 1e3)
        self.last_timings = timings
        self.last = Observation(frame, redaction.image, change, elements, redaction, timings,
                                captured_ms, self.capture.offset)
        return self.last

    def refresh(self) -> Observation | None:
        """The current screen's observation, even when it has not changed."""
        obs = self.observe()
        return obs or self.last


def _to_screen(elements: list[Element], change: Change, offset: tuple[int, int]) -> None:
    """Frame coordinates -> screen coordinates when only a region was captured."""
    ox, oy = offset
    if (ox, oy) == (0, 0):
        return
    for e in elements:
        e.box = (e.box[0] + ox, e.box[1] + oy, e.box[2], e.box[3])
        for w in e.words:
            w.box = (w.box[0] + ox, w.box[1] + oy, w.box[2], w.box[3])
    change.regions = [(x + ox, y + oy, w, h) for x, y, w, h in change.regions]
