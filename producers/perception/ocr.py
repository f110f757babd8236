"""OCR with tesseract (pytesseract), on element crops rather than the whole screen.

Each tesseract call is a process start (~40 ms) plus recognition time that grows with pixels,
so the crops of one frame are packed into ONE mosaic image (stacked, padded, dark themes
inverted, upscaled for small UI fonts) and read with a single `image_to_data` call; word boxes
are mapped back to screen coordinates by the band each word falls in. Results are cached by
the CRC of the crop's pixels, so an element whose pixels did not change is never read twice:
only changed elements pay.

Backends: "capi" keeps one tesseract engine alive in-process through libtesseract's C API
(producers.perception.tesscapi) and saves the ~75 ms process start of every pytesseract call;
"pytesseract" runs the tesseract command. "auto" (default) takes capi when libtesseract loads.
Both run the same engine and model.
"""

from __future__ import annotations

import os
import zlib
from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np

from producers.perception.change import to_gray
from producers.perception.types import Box, Element, Word

# tesseract's OpenMP threads fight over the two cores the agent shares with the target app
os.environ.setdefault("OMP_THREAD_LIMIT", "1")


#: kinds whose text is read: captions, field contents, labels
READ = ("button", "text_field", "text", "other", "combobox", "tab", "menu_item", "link")
#: kinds read inside their border (relief lines read as '|' and '_')
INSET = ("button", "text_field", "combobox", "tab")


@dataclass
class OcrConfig:
    scale: float = 1.5
    pad: int = 3
    gap: int = 14  # blank rows between crops in the mosaic (before scaling)
    psm: int = 6
    lang: str = "eng"
    min_confidence: float = 30.0
    cache_size: int = 2048
    backend: str = "auto"  # auto | capi | pytesseract


def _inside_border(gray: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> tuple[
        int, int, int, int]:
    """Shrink an inset crop past border lines still inside it (a focus ring, a thick or
    doubled border): an edge row or column that is mostly ink reads as '|' or '_' and can
    throw tesseract off the whole line."""
    c = gray[y0:y1, x0:x1].astype(np.int16)
    if c.shape[0] < 6 or c.shape[1] < 6:
        return x0, y0, x1, y1
    bg = int(np.median(c))
    ink = np.abs(c - bg) > 40
    top, bottom, left, right = 0, ink.shape[0], 0, ink.shape[1]
    for _ in range(4):
        if bottom - top > 6 and ink[top, left:right].mean() > 0.6:
            top += 1
        if bottom - top > 6 and ink[bottom - 1, left:right].mean() > 0.6:
            bottom -= 1
        if right - left > 6 and ink[top:bottom, left].mean() > 0.6:
            left += 1
        if right - left > 6 and ink[top:bottom, right - 1].mean() > 0.6:
            right -= 1
    return x0 + left, y0 + top, x0 + right, y0 + bottom


class TesseractOcr:
    """Reads many crops per tesseract call; caches by crop content."""

    def __init__(self, cfg: OcrConfig | None = None) -> None:
        import pytesseract  # noqa: F401  (fail early when missing)

        self.cfg = cfg or OcrConfig()
        self._capi = None
        self.backend = "pytesseract"
        if self.cfg.backend in ("auto", "capi"):
            try:
                from producers.perception.tesscapi import CapiTesseract

                self._capi = CapiTesseract(self.cfg.lang, self.cfg.psm)
                self.backend = "capi"
            except OSError:
                if self.cfg.backend == "capi":
                    raise
        self._cache: OrderedDict[tuple[int, int, int], list[Word]] = OrderedDict()
        self.calls = 0
        self.cache_hits = 0

    # -- public ----------------------------------------------------------------------------
    def read_boxes(self, frame: np.ndarray, boxes: list[Box],
                   pads: list[int] | None = None) -> list[list[Word]]:
        """Words (screen coordinates) found in each box; a negative pad insets the crop."""
        gray = to_gray(frame)
        H, W = gray.shape
        results: list[list[Word] | None] = [None] * len(boxes)
        todo: list[tuple[int, Box, np.ndarray, tuple[int, int, int]]] = []
        for i, (x, y, w, h) in enumerate(boxes):
            p = self.cfg.pad if pads is None else pads[i]
            x0, y0 = max(0, x - p), max(0, y - p)
            x1, y1 = min(W, x + w + p), min(H, y + h + p)
            if p < 0:
                x0, y0, x1, y1 = _inside_border(gray, x0, y0, x1, y1)
            crop = np.ascontiguousarray(gray[y0:y1, x0:x1])
            if crop.size == 0:
                results[i] = []
                continue
            key = (zlib.crc32(crop.data), crop.shape[0], crop.shape[1])
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                self.cache_hits += 1
                results[i] = [Word(w_.text, (w_.box[0] + x0, w_.box[1] + y0, *w_.box[2:]),
                                   w_.confidence) for w_ in cached]
            else:
                todo.append((i, (x0, y0, x1 - x0, y1 - y0), crop, key))
        if todo:
            rel = self._read_mosaic([c for _, _, c, _ in todo])
            for (i, (x0, y0, _, _), _crop, key), words in zip(todo, rel, strict=True):
                self._cache[key] = words
                if len(self._cache) > self.cfg.cache_size:
                    self._cache.popitem(last=False)
                results[i] = [Word(w_.text, (w_.box[0] + x0, w_.box[1] + y0, *w_.box[2:]),
                                   w_.confidence) for w_ in words]
        return [r or [] for r in results]

    def read_elements(self, frame: np.ndarray, elements: list[Element]) -> None:
        """Attach OCR words/text to elements that can carry text (not windows/checkboxes)."""
        targets = [e for e in elements if e.kind in READ]
        # boxes are read inside their border (relief lines read as '|' and '_'), text with a margin
        pads = [-3 if e.kind in INSET else self.cfg.pad for e in targets]
        # a check box's or radio's label is read from its own box: the line detection found
        # may have been cut or merged differently in the element list
        labelled = [e for e in elements if e.kind in ("checkbox", "radio") and e.label_box]
        label_boxes: list[Box] = [e.label_box for e in labelled if e.label_box]
        found = self.read_boxes(frame, [e.box for e in targets] + label_boxes,
                                pads + [1] * len(labelled))  # the indicator is just left
        words = found[:len(targets)]
        for cb, ws in zip(labelled, found[len(targets):], strict=True):
            if ws:
                cb.label = cb.text = " ".join(w.text for w in ws)
                cb.ocr_confidence = float(sum(w.confidence for w in ws) / len(ws))
        for e, ws in zip(targets, words, strict=True):
            e.words = ws
            if ws:
                e.text = " ".join(w.text for w in ws)
                e.ocr_confidence = float(sum(w.confidence for w in ws) / len(ws))
                e.source = "opencv+ocr"
            else:
                e.text, e.ocr_confidence = None, None

    # -- internals -------------------------------------------------------------------------
    def _read_mosaic(self, crops: list[np.ndarray]) -> list[list[Word]]:
        import pytesseract

        s, gap = self.cfg.scale, self.cfg.gap
        prepared = []
        for c in crops:
            if float(c.std()) < 4:  # one flat colour: nothing to read (an empty field)
                c = np.full((min(c.shape[0], 8), min(c.shape[1], 8)), 255, np.uint8)
            else:
                if float(c.mean()) < 110:  # light text on a dark background
                    c = 255 - c
                # full contrast per crop: the mosaic is binarised as one page, and grey crops
                # (inverted dark fields, tinted buttons) would fall on the wrong side of it
                c = cv2.normalize(c, None, 0, 255, cv2.NORM_MINMAX)
            if s != 1.0:
                c = cv2.resize(c, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
            prepared.append(c)
        g = int(gap * s)
        width = max(c.shape[1] for c in prepared) + 2 * g
        height = sum(c.shape[0] for c in prepared) + g * (len(prepared) + 1)
        canvas = np.full((height, width), 255, np.uint8)
        bands: list[tuple[int, int]] = []
        y = g
        for c in prepared:
            canvas[y:y + c.shape[0], g:g + c.shape[1]] = c
            bands.append((y, y + c.shape[0]))
            y += c.shape[0] + g
        self.calls += 1
        if self._capi is not None:
            rows = [(r.text, r.conf, r.left, r.top, r.width, r.height)
                    for r in self._capi.words(canvas)]
        else:
            data = pytesseract.image_to_data(
                canvas, lang=self.cfg.lang, config=f"--psm {self.cfg.psm}",
                output_type=pytesseract.Output.DICT)
            rows = list(zip(data["text"], data["conf"], data["left"], data["top"],
                            data["width"], data["height"], strict=True))
        out: list[list[Word]] = [[] for _ in crops]
        for text, conf, left, top, w, h in rows:
            # a text cursor or a border reads as '|': never part of a word
            text = (text or "").strip().strip("|").strip()
            conf = float(conf)
            if not text or conf < self.cfg.min_confidence:
                continue
            cy = top + h / 2
            for j, (b0, b1) in enumerate(bands):
                if b0 - g / 2 <= cy < b1 + g / 2:
                    box = (round((left - g) / s), round((top - b0) / s),
                           max(1, round(w / s)), max(1, round(h / s)))
                    out[j].append(Word(text, box, conf))
                    break
        for ws in out:
            ws.sort(key=lambda w_: (w_.box[1] // 8, w_.box[0]))
        return out
