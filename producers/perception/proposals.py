"""Candidate boxes for the learned classifier: every place a widget could be.

Why several sources: no single cue finds every widget. Bordered widgets are closed rings in the
edge map (outer contours, and the holes inside them when a focus ring surrounds the widget);
faint borders on dark pages only show at a low edge threshold; flat, borderless buttons and
fields are regions of one colour; menu items and links are words, and a menu item's box is
the cell of free space around its word; a tab is the whole cell around its caption (a
selected tab's cell is open below); a classic scale is its trough with the value printed
above it. Each box records which sources proposed it (a bit
mask), which the classifier uses as a cue. Recall matters here, precision is the
classifier's job.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from producers.perception.types import Box

SOURCES = ("edge_hi", "edge_lo", "hole_hi", "hole_lo", "flat", "word", "line", "cell",
           "classic", "line_cell", "open_cell", "with_above")
BIT = {s: 1 << i for i, s in enumerate(SOURCES)}
LOW_EDGE = 6  # faint borders: a dark field on a dark page differs by ~10 grey levels
MIN_SIDE = 6
MAX_W, MAX_H = 900, 320


@dataclass
class Maps:
    """Per-frame images shared by proposals and features."""

    gray: np.ndarray
    grad: np.ndarray  # 3x3 morphological gradient, max over colour channels
    edges_hi: np.ndarray  # bool: grad > the classical threshold
    edges_lo: np.ndarray  # bool: grad > LOW_EDGE
    glyphs: np.ndarray  # uint8 0/255: small filled blobs (text) from the classical pass
    sat: np.ndarray  # colour saturation (max - min channel)
    blue_table: np.ndarray  # summed-area table of 128 + (blue - red) / 2 at glyph pixels, else 0
    lo_table: np.ndarray  # summed-area table of edges_lo


def make_maps(frame: np.ndarray, gray: np.ndarray, glyphs: np.ndarray, hi: int) -> Maps:
    k = np.ones((3, 3), np.uint8)
    if frame.ndim == 3:
        r, g, b = cv2.split(np.ascontiguousarray(frame))
        grad = cv2.max(cv2.max(cv2.morphologyEx(r, cv2.MORPH_GRADIENT, k),
                               cv2.morphologyEx(g, cv2.MORPH_GRADIENT, k)),
                       cv2.morphologyEx(b, cv2.MORPH_GRADIENT, k))
        sat = cv2.subtract(cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b))
        blue = cv2.bitwise_and(cv2.addWeighted(b, 0.5, r, -0.5, 128), glyphs)
    else:
        grad = cv2.morphologyEx(gray, cv2.MORPH_GRADIENT, k)
        sat = np.zeros_like(gray)
        blue = cv2.bitwise_and(np.full_like(gray, 128), glyphs)
    edges_hi, edges_lo = grad > hi, grad > LOW_EDGE
    return Maps(gray, grad, edges_hi, edges_lo, glyphs, sat,
                cv2.integral(blue, sdepth=cv2.CV_32S),
                cv2.integral(edges_lo.view(np.uint8), sdepth=cv2.CV_32S))


def _contour_boxes(edges: np.ndarray, outer: int, hole: int, out: dict[Box, int]) -> None:
    contours, hierarchy = cv2.findContours(edges.astype(np.uint8), cv2.RETR_CCOMP,
                                           cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return
    for i, c in enumerate(contours):
        x, y, w, h = cv2.boundingRect(c)
        if MIN_SIDE <= w <= MAX_W and MIN_SIDE <= h <= MAX_H:
            if hierarchy[0][i][3] == -1:
                _add(out, (x, y, w, h), outer)
            elif w >= 8 and h >= 8:  # a hole: the widget inside a focus ring or frame
                _add(out, (x - 1, y - 1, w + 2, h + 2), hole)


def _add(out: dict[Box, int], box: Box, bit: int) -> None:
    out[box] = out.get(box, 0) | bit


def _flat_boxes(grad: np.ndarray, out: dict[Box, int]) -> None:
    """Regions of one colour (a borderless button's fill, a field's well)."""
    _n, _lab, stats, _ = cv2.connectedComponentsWithStats((grad <= 3).astype(np.uint8),
                                                         connectivity=4)
    for x, y, w, h, area in stats[1:]:
        if 8 <= w <= MAX_W and 8 <= h <= MAX_H and area >= 40:
            _add(out, (int(x) - 1, int(y) - 1, int(w) + 2, int(h) + 2), BIT["flat"])


def text_height(lines: list[Box]) -> float:
    """The screen's median text-line height: the unit of size (font size times scaling)."""
    hs = [h for _x, _y, _w, h in lines if 6 <= h <= 48]
    return float(np.median(hs)) if hs else 14.0


def text_lines(glyphs: np.ndarray, join: int = 9) -> list[Box]:
    closed = cv2.morphologyEx(glyphs, cv2.MORPH_CLOSE,
                              cv2.getStructuringElement(cv2.MORPH_RECT, (join, 1)))
    _n, _lab, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    parts = sorted((int(x), int(y), int(w), int(h)) for x, y, w, h, a in stats[1:]
                   if 5 <= h <= 48 and w >= 3 and a >= 12)
    return _join_words(parts)


def _join_words(parts: list[Box]) -> list[Box]:
    """Join pieces of one row whose gap is below 0.6 of their height: large or scaled fonts
    space words wider than the fixed closing joins (a label 'Auto save' is one line)."""
    lines: list[list[int]] = []
    for x, y, w, h in parts:  # sorted by x
        for ln in lines:
            lx, ly, lw, lh = ln
            hh = max(h, lh)
            if (0 <= x - (lx + lw) <= 0.6 * min(h, lh) + 1
                    and abs((y + h / 2) - (ly + lh / 2)) <= 0.3 * hh and min(h, lh) >= 0.5 * hh):
                x1, y1 = max(lx + lw, x + w), max(ly + lh, y + h)
                ln[0], ln[1] = lx, min(ly, y)
                ln[2], ln[3] = x1 - lx, y1 - ln[1]
                break
        else:
            lines.append([x, y, w, h])
    return [(a, b, c, d) for a, b, c, d in lines]


def words_of(glyphs: np.ndarray, line: Box) -> list[Box]:
    """Split a line at blank column runs wider than a third of its height."""
    x, y, w, h = line
    cols = np.asarray(glyphs[y:y + h, x:x + w].any(axis=0), bool)
    gap = max(4, h // 3)
    words: list[tuple[int, int]] = []  # column spans
    start, blank = None, 0
    for i, ink in enumerate(cols):
        if ink:
            if start is None:
                start = i
            blank = 0
        elif start is not None:
            blank += 1
            if blank >= gap:
                words.append((start, i - blank + 1))
                start, blank = None, 0
    if start is not None:
        words.append((start, len(cols) - blank))
    out: list[Box] = []
    for a, b in words:
        rows = np.flatnonzero(glyphs[y:y + h, x + a:x + b].any(axis=1))
        if rows.size:
            out.append((x + a, y + int(rows[0]), b - a, int(rows[-1] - rows[0] + 1)))
    return out


def _free(table: np.ndarray, boxes: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """Blank columns/rows around each box before the next edge, up to its cap: an (n, 4)
    array of (left, up, right, down), from the edge map's summed-area table `table`."""
    H, W = table.shape[0] - 1, table.shape[1] - 1
    x, y, w, h = (boxes[:, i:i + 1] for i in range(4))
    d = np.arange(1, int(caps.max()) + 1)[None, :]

    def blank(x0, y0, x1, y1, inside):
        x0, x1 = np.clip(x0, 0, W), np.clip(x1, 0, W)
        y0, y1 = np.clip(y0, 0, H), np.clip(y1, 0, H)
        ink = table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]
        ok = (ink == 0) & inside & (d <= caps[:, None])
        return np.cumprod(ok, axis=1).sum(axis=1)  # leading blank lines

    ys, ye, xs, xe = (np.broadcast_to(v, (len(boxes), d.shape[1])) for v in (y, y + h, x, x + w))
    return np.stack([blank(x - d, ys, x - d + 1, ye, x - d >= 0),
                     blank(xs, y - d, xe, y - d + 1, y - d >= 0),
                     blank(x + w + d - 1, ys, x + w + d, ye, x + w + d - 1 < W),
                     blank(xs, y + h + d - 1, xe, y + h + d, y + h + d - 1 < H)], axis=1)


def _cells(table: np.ndarray, texts: list[Box], words: int, out: dict[Box, int]) -> None:
    """The cells around words (the first `words` of `texts`) and text lines. A word's cell:
    the free band above and below it, half the free space to each side (neighbouring menu
    items share the gap between them). The whole cell, up to the next edge on each side (a
    tab's caption inside its tab), and the same cell closed below as far as it is open
    above: a notebook's selected tab has no bottom border, it opens into its page."""
    if not texts:
        return
    T = np.asarray(texts, np.int64)
    caps = np.maximum(6, (1.5 * T[:, 3]).astype(np.int64))
    free = _free(table, T, caps)
    for i, ((x, y, w, h), (left, up, right, down), cap) in enumerate(
            zip(T.tolist(), free.tolist(), caps.tolist(), strict=True)):
        if i < words:
            small = max(4, h)
            hl, hr = (min(left, small) + 1) // 2, (min(right, small) + 1) // 2
            su, sd = min(up, small), min(down, small)
            _add(out, (x - hl, y - su, w + hl + hr, h + su + sd), BIT["cell"])
        if max(left, right, up) >= cap:
            continue  # no frame around the text
        x0, x1 = x - left - 1, x + w + right + 1
        _add(out, (x0, y - up - 1, x1 - x0, h + up + down + 2), BIT["line_cell"])
        if down > up + 2:
            _add(out, (x0, y - up - 1, x1 - x0, h + 2 * up + 2), BIT["open_cell"])


def _with_text_above(rings: list[Box], lines: list[Box], out: dict[Box, int]) -> None:
    """A wide, low ring together with the text line right above it and inside its width: a
    classic scale's trough and the value printed over it are one widget."""
    R = np.asarray([b for b in rings if b[2] >= 3 * b[3] and b[3] <= 40], np.int64).reshape(-1, 4)
    L = np.asarray(lines, np.int64).reshape(-1, 4)
    if not len(R) or not len(L):
        return
    bx, by, bw, bh = (R[:, i:i + 1] for i in range(4))
    lx, ly, lw, lh = (L[None, :, i] for i in range(4))
    gap = by - (ly + lh)
    ok = ((lx >= bx - 2) & (lx + lw <= bx + bw + 2) & (gap >= 0) & (gap <= 0.6 * lh + 4)
          & (lh <= 2.5 * bh))
    for i, j in zip(*np.nonzero(ok), strict=True):
        x, y, w, h = (int(v) for v in R[i])
        top = int(L[j, 1]) - 2
        _add(out, (x - 1, top, w + 2, y + h + 1 - top), BIT["with_above"])


def propose(maps: Maps, classic: list[Box]) -> tuple[
        list[Box], np.ndarray, list[Box]]:
    """(boxes, source bit masks, text lines) of one frame."""
    out: dict[Box, int] = {}
    _contour_boxes(maps.edges_hi, BIT["edge_hi"], BIT["hole_hi"], out)
    _contour_boxes(maps.edges_lo, BIT["edge_lo"], BIT["hole_lo"], out)
    _flat_boxes(maps.grad, out)
    lines = text_lines(maps.glyphs)
    rings = [b for b, m in out.items() if m & (BIT["edge_hi"] | BIT["edge_lo"])]
    _with_text_above(rings, lines, out)
    words = []
    for ln in lines:
        _add(out, ln, BIT["line"])
        for wd in words_of(maps.glyphs, ln):
            _add(out, wd, BIT["word"])
            words.append(wd)
    # a caption whose glyphs ran together is a ring, not a line: its cell too
    th = text_height(lines)
    texty = [b for b in rings if 0.6 * th <= b[3] <= 2 * th and 1.5 * b[3] <= b[2] <= 20 * th]
    _cells(maps.lo_table, words + lines + texty, len(words), out)
    for b in classic:
        _add(out, b, BIT["classic"])
    H, W = maps.gray.shape
    boxes, bits = [], []
    for (x, y, w, h), m in out.items():
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(W, x + w), min(H, y + h)
        if x1 - x0 >= 3 and y1 - y0 >= 3:
            boxes.append((x0, y0, x1 - x0, y1 - y0))
            bits.append(m)
    return boxes, np.asarray(bits, np.int32), lines
