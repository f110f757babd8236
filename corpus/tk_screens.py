"""One Tk screen per seed: classic widgets or ttk under a theme, a layout, a font, a Tk scaling
and a palette drawn from the seed; the truth comes from Tk itself (`winfo_*`, the notebook's
and the menu bar's own geometry).

`build(root, seed)` runs inside a Tk process (see `corpus.render`) and returns the screen's
parameters and its widgets' true boxes in root (screen) coordinates. Widgets that do not fit
on the 1280x800 screen are removed before the truth is taken, so every truth box is fully
visible.
"""

from __future__ import annotations

import random
import tkinter as tk
import tkinter.font as tkfont
from collections.abc import Callable
from dataclasses import dataclass, field
from tkinter import ttk
from typing import Any

from corpus import vocab
from corpus.tk_truth import box_of, menu_boxes, tab_boxes, visible

#: families from Debian's font packages (bootstrap installs them); Helvetica and Courier are
#: resolved by fontconfig (Nimbus Sans, Nimbus Mono PS)
FONTS = ["DejaVu Sans", "DejaVu Serif", "DejaVu Sans Mono", "Liberation Sans",
         "Liberation Serif", "Liberation Mono", "Helvetica", "Courier", "FreeSans", "FreeSerif",
         "Carlito", "Open Sans", "Cantarell", "Nimbus Roman"]
THEMES = ["clam", "alt", "default", "classic"]
LAYOUTS = ["form", "toolbar", "dialog", "settings", "grid"]
LIGHT = ["#d9d9d9", "#f0f0f0", "#ffffff", "#e8e8e8", "#dcdad5", "#eff0f1"]
DARK = [("#2b2b2b", "#e6e6e6", "#1d1d1d"), ("#1e2227", "#d7dae0", "#15181c"),
        ("#33373d", "#f0f0f0", "#24272b")]


@dataclass
class Params:
    seed: int
    ttk: bool
    theme: str
    font: str
    size: int
    scaling: float
    dark: bool
    bg: str
    fg: str
    field_bg: str
    layout: str
    menubar: bool

    @classmethod
    def draw(cls, seed: int) -> Params:
        rng = random.Random(seed)
        dark = rng.random() < 0.3
        bg, fg, field_bg = rng.choice(DARK) if dark else (rng.choice(LIGHT), "#000000", "#ffffff")
        return cls(seed=seed, ttk=rng.random() < 0.6, theme=rng.choice(THEMES),
                   font=rng.choice(FONTS), size=rng.randint(9, 20),
                   scaling=round(rng.uniform(1.0, 2.0), 2), dark=dark, bg=bg, fg=fg,
                   field_bg=field_bg, layout=rng.choice(LAYOUTS), menubar=rng.random() < 0.5)


@dataclass
class Screen:
    """What a builder made: truth rows and the widgets still to measure."""

    params: Params
    rng: random.Random
    font: tkfont.Font
    bold: tkfont.Font
    widgets: list[tuple[tk.Misc, str, str]] = field(default_factory=list)  # widget, kind, text
    notebooks: list[tuple[ttk.Notebook, list[str]]] = field(default_factory=list)
    menubar: tuple[tk.Menu, list[str]] | None = None


def _palette(root: tk.Tk, p: Params) -> None:
    root.option_clear()
    root.configure(bg=p.bg)
    active = "#3c3f44" if p.dark else "#ececec"
    for pattern, value in (("*Background", p.bg), ("*Foreground", p.fg),
                           ("*activeBackground", active), ("*activeForeground", p.fg),
                           ("*highlightBackground", p.bg), ("*highlightColor", p.fg),
                           ("*insertBackground", p.fg), ("*troughColor",
                                                         "#4a4d52" if p.dark else "#c3c3c3"),
                           ("*selectColor", p.field_bg), ("*Entry.Background", p.field_bg),
                           ("*Spinbox.Background", p.field_bg), ("*Text.Background", p.field_bg),
                           ("*Listbox.Background", p.field_bg)):
        root.option_add(pattern, value)
    style = ttk.Style(root)
    style.theme_use(p.theme)
    if p.dark or p.bg != "#d9d9d9":
        style.configure(".", background=p.bg, foreground=p.fg, fieldbackground=p.field_bg,
                        troughcolor="#4a4d52" if p.dark else "#c3c3c3",
                        selectbackground="#4a6984", insertcolor=p.fg)
        style.map("TButton", background=[("active", active)])
        style.map("TCombobox", fieldbackground=[("readonly", p.field_bg)])
        style.configure("TNotebook.Tab", background=active, foreground=p.fg)
        style.map("TNotebook.Tab", background=[("selected", p.bg)])


class _Maker:
    """Creates classic or ttk widgets of a screen and records their truth kinds."""

    def __init__(self, s: Screen) -> None:
        self.s = s
        self.p = s.params
        self.rng = s.rng

    def _rec(self, w: tk.Misc, kind: str, text: str = "") -> tk.Misc:
        self.s.widgets.append((w, kind, text))
        return w

    def label(self, parent: tk.Misc, text: str, bold: bool = False) -> tk.Misc:
        font = self.s.bold if bold else self.s.font
        w = ttk.Label(parent, text=text, font=font) if self.p.ttk else tk.Label(
            parent, text=text, font=font)
        return self._rec(w, "text", text)

    def button(self, parent: tk.Misc, text: str) -> tk.Misc:
        if self.p.ttk:
            return self._rec(ttk.Button(parent, text=text), "button", text)
        r = self.rng
        w = tk.Button(parent, text=text, font=self.s.font, padx=r.randint(2, 14),
                      pady=r.randint(1, 6), bd=r.choice([1, 2, 2, 3]),
                      relief=r.choice(["raised", "raised", "raised", "groove", "ridge"]))
        return self._rec(w, "button", text)

    def entry(self, parent: tk.Misc, width: int) -> tk.Misc:
        value = self.rng.choice(vocab.VALUES) if self.rng.random() < 0.35 else ""
        if self.p.ttk:
            w: Any = ttk.Entry(parent, width=width, font=self.s.font)
        else:
            w = tk.Entry(parent, width=width, font=self.s.font, insertofftime=0,
                         bd=self.rng.choice([1, 2, 2]), relief=self.rng.choice(["sunken",
                                                                               "solid", "sunken"]))
        if value:
            w.insert(0, value)
        return self._rec(w, "text_field", "")

    def spinbox(self, parent: tk.Misc) -> tk.Misc:
        kw = dict(from_=0, to=100, width=self.rng.randint(5, 10), font=self.s.font)
        w: Any = ttk.Spinbox(parent, **kw) if self.p.ttk else tk.Spinbox(parent, **kw)
        w.delete(0, "end")
        w.insert(0, str(self.rng.randint(0, 99)))
        return self._rec(w, "text_field", "")

    def combobox(self, parent: tk.Misc) -> tk.Misc:
        options = vocab.pick(self.rng, vocab.OPTIONS, 4)
        if self.p.ttk:
            w: Any = ttk.Combobox(parent, values=options, width=self.rng.randint(8, 18),
                                  font=self.s.font, state="readonly")
            w.current(0)
            return self._rec(w, "combobox", options[0])
        var = tk.StringVar(parent, options[0])
        w = tk.OptionMenu(parent, var, *options)
        w.configure(font=self.s.font)
        w._var = var  # keep the variable alive with the widget
        return self._rec(w, "combobox", options[0])

    def check(self, parent: tk.Misc, text: str) -> tk.Misc:
        var = tk.BooleanVar(parent, self.rng.random() < 0.4)
        if self.p.ttk:
            w: Any = ttk.Checkbutton(parent, text=text, variable=var)
        else:
            w = tk.Checkbutton(parent, text=text, variable=var, font=self.s.font)
        w._var = var
        return self._rec(w, "checkbox", text)

    def radios(self, parent: tk.Misc, texts: list[str]) -> list[tk.Misc]:
        var = tk.StringVar(parent, self.rng.choice(texts))
        out = []
        for t in texts:
            if self.p.ttk:
                w: Any = ttk.Radiobutton(parent, text=t, value=t, variable=var)
            else:
                w = tk.Radiobutton(parent, text=t, value=t, variable=var, font=self.s.font)
            w._var = var
            out.append(self._rec(w, "radio", t))
        return out

    def slider(self, parent: tk.Misc) -> tk.Misc:
        length = self.rng.randint(120, 320)
        if self.p.ttk:
            w: Any = ttk.Scale(parent, from_=0, to=100, length=length, orient="horizontal")
        else:
            w = tk.Scale(parent, from_=0, to=100, length=length, orient="horizontal",
                         showvalue=self.rng.random() < 0.5, font=self.s.font)
        w.set(self.rng.randint(0, 100))
        return self._rec(w, "slider", "")

    def text_area(self, parent: tk.Misc) -> tk.Misc:
        w = tk.Text(parent, width=self.rng.randint(24, 50), height=self.rng.randint(3, 6),
                    font=self.s.font, insertofftime=0)
        w.insert("1.0", " ".join(vocab.pick(self.rng, vocab.VALUES, 4)))
        return self._rec(w, "text_area", "")

    def listbox(self, parent: tk.Misc) -> tk.Misc:
        w = tk.Listbox(parent, height=self.rng.randint(3, 6), font=self.s.font)
        for o in vocab.pick(self.rng, vocab.OPTIONS, 5):
            w.insert("end", o)
        return self._rec(w, "list", "")


# -- rows: each returns a frame holding one horizontal line of widgets -------------------------

def _row(m: _Maker, parent: tk.Misc) -> tk.Frame:
    return tk.Frame(parent, bg=m.p.bg)


def _field_row(m: _Maker, parent: tk.Misc) -> tk.Frame:
    f = _row(m, parent)
    for col in range(m.rng.choice([1, 1, 2])):
        m.label(f, m.rng.choice(vocab.FIELDS)).grid(row=0, column=col * 2, padx=6, pady=4,
                                                    sticky="w")
        kind = m.rng.random()
        w = (m.spinbox(f) if kind < 0.12 else m.combobox(f) if kind < 0.27
             else m.entry(f, m.rng.randint(8, 32)))
        w.grid(row=0, column=col * 2 + 1, padx=6, pady=4, sticky="w")
    return f


def _button_row(m: _Maker, parent: tk.Misc, n: int | None = None) -> tk.Frame:
    f = _row(m, parent)
    for i, t in enumerate(vocab.pick(m.rng, vocab.BUTTONS, n or m.rng.randint(2, 5))):
        m.button(f, t).grid(row=0, column=i, padx=m.rng.randint(4, 12), pady=4)
    return f


def _check_row(m: _Maker, parent: tk.Misc) -> tk.Frame:
    f = _row(m, parent)
    for i, t in enumerate(vocab.pick(m.rng, vocab.CHECKS, m.rng.randint(1, 3))):
        m.check(f, t).grid(row=0, column=i, padx=8, pady=3, sticky="w")
    return f


def _radio_row(m: _Maker, parent: tk.Misc) -> tk.Frame:
    f = _row(m, parent)
    m.label(f, m.rng.choice(vocab.FIELDS)).grid(row=0, column=0, padx=6, pady=3)
    for i, w in enumerate(m.radios(f, vocab.pick(m.rng, vocab.RADIOS, m.rng.randint(2, 4)))):
        w.grid(row=0, column=i + 1, padx=6, pady=3, sticky="w")
    return f


def _slider_row(m: _Maker, parent: tk.Misc) -> tk.Frame:
    f = _row(m, parent)
    m.label(f, m.rng.choice(vocab.FIELDS)).grid(row=0, column=0, padx=6, pady=4)
    m.slider(f).grid(row=0, column=1, padx=6, pady=4)
    return f


def _area_row(m: _Maker, parent: tk.Misc) -> tk.Frame:
    f = _row(m, parent)
    (m.text_area(f) if m.rng.random() < 0.5 else m.listbox(f)).grid(row=0, column=0, padx=6,
                                                                    pady=4)
    return f


def _heading(m: _Maker, parent: tk.Misc) -> tk.Frame:
    f = _row(m, parent)
    m.label(f, m.rng.choice(vocab.HEADINGS), bold=True).grid(row=0, column=0, padx=6, pady=6)
    return f


def _grid_block(m: _Maker, parent: tk.Misc) -> tk.Frame:
    f = _row(m, parent)
    rows, cols = m.rng.randint(2, 5), m.rng.randint(2, 5)
    cell = m.rng.choice(["button", "check", "entry"])
    for r in range(rows):
        for c in range(cols):
            if cell == "button":
                w = m.button(f, m.rng.choice(vocab.BUTTONS))
            elif cell == "check":
                w = m.check(f, m.rng.choice(vocab.CHECKS))
            else:
                w = m.entry(f, m.rng.randint(6, 14))
            w.grid(row=r, column=c, padx=3, pady=2, sticky="w")
    return f


RowMaker = Callable[[_Maker, tk.Misc], tk.Frame]
LAYOUT_ROWS: dict[str, list[tuple[RowMaker, float]]] = {
    "form": [(_field_row, 5), (_check_row, 1), (_radio_row, 1), (_button_row, 1)],
    "toolbar": [(_field_row, 2), (_area_row, 1), (_check_row, 1), (_slider_row, 1)],
    "dialog": [(_field_row, 3), (_radio_row, 1), (_check_row, 1)],
    "settings": [(_check_row, 3), (_radio_row, 2), (_slider_row, 2), (_field_row, 2)],
    "grid": [(_grid_block, 1), (_field_row, 1)],
}


def _fill(m: _Maker, parent: tk.Misc, n: int) -> None:
    makers, weights = zip(*LAYOUT_ROWS[m.p.layout], strict=True)
    for _ in range(n):
        m.rng.choices(makers, weights)[0](m, parent).pack(anchor="w", fill="x")


def _menubar(root: tk.Tk, s: Screen) -> None:
    menu = tk.Menu(root, tearoff=0, font=s.font)
    labels = vocab.MENUS[: s.rng.randint(3, 7)]
    for label in labels:
        menu.add_cascade(label=label, menu=tk.Menu(menu, tearoff=0))
    root.configure(menu=menu)
    s.menubar = (menu, labels)


def _content(root: tk.Tk, s: Screen) -> tk.Frame:
    m = _Maker(s)
    p, rng = s.params, s.rng
    outer = tk.Frame(root, bg=p.bg)
    outer.place(x=rng.randint(8, 160), y=rng.randint(8, 120))
    if p.layout == "toolbar":
        bar = _button_row(m, outer, rng.randint(4, 9))
        bar.pack(anchor="w")
    _heading(m, outer).pack(anchor="w")
    body: tk.Misc = outer
    if p.layout == "dialog":
        body = tk.Frame(outer, bg=p.bg, bd=2, relief="raised")
        body.pack(anchor="w", padx=10, pady=10)
    if p.layout == "settings" and rng.random() < 0.6:
        nb = ttk.Notebook(outer)
        tabs = vocab.pick(rng, vocab.TABS, rng.randint(2, 5))
        pages = []
        for t in tabs:
            page = tk.Frame(nb, bg=p.bg)
            nb.add(page, text=t)
            pages.append(page)
        nb.pack(anchor="w", pady=4)
        s.notebooks.append((nb, tabs))
        _fill(m, pages[0], rng.randint(3, 8))
    elif p.layout == "settings":
        for _ in range(rng.randint(1, 2)):
            kw = {"text": rng.choice(vocab.HEADINGS)}
            lf = ttk.LabelFrame(outer, **kw) if p.ttk else tk.LabelFrame(outer, font=s.font, **kw)
            lf.pack(anchor="w", padx=6, pady=6)
            _fill(m, lf, rng.randint(2, 4))
    else:
        _fill(m, body, rng.randint(3, 9))
    if p.layout in ("form", "dialog"):
        _button_row(m, body, rng.randint(2, 3)).pack(anchor="e" if rng.random() < 0.5 else "w")
    return outer


def _trim(root: tk.Tk, s: Screen, outer: tk.Frame) -> None:
    """Drop what does not fit on the screen: whole widgets that overflow are destroyed."""
    root.update_idletasks()
    for w, _k, _t in list(s.widgets):
        if not visible(w):
            w.destroy()
    root.update_idletasks()
    s.widgets = [(w, k, t) for w, k, t in s.widgets if w.winfo_exists() and visible(w)]


def clear(root: tk.Tk) -> None:
    root.configure(menu="")
    for child in root.winfo_children():
        child.destroy()


def build(root: tk.Tk, seed: int) -> dict[str, Any]:
    """Lay out the screen of `seed` in `root`; returns its params and truth."""
    p = Params.draw(seed)
    clear(root)
    root.tk.call("tk", "scaling", p.scaling)
    _palette(root, p)
    font = tkfont.Font(root, family=p.font, size=p.size)
    bold = tkfont.Font(root, family=p.font, size=p.size + 2, weight="bold")
    root.option_add("*Font", font)
    ttk.Style(root).configure(".", font=font)
    s = Screen(p, random.Random(seed * 7919 + 1), font, bold)
    if p.menubar:
        _menubar(root, s)
    outer = _content(root, s)
    _trim(root, s, outer)
    root.update()
    truth = [{"kind": k, "text": t, "cls": w.winfo_class(), **box_of(w)} for w, k, t in s.widgets]
    for nb, tabs in s.notebooks:
        if nb.winfo_exists() and visible(nb):
            truth += tab_boxes(nb, tabs)
    if s.menubar is not None:
        truth += menu_boxes(root, *s.menubar, font)
    return {"seed": seed, "toolkit": "tk", "params": vars(p), "truth": truth,
            "fonts": {"actual": font.actual()}, "_keep": (font, bold)}
