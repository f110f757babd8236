"""Change detection: is this frame worth sending, and which regions changed?

The unchanged case is the common one (an agent idles, waits for a page), so it must cost next
to nothing: a CRC-32 over the raw pixels (no copy; zlib runs at several GB/s) answers "same
screen" in well under a millisecond at 1280x800. Only a frame whose CRC differs pays for the
grayscale absdiff -> threshold -> dilate -> contours -> merged boxes. Small noise (a pixel or
two that differ by a few levels) stays below the threshold or `min_area` and counts as
unchanged, in which case the reference frame is kept so slow drift still accumulates.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import cv2
import numpy as np

from producers.perception.types import Box, merge_boxes


def to_gray(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return frame
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def dhash(gray: np.ndarray, size: int = 8) -> str:
    """Difference hash: 64 bits of 'is the pixel brighter than its right neighbour'."""
    small = cv2.resize(gray, (size + 1, size), interpolation=cv2.INTER_AREA)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return f"{int(''.join('1' if b else '0' for b in bits), 2):0{size * size // 4}x}"


def phash(gray: np.ndarray, size: int = 8) -> str:
    """DCT perceptual hash: low frequencies above their median."""
    small = cv2.resize(gray, (size * 4, size * 4), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:size, :size].flatten()
    med = np.median(low[1:])
    bits = low > med
    return f"{int(''.join('1' if b else '0' for b in bits), 2):0{size * size // 4}x}"


def hamming(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


@dataclass
class Change:
    changed: bool
    ratio: float = 0.0
    regions: list[Box] = field(default_factory=list)
    phash: str | None = None
    first: bool = False


class ChangeDetector:
    """Compares each frame with the last one that counted as changed."""

    def __init__(self, threshold: int = 16, min_area: int = 12, dilate: int = 5,
                 merge_pad: int = 6) -> None:
        self.threshold = threshold
        self.min_area = min_area
        self.kernel = np.ones((dilate, dilate), np.uint8)
        self.merge_pad = merge_pad
        self._crc: int | None = None
        self._shape: tuple[int, ...] | None = None
        self._gray: np.ndarray | None = None

    def reset(self) -> None:
        self._crc = self._shape = self._gray = None

    def check(self, frame: np.ndarray) -> Change:
        frame = np.ascontiguousarray(frame)
        crc = zlib.crc32(frame.data)  # (contiguous: the same bytes as the array)
        if self._crc is not None and crc == self._crc and frame.shape == self._shape:
            return Change(changed=False)
        gray = to_gray(frame)
        h, w = gray.shape
        if self._gray is None or self._gray.shape != gray.shape:
            self._remember(crc, frame.shape, gray)
            return Change(True, 1.0, [(0, 0, w, h)], dhash(gray), first=True)
        diff = cv2.absdiff(gray, self._gray)
        _, mask = cv2.threshold(diff, self.threshold, 255, cv2.THRESH_BINARY)
        changed_px = cv2.countNonZero(mask)
        if changed_px == 0:
            return Change(changed=False)
        mask = cv2.dilate(mask, self.kernel)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes = [(x, y, w, h) for x, y, w, h in map(cv2.boundingRect, contours)
                 if w * h >= self.min_area]
        if not boxes:
            return Change(changed=False)
        regions = sorted(merge_boxes(boxes, self.merge_pad), key=lambda b: (b[1], b[0]))
        self._remember(crc, frame.shape, gray)
        return Change(True, changed_px / float(h * w), regions, dhash(gray))

    def _remember(self, crc: int, shape: tuple[int, ...], gray: np.ndarray) -> None:
        self._crc, self._shape, self._gray = crc, shape, gray
