"""One feature row per proposal, computed for all proposals at once from integral images.

Why integral images: a frame has a few hundred proposals and the changed-frame budget is
150 ms; every feature here is a sum over a rectangle (inside, a border band, a ring outside,
a cell of a coarse grid), so each costs four look-ups per box, vectorised over the boxes.
Sizes are measured in units of the screen's median text height, so a widget at scaling 2
looks like the same widget at scaling 1.

The features: geometry; which sources proposed the box; what the classical detector called
it (one detector voting in the learned one); grey levels and saturation inside, on the border
and just outside (a field's well, a button's fill, a link's colour); relief (top/left vs
bottom/right); edge density per side (a closed ring, an underline), inside, outside, in the
corners (round vs square) and over a 4x3 grid (a drop-down arrow at the right, a slider's
handle); where the glyphs sit (centred caption vs text from the left); the text to its right
(an indicator's label) and to its left; nesting among proposals; the colour of the glyphs
(a link's); the right end in pixels, inside and just outside (a combo box's arrow button,
a spin box's pair of arrows); a base line running on beyond the box and rings touching it
side by side (a notebook's tabs).
"""

from __future__ import annotations

import cv2
import numpy as np

from producers.perception.proposals import BIT, SOURCES, Maps, text_height
from producers.perception.types import Box, Element

CLASSICAL_KINDS = ("button", "text_field", "checkbox", "radio", "text", "window", "other",
                   "icon")
GRID = (4, 3)  # columns x rows of the coarse edge grid


class _Integral:
    """Rectangle sums over one image, vectorised over boxes (coordinates clipped)."""

    def __init__(self, img: np.ndarray | None = None, table: np.ndarray | None = None) -> None:
        """From a uint8 image (cv2.integral, int32) or a ready summed-area table."""
        if table is None:
            assert img is not None, "an image or a table"
            table = cv2.integral(img, sdepth=cv2.CV_32S)
        self.s = table
        self.H, self.W = self.s.shape[0] - 1, self.s.shape[1] - 1

    def sum(self, x0: np.ndarray, y0: np.ndarray, x1: np.ndarray,
            y1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(sum, pixel count) over [x0, x1) x [y0, y1)."""
        x0 = np.clip(x0, 0, self.W).astype(np.int64)
        x1 = np.clip(x1, 0, self.W).astype(np.int64)
        y0 = np.clip(y0, 0, self.H).astype(np.int64)
        y1 = np.clip(y1, 0, self.H).astype(np.int64)
        x1, y1 = np.maximum(x1, x0), np.maximum(y1, y0)
        s = self.s
        return ((s[y1, x1] - s[y0, x1] - s[y1, x0] + s[y0, x0]).astype(np.float64),
                ((x1 - x0) * (y1 - y0)).astype(np.float64))

    def mean(self, x0, y0, x1, y1) -> np.ndarray:
        total, n = self.sum(x0, y0, x1, y1)
        return total / np.maximum(n, 1)

    def ring_mean(self, x0, y0, x1, y1, t) -> np.ndarray:
        """Mean over the band of width t just outside [x0, x1) x [y0, y1)."""
        a, na = self.sum(x0 - t, y0 - t, x1 + t, y1 + t)
        b, nb = self.sum(x0, y0, x1, y1)
        return (a - b) / np.maximum(na - nb, 1)


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ax0, ay0, ax1, ay1 = a[:, 0:1], a[:, 1:2], a[:, 0:1] + a[:, 2:3], a[:, 1:2] + a[:, 3:4]
    bx0, by0, bx1, by1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None)
    ih = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    inter = iw * ih
    union = a[:, 2:3] * a[:, 3:4] + b[:, 2] * b[:, 3] - inter
    return inter / np.maximum(union, 1)


def _contains(a: np.ndarray, b: np.ndarray, slack: int = 1) -> np.ndarray:
    """m[i, j]: box a[i] contains box b[j]."""
    return ((b[None, :, 0] >= a[:, None, 0] - slack) & (b[None, :, 1] >= a[:, None, 1] - slack)
            & (b[None, :, 0] + b[None, :, 2] <= a[:, None, 0] + a[:, None, 2] + slack)
            & (b[None, :, 1] + b[None, :, 3] <= a[:, None, 1] + a[:, None, 3] + slack))


def _neighbour_text(boxes: np.ndarray, lines: np.ndarray, th: float) -> np.ndarray:
    """Gap to the nearest text line right of each box on its row, that line's width, and
    the gap to the nearest line left of it (all in text heights, capped at 8)."""
    out = np.full((len(boxes), 3), 8.0)
    out[:, 1] = 0.0
    if len(lines) == 0 or len(boxes) == 0:
        return out
    cy = boxes[:, 1] + boxes[:, 3] / 2
    lcy = lines[:, 1] + lines[:, 3] / 2
    same = np.abs(cy[:, None] - lcy[None, :]) <= np.maximum(boxes[:, 3:4], lines[None, :, 3]) / 2
    bx1 = boxes[:, 0:1] + boxes[:, 2:3]
    lx1 = lines[None, :, 0] + lines[None, :, 2]
    # a line running over the box (an indicator whose ring joined its label) counts from
    # the box's right edge
    right_gap = np.maximum(lines[None, :, 0] - bx1, 0)
    left_gap = boxes[:, 0:1] - lx1
    rg = np.where(same & (lx1 > bx1 + 2) & (lines[None, :, 0] >= boxes[:, 0:1] - 1)
                  | same & (lines[None, :, 0] >= bx1 - 1), right_gap, np.inf)
    lg = np.where(same & (left_gap >= -1), left_gap, np.inf)
    j = rg.argmin(axis=1)
    best = rg[np.arange(len(boxes)), j]
    has = np.isfinite(best)
    out[has, 0] = np.minimum(best[has] / th, 8.0)
    out[has, 1] = (lx1[0, j[has]] - np.maximum(bx1[has, 0], lines[j[has], 0])) / th
    lbest = lg.min(axis=1)
    out[np.isfinite(lbest), 2] = np.minimum(lbest[np.isfinite(lbest)] / th, 8.0)
    return out


def feature_names() -> list[str]:
    names = ["w_th", "h_th", "log_aspect", "w", "h", "x_rel", "y_rel", "th"]
    names += [f"src_{s}" for s in SOURCES]
    names += [f"classic_{k}" for k in CLASSICAL_KINDS] + ["classic_iou"]
    names += ["in_mean", "in_std", "border_mean", "out_mean", "out_std", "in_minus_out",
              "border_minus_out", "border_minus_in", "relief_tb", "relief_lr",
              "sat_in", "sat_border", "sat_out"]
    names += ["e_in", "e_top", "e_bottom", "e_left", "e_right", "e_out", "elo_in", "elo_sides",
              "elo_out", "e_corners", "e_mids", "e_underline"]
    names += [f"grid_{c}_{r}" for r in range(GRID[1]) for c in range(GRID[0])]
    names += ["g_in", "g_left", "g_mid", "g_right", "g_rsquare", "e_rsquare", "g_rows"]
    names += ["right_gap", "right_w", "left_gap"]
    names += ["n_containers", "n_contained", "in_classic_box"]
    names += ["ink_sat", "ink_blue"]
    names += ["z_ink", "z_top", "z_mid", "z_bot", "z_narrow", "z_gap", "z_glyph", "z_divider",
              "z_divider_at", "zo_ink", "zo_glyph", "zo_far"]
    names += ["base_out", "adj_n", "adj_top", "adj_bottom", "base_line"]
    return names


def features(maps: Maps, boxes: list[Box], bits: np.ndarray, lines: list[Box],
             classic: list[Element]) -> np.ndarray:
    """The feature matrix (n_boxes x len(feature_names())), float32."""
    n = len(boxes)
    if n == 0:
        return np.zeros((0, len(feature_names())), np.float32)
    B = np.asarray(boxes, np.float64)
    x, y, w, h = B[:, 0], B[:, 1], B[:, 2], B[:, 3]
    x1, y1 = x + w, y + h
    H, W = maps.gray.shape
    th = text_height(lines)
    cols: list[np.ndarray] = [w / th, h / th, np.log(w / np.maximum(h, 1)), w, h, x / W, y / H,
                              np.full(n, th)]
    cols += [((bits >> i) & 1).astype(np.float64) for i in range(len(SOURCES))]
    # the classical detector's vote
    cb = np.asarray([e.box for e in classic], np.float64).reshape(-1, 4)
    m = _iou_matrix(B, cb)
    best = m.argmax(axis=1) if len(cb) else np.zeros(n, int)
    biou = m.max(axis=1) if len(cb) else np.zeros(n)
    ckind = np.asarray([CLASSICAL_KINDS.index(e.kind) if e.kind in CLASSICAL_KINDS else 6
                        for e in classic] or [0])
    for i in range(len(CLASSICAL_KINDS)):
        cols.append(((biou >= 0.6) & (ckind[best] == i)).astype(np.float64))
    cols.append(biou)
    # grey levels
    gsum, gsq = cv2.integral2(maps.gray, sdepth=cv2.CV_32S, sqdepth=cv2.CV_64F)
    g, g2 = _Integral(table=gsum), _Integral(table=gsq)
    sat = _Integral(maps.sat)
    inset = np.clip(np.minimum(w, h) // 6, 1, 4)
    ix0, iy0, ix1, iy1 = x + inset, y + inset, x1 - inset, y1 - inset
    in_mean = g.mean(ix0, iy0, ix1, iy1)
    in_std = np.sqrt(np.maximum(g2.mean(ix0, iy0, ix1, iy1) - in_mean ** 2, 0))
    tot, cnt = g.sum(x, y, x1, y1)
    itot, icnt = g.sum(ix0, iy0, ix1, iy1)
    border = (tot - itot) / np.maximum(cnt - icnt, 1)
    out_mean = g.ring_mean(x, y, x1, y1, 3)
    out_sq = g2.ring_mean(x, y, x1, y1, 3)
    out_std = np.sqrt(np.maximum(out_sq - out_mean ** 2, 0))
    t2 = np.minimum(2, np.maximum(1, h // 4))
    top = g.mean(x + 2, y, x1 - 2, y + t2)
    bottom = g.mean(x + 2, y1 - t2, x1 - 2, y1)
    left = g.mean(x, y + 2, x + t2, y1 - 2)
    right = g.mean(x1 - t2, y + 2, x1, y1 - 2)
    stot, _ = sat.sum(x, y, x1, y1)
    sitot, _ = sat.sum(ix0, iy0, ix1, iy1)
    cols += [in_mean, in_std, border, out_mean, out_std, in_mean - out_mean, border - out_mean,
             border - in_mean, top - bottom, left - right, sat.mean(ix0, iy0, ix1, iy1),
             (stot - sitot) / np.maximum(cnt - icnt, 1), sat.ring_mean(x, y, x1, y1, 3)]
    # edges
    e = _Integral(maps.edges_hi.view(np.uint8))
    lo = _Integral(table=maps.lo_table)
    band = 3
    e_top = e.mean(x, y, x1, y + band)
    e_bottom = e.mean(x, y1 - band, x1, y1)
    e_left = e.mean(x, y, x + band, y1)
    e_right = e.mean(x1 - band, y, x1, y1)
    lo_sides = np.minimum.reduce([lo.mean(x, y, x1, y + band), lo.mean(x, y1 - band, x1, y1),
                                  lo.mean(x, y, x + band, y1), lo.mean(x1 - band, y, x1, y1)])
    cw, ch = np.maximum(1, w // 4), np.maximum(1, h // 4)
    corners = (e.sum(x, y, x + cw, y + ch)[0] + e.sum(x1 - cw, y, x1, y + ch)[0]
               + e.sum(x, y1 - ch, x + cw, y1)[0] + e.sum(x1 - cw, y1 - ch, x1, y1)[0]) / (
        4 * cw * ch)
    mids = (e.mean(x + w / 2 - cw / 2, y, x + w / 2 + cw / 2, y + ch)
            + e.mean(x + w / 2 - cw / 2, y1 - ch, x + w / 2 + cw / 2, y1)
            + e.mean(x, y + h / 2 - ch / 2, x + cw, y + h / 2 + ch / 2)
            + e.mean(x1 - cw, y + h / 2 - ch / 2, x1, y + h / 2 + ch / 2)) / 4
    underline = e.mean(x, y1 - 2, x1, y1 + 1) - e.mean(x, y + h / 3, x1, y1 - h / 3)
    cols += [e.mean(ix0, iy0, ix1, iy1), e_top, e_bottom, e_left, e_right,
             e.ring_mean(x, y, x1, y1, 3), lo.mean(ix0, iy0, ix1, iy1), lo_sides,
             lo.ring_mean(x, y, x1, y1, 3), corners, mids, underline]
    gc, gr = GRID
    for r in range(gr):
        for c in range(gc):
            cols.append(e.mean(x + w * c / gc, y + h * r / gr, x + w * (c + 1) / gc,
                               y + h * (r + 1) / gr))
    # glyphs
    gl = _Integral((maps.glyphs > 0).view(np.uint8))
    sq = np.minimum(h, w / 2)
    glyph_rows = gl.mean(x, y + h / 4, x1, y1 - h / 4) - gl.mean(x, y, x1, y + h / 4)
    cols += [gl.mean(ix0, iy0, ix1, iy1), gl.mean(x, y, x + w / 4, y1),
             gl.mean(x + w / 4, y, x1 - w / 4, y1), gl.mean(x1 - w / 4, y, x1, y1),
             gl.mean(x1 - sq, y, x1, y1), e.mean(x1 - sq, y, x1, y1), glyph_rows]
    L = np.asarray(lines, np.float64).reshape(-1, 4)
    nb = _neighbour_text(B, L, th)
    cols += [nb[:, 0], nb[:, 1], nb[:, 2]]
    cont = _contains(B, B)
    np.fill_diagonal(cont, False)
    holders = np.asarray([e.kind in ("button", "text_field") for e in classic], bool)
    in_classic = np.asarray(_contains(cb[holders], B, slack=1).any(axis=0) if holders.any()
                            else np.zeros(n, bool), bool)
    cols += [np.minimum(cont.sum(axis=0), 10), np.minimum(cont.sum(axis=1), 30),
             in_classic.astype(np.float64)]
    cols += _ink_colour(maps, x, y, x1, y1, gl)
    cols += _right_end(e, gl, x, y, x1, y1)
    # a tab stands on its notebook's base line, which runs on beyond its sides
    span = np.maximum(w / 2, 8)
    cols.append(np.minimum(e.mean(x - span, y1 - 2, x, y1 + 2), e.mean(x1, y1 - 2, x1 + span,
                                                                       y1 + 2)))
    cols += _adjacent(B, bits, th)
    # ... the strongest row of edges near its bottom, over twice its width to its right: a
    # notebook's page border runs on under the other tabs (a selected tab has no bottom)
    base = np.zeros(n)
    for d in range(-6, 7):
        base = np.maximum(base, e.mean(x1, y1 + d, x1 + 2 * w, y1 + d + 1))
    cols.append(base)
    return np.stack(cols, axis=1).astype(np.float32)


def _adjacent(B: np.ndarray, bits: np.ndarray, th: float) -> list[np.ndarray]:
    """Closed boxes (rings, holes, flat regions) touching the box side by side on its row, of
    about its height (a row of tabs shares their borders; buttons stand apart): how many
    sides have one, and how far the nearest one's top and bottom lie from the box's (in text
    heights: a selected tab stands taller than its neighbours, its open bottom at their base
    line)."""
    n = len(B)
    ring = (bits & (BIT["edge_hi"] | BIT["edge_lo"] | BIT["hole_hi"] | BIT["hole_lo"]
                    | BIT["flat"])) > 0
    R = B[ring]
    out = [np.zeros(n), np.zeros(n), np.zeros(n)]
    if not len(R):
        return out
    x, y, w, h = (B[:, i:i + 1] for i in range(4))
    rx, ry, rw, rh = (R[None, :, i] for i in range(4))
    similar = (rh >= 0.6 * h) & (rh <= 1.3 * h) & (np.abs(ry - y) <= 0.25 * h + 3) & (rw >= 0.5 * h)
    right = similar & (np.abs(rx - (x + w)) <= 3)
    left = similar & (np.abs(rx + rw - x) <= 3)
    out[0] = right.any(axis=1).astype(np.float64) + left.any(axis=1)
    near = right | left
    j = np.where(near, np.abs(ry - y), np.inf).argmin(axis=1)
    has = near.any(axis=1)
    out[1] = np.where(has, (R[j, 1] - B[:, 1]) / th, 0.0)
    out[2] = np.where(has, (R[j, 1] + R[j, 3] - B[:, 1] - B[:, 3]) / th, 0.0)
    return out


def _ink_colour(maps: Maps, x, y, x1, y1, gl: _Integral) -> list[np.ndarray]:
    """Of the glyph pixels inside: the share that is strongly coloured, and how blue they are
    (a link's text is coloured, a label's is not)."""
    ink = maps.glyphs > 0
    strong = _Integral(((maps.sat > 60) & ink).view(np.uint8))
    n, _ = gl.sum(x, y, x1, y1)
    s, _ = strong.sum(x, y, x1, y1)
    blue, _ = _Integral(table=maps.blue_table).sum(x, y, x1, y1)
    return [s / np.maximum(n, 1), np.where(n > 0, 2 * (blue / np.maximum(n, 1) - 128), 0.0)]


ZONE = 20  # px: a drop-down arrow's button is 10-20 px wide whatever the font's size


def _right_end(e: _Integral, gl: _Integral, x, y, x1, y1) -> list[np.ndarray]:
    """The right end of a box, in pixels, past its border (a 2 px bevel and the gradient's
    band): edges inside a zone of ZONE px (a drop-down arrow), in its top, middle and bottom
    (a spin box's two arrows and the line between them), in a narrower zone, in the gap left
    of it (blank between a combo box's text and its arrow); glyph blobs there; and the
    strongest vertical line across the inner rows within 6-30 px of the right side (the
    arrow button's divider) and where; then the same zone just outside the right side and
    the one beyond it (the field part of a combo box has its arrow button right outside,
    then blank)."""
    ya, yb = y + 4, y1 - 4
    hh = np.maximum(yb - ya, 1)
    end = x1 - 5
    zx0 = np.maximum(end - ZONE, x + 5)
    third = hh / 3
    cols = [e.mean(zx0, ya, end, yb), e.mean(zx0, ya, end, ya + third),
            e.mean(zx0, ya + third, end, yb - third), e.mean(zx0, yb - third, end, yb),
            e.mean(np.maximum(end - ZONE // 2, x + 5), ya, end, yb),
            e.mean(np.maximum(end - 2 * ZONE, x + 5), ya, zx0, yb), gl.mean(zx0, ya, end, yb)]
    best = np.zeros(len(x))
    at = np.zeros(len(x))
    for d in range(6, 31):
        c = x1 - d
        v = np.where(c > x + 5, e.mean(c, ya, c + 1, yb), 0.0)
        better = v > best + 1e-9
        best = np.where(better, v, best)
        at = np.where(better, d, at)
    return [*cols, best, at, e.mean(x1, ya, x1 + ZONE, yb), gl.mean(x1, ya, x1 + ZONE, yb),
            e.mean(x1 + ZONE, ya, x1 + 2 * ZONE, yb)]
