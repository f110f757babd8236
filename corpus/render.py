"""Render corpus screens to PNG + truth JSON on an X display (Xvfb).

    python -m corpus.render tk   --seeds 0-49 --out DIR     # one Tk process, many screens
    python -m corpus.render html --seeds 0-49 --out DIR     # one Chromium, many pages

Each seed gives DIR/<toolkit>-<seed>.png (the 1280x800 screen as the agent would capture it)
and DIR/<toolkit>-<seed>.json ({seed, toolkit, params, truth: [{kind, text, x, y, w, h}]}).
A screen already rendered is kept (the corpus is deterministic by seed).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

SETTLE_S = 0.15  # let the X server finish painting before the grab


def parse_seeds(text: str) -> list[int]:
    """'0-9,20,30-31' -> [0..9, 20, 30, 31]."""
    out: list[int] = []
    for part in text.split(","):
        if not part.strip():
            continue
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b) + 1)) if b else [int(a)]
    return out


def _paths(out: Path, toolkit: str, seed: int) -> tuple[Path, Path]:
    return out / f"{toolkit}-{seed}.png", out / f"{toolkit}-{seed}.json"


def _save(png: Path, meta: Path, image: Any, record: dict[str, Any]) -> None:
    image.save(png)
    tmp = meta.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, meta)


def render_tk(seeds: list[int], out: Path, display: str | None = None) -> None:
    import tkinter as tk

    from PIL import ImageGrab

    from corpus.tk_screens import build
    from corpus.tk_truth import SCREEN

    root = tk.Tk()
    root.geometry(f"{SCREEN[0]}x{SCREEN[1]}+0+0")
    root.update()
    for seed in seeds:
        png, meta = _paths(out, "tk", seed)
        if meta.exists():
            continue
        record = build(root, seed)
        keep = record.pop("_keep")
        root.update()
        time.sleep(SETTLE_S)
        root.update()
        _save(png, meta, ImageGrab.grab(xdisplay=display or os.environ.get("DISPLAY")), record)
        del keep
    root.destroy()


def render_html(seeds: list[int], out: Path) -> None:
    from corpus.browser import Browser
    from corpus.html_screens import page

    with Browser() as b:
        for seed in seeds:
            png, meta = _paths(out, "html", seed)
            if meta.exists():
                continue
            html, params = page(seed)
            image, truth = b.render(html)
            _save(png, meta, image, {"seed": seed, "toolkit": "html", "params": params,
                                     "truth": truth})


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("toolkit", choices=["tk", "html"])
    ap.add_argument("--seeds", required=True, help="seed list, e.g. 0-49,100")
    ap.add_argument("--out", required=True, type=Path, help="output folder")
    args = ap.parse_args(argv)
    if not os.environ.get("DISPLAY"):
        ap.error("no DISPLAY: run under Xvfb (corpus.xvfb starts one)")
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = parse_seeds(args.seeds)
    if args.toolkit == "tk":
        render_tk(seeds, args.out)
    else:
        render_html(seeds, args.out)


if __name__ == "__main__":
    main()
