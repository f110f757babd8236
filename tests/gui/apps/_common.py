"""Helpers shared by the Tk test applications: ground truth written as JSON.

Each app writes its widgets' true screen geometry (root coordinates) and its own state to the
file given by --state, atomically, whenever something changes; tests read it as ground truth.
"""

from __future__ import annotations

import argparse
import json
import os
import tkinter as tk
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

FONT = ("DejaVu Sans", 12)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--state", required=True, type=Path)
    p.add_argument("--geometry", default=None)
    p.add_argument("--card", default=None, help="a card number shown as a label")
    return p.parse_args()


def geometry(widget: tk.Misc, kind: str, name: str, text: str = "") -> dict[str, Any]:
    widget.update_idletasks()
    return {
        "name": name,
        "kind": kind,
        "x": widget.winfo_rootx(),
        "y": widget.winfo_rooty(),
        "w": widget.winfo_width(),
        "h": widget.winfo_height(),
        "text": text,
    }


def write_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, path)


def entry(parent: tk.Misc, **kw: Any) -> tk.Entry:
    """An entry with a steady cursor (no blink), so an idle screen is really idle."""
    return tk.Entry(parent, font=FONT, insertofftime=0, **kw)


def run(root: tk.Tk, state: dict[str, Any], snapshot: Callable[[], None],
        entries: Iterable[tk.Entry], variables: Iterable[tk.Variable]) -> None:
    """Snapshot after every key release in an entry and every variable write; ready (and a
    first snapshot) once the window has painted; then the main loop."""
    for e in entries:
        e.bind("<KeyRelease>", lambda _e: root.after(20, snapshot))
    for v in variables:
        v.trace_add("write", lambda *_: root.after(20, snapshot))

    def ready() -> None:
        state["ready"] = True
        snapshot()

    root.after(300, ready)
    root.mainloop()
