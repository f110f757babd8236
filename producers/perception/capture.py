"""Screen capture from the X server (the only X11 I/O of perception).

Pillow's `ImageGrab.grab(xdisplay=...)` talks to the X server directly over XCB and was ~5x
faster than pyautogui (which shells out to scrot); pyautogui stays as the fallback.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import numpy as np

from producers.perception.types import Box


def parse_region(text: str | None) -> Box | None:
    """'x,y,w,h' -> box; empty -> whole screen."""
    if not text:
        return None
    parts = [int(p) for p in text.replace(" ", "").split(",")]
    if len(parts) != 4 or parts[2] <= 0 or parts[3] <= 0:
        raise ValueError(f"region must be x,y,w,h with w,h > 0, got {text!r}")
    return (parts[0], parts[1], parts[2], parts[3])


class ScreenCapture:
    """Grabs RGB frames of the screen (or a region of it), paced to at most `fps`."""

    def __init__(self, display: str | None = None, region: Box | None = None,
                 fps: float = 4.0) -> None:
        self.display = display or os.environ.get("DISPLAY")
        self.region = region
        self.fps = fps
        self._last = 0.0
        self.backend = "pillow"

    @property
    def offset(self) -> tuple[int, int]:
        return (self.region[0], self.region[1]) if self.region else (0, 0)

    def grab(self) -> np.ndarray:
        """One frame as a contiguous HxWx3 uint8 RGB array."""
        bbox = None
        if self.region:
            x, y, w, h = self.region
            bbox = (x, y, x + w, y + h)
        if self.backend == "pillow":
            try:
                from PIL import ImageGrab

                img = ImageGrab.grab(bbox=bbox, xdisplay=self.display)
                return np.asarray(img.convert("RGB"))
            except OSError:
                self.backend = "pyautogui"
        import pyautogui

        img = pyautogui.screenshot(region=self.region)
        return np.asarray(img.convert("RGB"))

    def wait_turn(self) -> None:
        """Sleep so frames come at most `fps` per second."""
        if self.fps <= 0:
            return
        gap = 1.0 / self.fps - (time.monotonic() - self._last)
        if gap > 0:
            time.sleep(gap)
        self._last = time.monotonic()

    def frames(self) -> Iterator[np.ndarray]:
        while True:
            self.wait_turn()
            yield self.grab()
