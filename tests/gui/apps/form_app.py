"""An order form: Name, Email, Password, a checkbox, Submit / Cancel, a confirmation label."""

from __future__ import annotations

import tkinter as tk
from typing import Any

from _common import FONT, entry, geometry, parse_args, run, write_state


def main() -> None:
    args = parse_args()
    root = tk.Tk()
    root.title("Order form")
    root.geometry(args.geometry or "1280x800+0+0")
    root.configure(bg="#d9d9d9")

    title = tk.Label(root, text="Order form", font=("DejaVu Sans", 18, "bold"))
    title.place(x=60, y=40)
    labels: dict[str, tk.Label] = {}
    entries: dict[str, tk.Entry] = {}
    for row, name in enumerate(["Name", "Email", "Password"]):
        y = 110 + row * 60
        labels[name] = tk.Label(root, text=name, font=FONT)
        labels[name].place(x=60, y=y + 4)
        entries[name] = entry(root, width=28, show="•" if name == "Password" else "")
        entries[name].place(x=200, y=y)
    subscribe = tk.BooleanVar(value=False)
    check = tk.Checkbutton(root, text="Subscribe to news", font=FONT, variable=subscribe)
    check.place(x=196, y=300)
    submit = tk.Button(root, text="Submit Order", font=FONT)
    submit.place(x=200, y=360)
    cancel = tk.Button(root, text="Cancel", font=FONT)
    cancel.place(x=380, y=360)
    status = tk.Label(root, text="", font=FONT)
    status.place(x=60, y=440)
    card = None
    if args.card:
        card = tk.Label(root, text=f"Card on file: {args.card}", font=FONT)
        card.place(x=60, y=500)

    state: dict[str, Any] = {"ready": False, "submitted": False, "cancelled": False}

    def snapshot() -> None:
        widgets = [geometry(title, "text", "title", "Order form")]
        for name in labels:
            widgets.append(geometry(labels[name], "text", f"label_{name}", name))
            widgets.append(geometry(entries[name], "text_field", name.lower(), ""))
        widgets.append(geometry(check, "checkbox", "subscribe", "Subscribe to news"))
        widgets.append(geometry(submit, "button", "submit", "Submit Order"))
        widgets.append(geometry(cancel, "button", "cancel", "Cancel"))
        if card is not None:
            widgets.append(geometry(card, "text", "card", card.cget("text")))
        if status.cget("text"):
            widgets.append(geometry(status, "text", "status", status.cget("text")))
        state["widgets"] = widgets
        state["values"] = {n.lower(): e.get() for n, e in entries.items()}
        state["subscribe"] = bool(subscribe.get())
        write_state(args.state, state)

    def on_submit() -> None:
        name = entries["Name"].get().strip()
        status.configure(text=f"Thank you {name}, order received" if name else "Name missing")
        state["submitted"] = bool(name)
        root.after(50, snapshot)

    def on_cancel() -> None:
        state["cancelled"] = True
        root.after(50, snapshot)

    submit.configure(command=on_submit)
    cancel.configure(command=on_cancel)
    run(root, state, snapshot, entries.values(), [subscribe])


if __name__ == "__main__":
    main()
