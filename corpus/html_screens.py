"""One HTML page per seed: forms, toolbars, dialogs, settings pages and dense grids, plain
(the browser's own widgets) or styled by the stylesheet below (flat, rounded or borderless
buttons, custom check boxes and radios), in several font families, sizes and palettes.

Pure: `page(seed)` returns the HTML and its parameters. Every element the evaluation scores
carries `data-kind` (and `data-text` where its text is not its own text content), so
`corpus.browser` can read the truth from the DOM with getBoundingClientRect. Nothing is
loaded from outside the page (no CDN, no web font).
"""

from __future__ import annotations

import html
import random
from typing import Any

from corpus import vocab

FONTS = ["DejaVu Sans", "DejaVu Serif", "Liberation Sans", "Liberation Serif",
         "Liberation Mono", "FreeSans", "FreeSerif", "Carlito", "Open Sans", "Cantarell",
         "Nimbus Sans", "Nimbus Roman", "Helvetica", "Courier"]
STYLES = ["plain", "flat", "rounded", "borderless"]
LAYOUTS = ["form", "toolbar", "dialog", "settings", "grid"]
ACCENTS = ["#2563eb", "#16a34a", "#9333ea", "#dc2626", "#0f766e", "#ea580c", "#475569"]

BASE_CSS = """
* { box-sizing: border-box; }
body { margin: 0; font-family: var(--font); font-size: var(--size); background: var(--bg);
       color: var(--fg); }
main { position: absolute; left: var(--left); top: var(--top); }
.row { display: flex; align-items: center; gap: var(--gap); margin: var(--vgap) 0; }
h1, h2 { font-size: 1.3em; margin: 0.4em 0; }
.dialog { border: 1px solid var(--line); padding: 16px; background: var(--panel);
          box-shadow: 0 4px 14px rgba(0,0,0,.25); }
fieldset { border: 1px solid var(--line); margin: 8px 0; }
.grid { display: grid; grid-template-columns: repeat(var(--cols), auto); gap: 6px 12px; }
nav.menubar { position: fixed; left: 0; top: 0; right: 0; display: flex;
              background: var(--panel); border-bottom: 1px solid var(--line); }
nav.menubar a { padding: 4px 12px; color: var(--fg); text-decoration: none; }
.tabs { display: flex; border-bottom: 1px solid var(--line); }
.tabs button.tab { border: 1px solid var(--line); border-bottom: none; background: var(--panel);
                   color: var(--fg); padding: 6px 14px; margin-right: 2px; font: inherit;
                   border-radius: 4px 4px 0 0; }
.tabs button.tab.on { background: var(--bg); font-weight: bold; }
a.link { color: var(--link); }
input, select, textarea, button { font: inherit; }
"""

STYLE_CSS = {
    "plain": "",
    "flat": """
button:not(.tab) { background: var(--accent); color: #fff; border: none; padding: 8px 16px; }
input[type=text], input[type=email], input[type=password], input[type=number], select,
textarea { border: 1px solid var(--line); background: var(--field); color: var(--fg);
           padding: 6px 8px; border-radius: 0; }
""",
    "rounded": """
button:not(.tab) { background: var(--panel); color: var(--fg); border: 1px solid var(--line);
                   border-radius: 999px; padding: 7px 18px;
                   box-shadow: 0 1px 3px rgba(0,0,0,.2); }
input[type=text], input[type=email], input[type=password], input[type=number], select,
textarea { border: 1px solid var(--line); border-radius: 8px; background: var(--field);
           color: var(--fg); padding: 7px 10px; }
""",
    "borderless": """
button:not(.tab) { background: var(--soft); color: var(--accent); border: none;
                   border-radius: 4px; padding: 8px 14px; font-weight: bold; }
input[type=text], input[type=email], input[type=password], input[type=number], select,
textarea { border: none; background: var(--soft); color: var(--fg); padding: 8px 10px;
           border-radius: 4px; }
""",
}

CUSTOM_CHECKS = """
input[type=checkbox], input[type=radio] { appearance: none; -webkit-appearance: none;
  width: 1.05em; height: 1.05em; border: 2px solid var(--accent); background: var(--field);
  margin: 0 0.4em 0 0; display: inline-block; vertical-align: middle; position: relative; }
input[type=checkbox] { border-radius: 3px; }
input[type=radio] { border-radius: 50%; }
input[type=checkbox]:checked { background: var(--accent); }
input[type=checkbox]:checked::after { content: ""; position: absolute; left: 28%; top: 6%;
  width: 30%; height: 58%; border: solid #fff; border-width: 0 2px 2px 0;
  transform: rotate(45deg); }
input[type=radio]:checked::after { content: ""; position: absolute; inset: 22%;
  border-radius: 50%; background: var(--accent); }
"""


def _e(text: str) -> str:
    return html.escape(text, quote=True)


class _Page:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n = 0

    def _id(self) -> str:
        self.n += 1
        return f"w{self.n}"

    def text(self, t: str) -> str:
        return f'<span data-kind="text">{_e(t)}</span>'

    def field(self) -> str:
        i = self._id()
        label = self.rng.choice(vocab.FIELDS)
        r = self.rng.random()
        if r < 0.15:
            opts = vocab.pick(self.rng, vocab.OPTIONS, 4)
            w = (f'<select id="{i}" data-kind="combobox" data-text="{_e(opts[0])}">'
                 + "".join(f"<option>{_e(o)}</option>" for o in opts) + "</select>")
        else:
            typ = self.rng.choice(["text", "text", "email", "password", "number"])
            val = self.rng.choice(vocab.VALUES) if self.rng.random() < 0.3 else ""
            if typ in ("number", "password") or "@" in val:
                val = ""
            size = self.rng.randint(8, 30)
            w = (f'<input id="{i}" type="{typ}" size="{size}" value="{_e(val)}" '
                 f'data-kind="text_field">')
        return f'<label for="{i}" data-kind="text">{_e(label)}</label>{w}'

    def button(self, t: str) -> str:
        return f'<button type="button" data-kind="button">{_e(t)}</button>'

    def check(self, t: str, radio_group: str | None = None) -> str:
        kind = "radio" if radio_group else "checkbox"
        name = f' name="{radio_group}"' if radio_group else ""
        on = " checked" if self.rng.random() < 0.4 else ""
        return (f'<label data-kind="{kind}" data-text="{_e(t)}"><input type="{kind}"{name}{on}>'
                f"{_e(t)}</label>")

    def row(self, *cells: str) -> str:
        return '<div class="row">' + "".join(cells) + "</div>"

    def field_row(self) -> str:
        return self.row(*[self.field() for _ in range(self.rng.choice([1, 1, 2]))])

    def button_row(self, n: int | None = None) -> str:
        return self.row(*[self.button(t) for t in vocab.pick(self.rng, vocab.BUTTONS,
                                                              n or self.rng.randint(2, 5))])

    def check_row(self) -> str:
        return self.row(*[self.check(t) for t in vocab.pick(self.rng, vocab.CHECKS,
                                                             self.rng.randint(1, 3))])

    def radio_row(self) -> str:
        g = self._id()
        return self.row(self.text(self.rng.choice(vocab.FIELDS)),
                        *[self.check(t, g) for t in vocab.pick(self.rng, vocab.RADIOS,
                                                                self.rng.randint(2, 4))])

    def slider_row(self) -> str:
        w = self.rng.randint(120, 320)
        return self.row(self.text(self.rng.choice(vocab.FIELDS)),
                        f'<input type="range" style="width:{w}px" value='
                        f'"{self.rng.randint(0, 100)}" data-kind="slider">')

    def link_row(self) -> str:
        links = vocab.pick(self.rng, vocab.LINKS, self.rng.randint(1, 3))
        return self.row(*[f'<a class="link" href="#" data-kind="link">{_e(t)}</a>'
                          for t in links])

    def area_row(self) -> str:
        return self.row(f'<textarea rows="{self.rng.randint(3, 5)}" cols='
                        f'"{self.rng.randint(24, 50)}" data-kind="text_area"></textarea>')

    def grid(self) -> str:
        cols = self.rng.randint(2, 5)
        cell = self.rng.choice(["button", "check", "field"])
        cells = []
        for _ in range(cols * self.rng.randint(2, 5)):
            if cell == "button":
                cells.append(self.button(self.rng.choice(vocab.BUTTONS)))
            elif cell == "check":
                cells.append(self.check(self.rng.choice(vocab.CHECKS)))
            else:
                cells.append(f'<input type="text" size="{self.rng.randint(6, 14)}" '
                             f'data-kind="text_field">')
        return f'<div class="grid" style="--cols:{cols}">' + "".join(cells) + "</div>"

    def tabs(self) -> str:
        names = vocab.pick(self.rng, vocab.TABS, self.rng.randint(2, 5))
        return '<div class="tabs" role="tablist">' + "".join(
            f'<button type="button" role="tab" class="tab{" on" if i == 0 else ""}" '
            f'data-kind="tab">{_e(t)}</button>' for i, t in enumerate(names)) + "</div>"

    def menubar(self) -> str:
        return '<nav class="menubar" role="menubar">' + "".join(
            f'<a href="#" role="menuitem" data-kind="menu_item">{_e(t)}</a>'
            for t in vocab.MENUS[: self.rng.randint(3, 7)]) + "</nav>"


ROWS: dict[str, list[tuple[str, float]]] = {
    "form": [("field_row", 5), ("check_row", 1), ("radio_row", 1), ("link_row", 1)],
    "toolbar": [("field_row", 2), ("area_row", 1), ("check_row", 1), ("slider_row", 1)],
    "dialog": [("field_row", 3), ("radio_row", 1), ("check_row", 1), ("link_row", 1)],
    "settings": [("check_row", 3), ("radio_row", 2), ("slider_row", 2), ("field_row", 2)],
    "grid": [("grid", 1), ("field_row", 1)],
}


def page(seed: int) -> tuple[str, dict[str, Any]]:
    """The page of `seed` and its parameters."""
    p = _Page(seed)
    rng = p.rng
    dark = rng.random() < 0.3
    params: dict[str, Any] = {
        "seed": seed, "style": rng.choice(STYLES), "font": rng.choice(FONTS),
        "size": rng.randint(12, 22), "dark": dark, "layout": rng.choice(LAYOUTS),
        "custom_checks": rng.random() < 0.5, "menubar": rng.random() < 0.4,
        "accent": rng.choice(ACCENTS),
    }
    lay = params["layout"]
    names, weights = zip(*ROWS[lay], strict=True)
    parts = []
    if lay == "toolbar":
        parts.append(p.button_row(rng.randint(4, 8)))
    parts.append(f"<h1>{p.text(rng.choice(vocab.HEADINGS))}</h1>")
    if lay == "settings" and rng.random() < 0.6:
        parts.append(p.tabs())
    parts += [getattr(p, rng.choices(names, weights)[0])() for _ in range(rng.randint(3, 8))]
    if lay in ("form", "dialog"):
        parts.append(p.button_row(rng.randint(2, 3)))
    body = "\n".join(parts)
    if lay == "dialog":
        body = f'<div class="dialog">{body}</div>'
    elif lay == "settings" and rng.random() < 0.5:
        body = f"<fieldset><legend>{_e(rng.choice(vocab.HEADINGS))}</legend>{body}</fieldset>"
    bg, fg, panel, field, line, soft = (
        ("#1f2328", "#e6edf3", "#2d333b", "#161b22", "#57606a", "#30363d") if dark else
        (rng.choice(["#ffffff", "#f6f8fa", "#fafafa", "#f0f0f0"]), "#1f2328", "#eaeef2",
         "#ffffff", "#8c959f", "#e5e7eb"))
    top = rng.randint(40, 120) if params["menubar"] else rng.randint(8, 100)
    css_vars = (f":root {{ --font: '{params['font']}'; --size: {params['size']}px; "
                f"--bg: {bg}; --fg: {fg}; --panel: {panel}; --field: {field}; "
                f"--line: {line}; --soft: {soft}; --accent: {params['accent']}; "
                f"--link: {'#58a6ff' if dark else '#0969da'}; --left: {rng.randint(8, 200)}px; "
                f"--top: {top}px; --gap: {rng.randint(8, 18)}px; "
                f"--vgap: {rng.randint(6, 14)}px; }}")
    css = css_vars + BASE_CSS + STYLE_CSS[params["style"]]
    if params["custom_checks"]:
        css += CUSTOM_CHECKS
    if dark:
        css += "\n:root { color-scheme: dark; }"
    menubar = p.menubar() if params["menubar"] else ""
    doc = (f"<!doctype html><html><head><meta charset='utf-8'><style>{css}</style></head>"
           f"<body>{menubar}<main>{body}</main></body></html>")
    return doc, params
