"""Task files: YAML with a goal and steps, written as sentences or as small mappings.

```yaml
app: order-form
goal: Place an order for Alice
steps:
  - type "Alice" into the field labelled "Name"      # replaces what the field held
  - append " Smith" to the field labelled "Name"     # adds to it
  - {type: "s3cret!", into: Password}
  - {type: "-2", into: Reference, append: true}
  - click the button labelled "Submit Order"
  - expect text "Thank you Alice"
  - press ctrl+s
  - scroll down 3
  - wait 0.5 seconds
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class TaskError(ValueError):
    pass


@dataclass
class Step:
    kind: str  # type | click | double_click | expect | hotkey | scroll | wait
    description: str
    text: str | None = None
    label: str | None = None
    target_kind: str | None = None  # button | text_field | checkbox | text
    keys: list[str] = field(default_factory=list)
    amount: int = 0
    seconds: float = 0.0
    timeout_s: float | None = None
    append: bool = False  # type: add to the field's text instead of replacing it


@dataclass
class Task:
    goal: str
    steps: list[Step]
    app: str = ""
    step_timeout_s: float = 5.0


_Q = r"""["“']?(?P<{name}>.+?)["”']?"""
_KIND = {"button": "button", "field": "text_field", "entry": "text_field",
         "checkbox": "checkbox", "check box": "checkbox", "radio": "radio",
         "radio button": "radio", "text": "text", "link": "link", "tab": "tab",
         "menu": "menu_item", "combobox": "combobox"}
_KINDS_RE = "|".join(sorted(_KIND, key=len, reverse=True))
_SENTENCES: list[tuple[str, re.Pattern[str]]] = [
    ("type", re.compile(r"^(?:type|enter|fill in)\s+" + _Q.format(name="text")
                        + r"\s+(?:into|in)\s+(?:the\s+)?(?:(?:text\s+)?(?:field|entry|box)\s+)?"
                        + r"(?:labell?ed\s+|called\s+|named\s+)?" + _Q.format(name="label") + "$",
                        re.I)),
    ("append", re.compile(r"^append\s+" + _Q.format(name="text")
                          + r"\s+to\s+(?:the\s+)?(?:(?:text\s+)?(?:field|entry|box)\s+)?"
                          + r"(?:labell?ed\s+|called\s+|named\s+)?" + _Q.format(name="label")
                          + "$", re.I)),
    ("double_click", re.compile(r"^double[- ]?click\s+(?:on\s+)?(?:the\s+)?"
                                r"(?:(?P<kind>" + _KINDS_RE + r")\s+)?"
                                r"(?:labell?ed\s+|called\s+|named\s+)?" + _Q.format(name="label")
                                + "$", re.I)),
    ("click", re.compile(r"^(?:click|press|check|tick)\s+(?:on\s+)?(?:the\s+)?"
                         r"(?:(?P<kind>" + _KINDS_RE + r")\s+)?"
                         r"(?:labell?ed\s+|called\s+|named\s+)" + _Q.format(name="label") + "$",
                         re.I)),
    ("click", re.compile(r"^click\s+(?:on\s+)?(?:the\s+)?" + _Q.format(name="label")
                         + r"(?:\s+(?P<kind>button|field|checkbox|link))?$", re.I)),
    ("expect", re.compile(r"^(?:expect|see|verify|wait for)\s+(?:the\s+)?(?:text\s+)?"
                          + _Q.format(name="text") + "$", re.I)),
    ("hotkey", re.compile(r"^(?:press|hotkey)\s+(?:keys?\s+)?(?P<keys>[\w]+(?:\s*\+\s*[\w]+)*)$",
                          re.I)),
    ("scroll", re.compile(r"^scroll\s+(?P<dir>up|down)(?:\s+(?P<n>\d+))?$", re.I)),
    ("wait", re.compile(r"^wait\s+(?P<s>[\d.]+)\s*(?:s|sec|secs|seconds?)?$", re.I)),
]


def parse_sentence(text: str) -> Step:
    s = text.strip().rstrip(".")
    for kind, pat in _SENTENCES:
        m = pat.match(s)
        if not m:
            continue
        g = m.groupdict()
        if kind in ("type", "append"):
            return Step("type", s, text=g["text"], label=g["label"], target_kind="text_field",
                        append=kind == "append")
        if kind in ("click", "double_click"):
            k = _KIND.get((g.get("kind") or "").lower())
            return Step(kind, s, label=g["label"], target_kind=k)
        if kind == "expect":
            return Step("expect", s, text=g["text"])
        if kind == "hotkey":
            return Step("hotkey", s, keys=[k.strip().lower() for k in g["keys"].split("+")])
        if kind == "scroll":
            n = int(g["n"] or 3)
            return Step("scroll", s, amount=n if g["dir"].lower() == "up" else -n)
        if kind == "wait":
            return Step("wait", s, seconds=float(g["s"]))
    raise TaskError(f"cannot understand step: {text!r}")


def parse_mapping(m: dict[str, Any]) -> Step:
    timeout = m.get("timeout")
    if "type" in m:
        label = m.get("into") or m.get("field")
        if not label:
            raise TaskError(f"type step needs 'into': {m}")
        append = bool(m.get("append", False))
        step = Step("type", f"{'append' if append else 'type'} {m['type']!r} into {label!r}",
                    text=str(m["type"]), label=str(label), target_kind="text_field",
                    append=append)
    elif "click" in m or "double_click" in m:
        kind = "click" if "click" in m else "double_click"
        step = Step(kind, f"{kind} {m[kind]!r}", label=str(m[kind]),
                    target_kind=_KIND.get(str(m.get("kind", "")).lower()))
    elif "expect" in m:
        step = Step("expect", f"expect text {m['expect']!r}", text=str(m["expect"]))
    elif "hotkey" in m or "press" in m:
        keys = str(m.get("hotkey") or m.get("press"))
        step = Step("hotkey", f"press {keys}", keys=[k.strip().lower() for k in keys.split("+")])
    elif "scroll" in m:
        step = Step("scroll", f"scroll {m['scroll']}", amount=int(m["scroll"]))
    elif "wait" in m:
        step = Step("wait", f"wait {m['wait']} s", seconds=float(m["wait"]))
    else:
        raise TaskError(f"unknown step: {m}")
    step.timeout_s = float(timeout) if timeout is not None else None
    return step


def load_task(source: str | Path | dict[str, Any]) -> Task:
    data = source if isinstance(source, dict) else yaml.safe_load(Path(source).read_text())
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise TaskError("a task file is a mapping with a 'steps' list")
    steps = [parse_sentence(s) if isinstance(s, str) else parse_mapping(s) for s in data["steps"]]
    if not steps:
        raise TaskError("a task needs at least one step")
    return Task(goal=str(data.get("goal") or steps[0].description), steps=steps,
                app=str(data.get("app", "")),
                step_timeout_s=float(data.get("step_timeout", 5.0)))
