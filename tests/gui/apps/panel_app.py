"""A settings panel with many buttons and entries of different sizes: detection ground truth."""

from __future__ import annotations

import tkinter as tk
from typing import Any

from _common import FONT, entry, geometry, parse_args, write_state

BUTTONS = [
    "Open", "Save", "Export Report", "Print", "Refresh", "Delete",
    "Apply", "Help", "Settings", "Close Window", "Next", "Back",
]
FIELDS = [("Host", 24), ("Port", 8), ("User", 18), ("Database", 30), ("Timeout", 10), ("Path", 40)]


def main() -> None:
    args = parse_args()
    root = tk.Tk()
    root.title("Panel")
    root.geometry(args.geometry or "1280x800+0+0")
    header = tk.Label(root, text="Connection settings", font=("DejaVu Sans", 16, "bold"))
    header.place(x=40, y=24)
    widgets: list[tuple[tk.Misc, str, str, str]] = [
        (header, "text", "header", "Connection settings")
    ]
    for i, (label, width) in enumerate(FIELDS):
        col, row = divmod(i, 3)
        x, y = 40 + col * 600, 90 + row * 56
        lab = tk.Label(root, text=label, font=FONT)
        lab.place(x=x, y=y + 4)
        ent = entry(root, width=width)
        ent.place(x=x + 120, y=y)
        widgets += [(lab, "text", f"label_{label}", label), (ent, "text_field", label.lower(), "")]
    for i, label in enumerate(BUTTONS):
        row, col = divmod(i, 4)
        btn = tk.Button(root, text=label, font=FONT, padx=6 + 4 * (i % 3), pady=2 + 2 * (i % 2))
        btn.place(x=40 + col * 250, y=300 + row * 80)
        widgets.append((btn, "button", label.lower().replace(" ", "_"), label))
    note = tk.Label(root, text="Changes apply after restart", font=FONT)
    note.place(x=40, y=560)
    widgets.append((note, "text", "note", "Changes apply after restart"))
    state: dict[str, Any] = {"ready": False}

    def ready() -> None:
        state["widgets"] = [geometry(w, k, n, t) for w, k, n, t in widgets]
        state["ready"] = True
        write_state(args.state, state)

    root.after(300, ready)
    root.mainloop()


if __name__ == "__main__":
    main()
