"""Inline SVG charts for the HTML report: no JavaScript, no CDN, just markup we generate.

Pure functions from data to an `<svg>` string. Every text passes through `esc`.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Mapping, Sequence

PALETTE = ("#2f6fdf", "#e4572e", "#29a36a", "#f0a202", "#8e44ad", "#16a2b8", "#d63384",
           "#6c757d")
STATUS_COLORS = {"success": "#29a36a", "failure": "#e4572e", "timeout": "#f0a202",
                 "lost": "#8e44ad", "skipped": "#6c757d", "pending": "#6c757d"}


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _nice_max(v: float) -> float:
    if v <= 0 or not math.isfinite(v):
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * exp:
            return m * exp
    return 10 * exp


def _fmt(v: float) -> str:
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10 or v == int(v):
        return f"{v:.0f}"
    return f"{v:.2f}"


def _time_label(t: dt.datetime | float) -> str:
    if isinstance(t, dt.datetime):
        return t.strftime("%H:%M")
    return _fmt(t)


def line_chart(
    xs: Sequence[dt.datetime | float],
    series: dict[str, Sequence[float | None]],
    *,
    title: str,
    y_label: str = "",
    y_max: float | None = None,
    width: int = 560,
    height: int = 240,
    area: bool = False,
) -> str:
    """A line chart of several series over shared x values (times or numbers)."""
    left, right, top, bottom = 56, 12, 30, 40
    pw, ph = width - left - right, height - top - bottom
    n = len(xs)
    values = [v for s in series.values() for v in s if v is not None and math.isfinite(v)]
    top_v = y_max if y_max is not None else _nice_max(max(values, default=1.0))
    parts = _chart_open(width, height, title, left)
    for i in range(5):  # grid + y ticks
        v = top_v * i / 4
        y = top + ph - ph * i / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" '
                     'class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" class="yt">{esc(_fmt(v))}</text>')
    if y_label:
        parts.append(f'<text x="12" y="{top + ph / 2:.0f}" class="yl" '
                     f'transform="rotate(-90 12 {top + ph / 2:.0f})">{esc(y_label)}</text>')

    def px(i: int) -> float:
        return left + (pw * i / (n - 1) if n > 1 else pw / 2)

    def py(v: float) -> float:
        return top + ph - ph * min(max(v, 0.0), top_v) / top_v

    for i in sorted({0, n // 2, n - 1} if n else set()):  # x ticks
        anchor = "start" if i == 0 and n > 1 else "end" if i == n - 1 and n > 1 else "middle"
        parts.append(f'<text x="{px(i):.1f}" y="{top + ph + 16}" class="xt" '
                     f'style="text-anchor:{anchor}">{esc(_time_label(xs[i]))}</text>')
    for k, (name, ys) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        pts = [(px(i), py(v)) for i, v in enumerate(ys) if v is not None and math.isfinite(v)]
        if not pts:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        if area and len(pts) > 1:
            parts.append(f'<polygon points="{pts[0][0]:.1f},{top + ph} {path} '
                         f'{pts[-1][0]:.1f},{top + ph}" fill="{color}" fill-opacity="0.15"/>')
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" '
                     'stroke-width="2"/>')
        if len(pts) == 1:
            parts.append(f'<circle cx="{pts[0][0]:.1f}" cy="{pts[0][1]:.1f}" r="3" '
                         f'fill="{color}"/>')
        lx = left + 8 + k * 110
        parts.append(f'<rect x="{lx}" y="{height - 14}" width="10" height="10" '
                     f'fill="{color}"/><text x="{lx + 14}" y="{height - 5}" class="lg">'
                     f"{esc(name)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    width: int = 560,
    bar_h: int = 18,
    colors: Sequence[str] | None = None,
    stacked: bool = False,
) -> str:
    """Horizontal bars, one group per label: one bar per series side by side, or (stacked)
    one bar per label made of the series' segments."""
    left, right, top = 170, 60, 30
    if stacked:
        return _stacked_bars(labels, series, title=title, width=width, bar_h=bar_h,
                             colors=colors, left=left, right=right, top=top)
    k = max(len(series), 1)
    group_h = bar_h * k + 8
    height = top + group_h * max(len(labels), 1) + 26
    pw = width - left - right
    values = [v for s in series.values() for v in s]
    top_v = _nice_max(max(values, default=1.0))
    cols = list(colors or PALETTE)
    parts = _chart_open(width, height, title, left)
    for gi, label in enumerate(labels):
        y0 = top + gi * group_h
        parts.append(f'<text x="{left - 6}" y="{y0 + group_h / 2 + 2:.1f}" class="yt">'
                     f"{esc(label[:26])}</text>")
        for si, (_name, vals) in enumerate(series.items()):
            v = vals[gi]
            w = pw * v / top_v
            y = y0 + si * bar_h
            parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h - 3}" '
                         f'fill="{cols[si % len(cols)]}"/>')
            parts.append(f'<text x="{left + w + 4:.1f}" y="{y + bar_h - 6}" class="bv">'
                         f"{esc(_fmt(v))}</text>")
    if len(series) > 1:
        parts.extend(_bottom_legend(series, cols, left, height))
    parts.append("</svg>")
    return "".join(parts)


def _stacked_bars(labels: Sequence[str], series: Mapping[str, Sequence[float]], *, title: str,
                  width: int, bar_h: int, colors: Sequence[str] | None, left: int, right: int,
                  top: int) -> str:
    group_h = bar_h + 8
    height = top + group_h * max(len(labels), 1) + 26
    pw = width - left - right
    totals = [sum(vals[i] for vals in series.values()) for i in range(len(labels))]
    top_v = _nice_max(max(totals, default=1.0))
    cols = list(colors or PALETTE)
    parts = _chart_open(width, height, title, left)
    for gi, label in enumerate(labels):
        y = top + gi * group_h
        parts.append(f'<text x="{left - 6}" y="{y + bar_h - 5}" class="yt">'
                     f"{esc(label[:26])}</text>")
        x = float(left)
        for si, (name, vals) in enumerate(series.items()):
            w = pw * vals[gi] / top_v
            if w <= 0:
                continue
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h - 3}" '
                         f'fill="{cols[si % len(cols)]}"><title>{esc(name)}: '
                         f"{esc(_fmt(vals[gi]))}</title></rect>")
            x += w
        parts.append(f'<text x="{x + 4:.1f}" y="{y + bar_h - 6}" class="bv">'
                     f"{esc(_fmt(totals[gi]))}</text>")
    parts.extend(_bottom_legend(series, cols, left, height))
    parts.append("</svg>")
    return "".join(parts)


def _chart_open(width: int, height: int, title: str, left: int) -> list[str]:
    """The opening of every chart: svg element, accessible title, visible title."""
    return [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
            f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
            f"<title>{esc(title)}</title>",
            f'<text x="{left}" y="18" class="ct">{esc(title)}</text>']


def _bottom_legend(series: Mapping[str, Sequence[float]], cols: Sequence[str], left: int,
                   height: int) -> list[str]:
    """A colour swatch and name per series along the bottom of a bar chart."""
    return [f'<rect x="{left + si * 110}" y="{height - 14}" width="10" height="10" '
            f'fill="{cols[si % len(cols)]}"/><text x="{left + si * 110 + 14}" '
            f'y="{height - 5}" class="lg">{esc(name)}</text>'
            for si, name in enumerate(series)]


def frame_view(
    *,
    width: int,
    height: int,
    thumbnail_b64: str,
    thumbnail_format: str,
    boxes: Sequence[tuple[int, int, int, int, str, bool]],
    action: dict | None,
    view_width: int = 420,
) -> str:
    """One frame: the inline thumbnail stretched over the full-resolution coordinate space,
    the detection boxes (x, y, w, h, label, interactable) and the action drawn where it
    happened, colored by its outcome."""
    width = max(int(width or 0), 1)
    height = max(int(height or 0), 1)
    vh = int(view_width * height / width)
    mime = "image/png" if thumbnail_format.lower() == "png" else "image/jpeg"
    stroke = max(width / 320, 1.0)
    font = max(width / 60, 10.0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="frame" role="img" '
             f'viewBox="0 0 {width} {height}" width="{view_width}" height="{vh}">']
    if thumbnail_b64:
        parts.append(f'<image href="data:{mime};base64,{thumbnail_b64}" x="0" y="0" '
                     f'width="{width}" height="{height}" preserveAspectRatio="none"/>')
    else:
        parts.append(f'<rect width="{width}" height="{height}" fill="#ddd"/>')
    for x, y, w, h, label, interactable in boxes:
        color = "#16a2b8" if interactable else "#f0a202"
        parts.append(f'<rect class="det" x="{x}" y="{y}" width="{w}" height="{h}" fill="none" '
                     f'stroke="{color}" stroke-width="{stroke:.1f}"><title>{esc(label)}</title>'
                     "</rect>")
        if label:
            parts.append(f'<text x="{x + 2}" y="{max(y - 3, font)}" font-size="{font * 0.8:.0f}" '
                         f'fill="{color}" class="dl">{esc(label[:24])}</text>')
    if action is not None:
        color = STATUS_COLORS.get(str(action.get("status")), "#333")
        bx, by, bw, bh = (action.get(k) for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
        if None not in (bx, by, bw, bh):
            parts.append(f'<rect x="{bx}" y="{by}" width="{bw}" height="{bh}" fill="none" '
                         f'stroke="{color}" stroke-width="{stroke * 2:.1f}" '
                         'stroke-dasharray="8 4"/>')
        ax, ay = action.get("x"), action.get("y")
        if ax is None and bx is not None and by is not None:
            ax, ay = bx + (bw or 0) / 2, by + (bh or 0) / 2
        if ax is not None and ay is not None:
            r = max(width / 60, 8.0)
            parts.append(
                f'<g class="act"><circle cx="{ax}" cy="{ay}" r="{r:.1f}" fill="{color}" '
                f'fill-opacity="0.35" stroke="{color}" stroke-width="{stroke * 2:.1f}"/>'
                f'<line x1="{ax - r * 1.6:.1f}" y1="{ay}" x2="{ax + r * 1.6:.1f}" y2="{ay}" '
                f'stroke="{color}" stroke-width="{stroke:.1f}"/>'
                f'<line x1="{ax}" y1="{ay - r * 1.6:.1f}" x2="{ax}" y2="{ay + r * 1.6:.1f}" '
                f'stroke="{color}" stroke-width="{stroke:.1f}"/>'
                f'<text x="{ax + r * 1.8:.1f}" y="{ay - r:.1f}" font-size="{font:.0f}" '
                f'fill="{color}" font-weight="bold">{esc(action.get("kind", ""))}</text></g>')
    parts.append("</svg>")
    return "".join(parts)
