"""A profile form whose fields already hold text: Name ("Bob"), City ("Berlin"), a read-only
Account, a "Remember me" check box, Save, and a line that shows "Carol" elsewhere on screen
(so seeing "Carol" somewhere proves nothing about the Name field)."""

from __future__ import annotations

import tkinter as tk
from typing import Any

from _common import FONT, entry, geometry, parse_args, run, write_state


def main() -> None:
    args = parse_args()
    root = tk.Tk()
    root.title("Profile")
    root.geometry(args.geometry or "1280x800+0+0")
    tk.Label(root, text="Profile", font=("DejaVu Sans", 18, "bold")).place(x=60, y=40)
    entries: dict[str, tk.Entry] = {}
    for row, (name, value) in enumerate([("Name", "Bob"), ("City", "Berlin"),
                                         ("Account", "A-1027")]):
        y = 110 + row * 60
        tk.Label(root, text=name, font=FONT).place(x=60, y=y + 4)
        e = entry(root, width=28)
        e.insert(0, value)
        e.place(x=200, y=y)
        entries[name] = e
    entries["Account"].configure(state="readonly")
    remember = tk.BooleanVar(value=False)
    check = tk.Checkbutton(root, text="Remember me", font=FONT, variable=remember)
    check.place(x=196, y=300)
    save = tk.Button(root, text="Save", font=FONT)
    save.place(x=200, y=360)
    tk.Label(root, text="Last edited by Carol", font=FONT).place(x=60, y=520)
    status = tk.Label(root, text="", font=FONT)
    status.place(x=60, y=440)
    state: dict[str, Any] = {"ready": False, "saved": None}

    def snapshot() -> None:
        state["widgets"] = [geometry(e, "text_field", n.lower()) for n, e in entries.items()]
        state["widgets"].append(geometry(check, "checkbox", "remember", "Remember me"))
        state["values"] = {n.lower(): e.get() for n, e in entries.items()}
        state["remember"] = bool(remember.get())
        write_state(args.state, state)

    def on_save() -> None:
        state["saved"] = entries["Name"].get()
        status.configure(text=f"Saved {entries['Name'].get()}")
        root.after(50, snapshot)

    save.configure(command=on_save)
    run(root, state, snapshot, entries.values(), [remember])


if __name__ == "__main__":
    main()
