"""The true boxes of a Tk screen, from Tk itself: a widget's own geometry (`winfo_*`), a
notebook's tabs found by asking the notebook which tab lies under each pixel, a menu bar's
items from the menu's clone (`xposition`). Every box is in root (screen) coordinates."""

from __future__ import annotations

import tkinter as tk
import tkinter.font as tkfont
from tkinter import ttk
from typing import Any

SCREEN = (1280, 800)


def visible(w: tk.Misc) -> bool:
    """Mapped, not empty and wholly on the screen."""
    x, y, ww, hh = w.winfo_rootx(), w.winfo_rooty(), w.winfo_width(), w.winfo_height()
    return (w.winfo_ismapped() and ww > 1 and hh > 1 and x >= 0 and y >= 0
            and x + ww <= SCREEN[0] and y + hh <= SCREEN[1])


def box_of(w: tk.Misc) -> dict[str, int]:
    return {"x": w.winfo_rootx(), "y": w.winfo_rooty(), "w": w.winfo_width(),
            "h": w.winfo_height()}


def tab_boxes(nb: ttk.Notebook, tabs: list[str]) -> list[dict[str, Any]]:
    """Each tab's extent, found by asking the notebook which tab is under each pixel."""
    out: dict[int, list[int]] = {}
    page_y = nb.winfo_children()[0].winfo_y() if nb.winfo_children() else 30
    for y in range(0, page_y):
        for x in range(0, nb.winfo_width()):
            try:
                i = int(nb.index(f"@{x},{y}"))
            except (tk.TclError, ValueError):
                continue
            b = out.setdefault(i, [x, y, x, y])
            b[0], b[1] = min(b[0], x), min(b[1], y)
            b[2], b[3] = max(b[2], x), max(b[3], y)
    rx, ry = nb.winfo_rootx(), nb.winfo_rooty()
    return [{"kind": "tab", "text": tabs[i], "x": rx + b[0], "y": ry + b[1],
             "w": b[2] - b[0] + 1, "h": b[3] - b[1] + 1} for i, b in sorted(out.items())
            if i < len(tabs)]


def menu_boxes(root: tk.Tk, menu: tk.Menu, labels: list[str],
                font: tkfont.Font) -> list[dict[str, Any]]:
    clone = ".#" + str(menu).lstrip(".")
    height = int(root.tk.call("winfo", "height", clone))
    xs = [int(root.tk.call(clone, "xposition", i)) for i in range(len(labels))]
    pad = xs[1] - xs[0] - font.measure(labels[0]) if len(xs) > 1 else 12
    ends = [*xs[1:], xs[-1] + font.measure(labels[-1]) + pad]
    return [{"kind": "menu_item", "text": t, "x": root.winfo_rootx() + x0,
             "y": root.winfo_rooty() - height, "w": x1 - x0, "h": height}
            for t, x0, x1 in zip(labels, xs, ends, strict=True)]
