"""Planning: the `Planner` protocol and the rule-based reference planner.

A planner does two things: `plan` turns a task and the first observation into ordered steps
(emitted as the Plan event), and `ground` turns one step into a concrete action on the current
screen (which element, where to click, what to check afterwards). An LLM planner implements the
same two methods: `plan` from a prompt with the goal and the detected elements, `ground` by
choosing an element id from the Detection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from producers.agent.task import Step, Task
from producers.execution.executor import ActionSpec
from producers.execution.verify import Expectation, crop
from producers.perception.pipeline import Observation
from producers.perception.redact import BULLET, SECRET_LABEL, mask_text
from producers.perception.types import Element, iou


class TargetNotFound(LookupError):
    pass


@dataclass
class PlannedStep:
    index: int
    step: Step
    action_kind: str
    target: str | None = None
    params: dict[str, str] = field(default_factory=dict)  # already masked: safe to emit
    secret: bool = False

    def to_record(self, emails: bool = True) -> dict:
        desc, _ = mask_text(self.step.description, emails)
        if self.secret and self.step.text:
            desc = desc.replace(self.step.text, BULLET * len(self.step.text))
        return {"index": self.index, "description": desc, "action_kind": self.action_kind,
                "target": self.target, "params": self.params}


@dataclass
class Grounded:
    spec: ActionSpec
    element: Element | None
    expect: Expectation
    secret: bool = False


class Planner(Protocol):
    name: str

    def plan(self, task: Task, obs: Observation) -> list[PlannedStep]: ...

    def ground(self, planned: PlannedStep, obs: Observation) -> Grounded: ...


_ACTION_OF = {"type": "type", "click": "click", "double_click": "double_click",
              "expect": "wait", "hotkey": "hotkey", "scroll": "scroll", "wait": "wait"}


def _center(e: Element) -> tuple[int, int]:
    x, y, w, h = e.box
    return x + w // 2, y + h // 2


class RulePlanner:
    """Follows the task's steps literally; finds targets by their OCR'd text or label."""

    name = "rules"

    def __init__(self, redact_emails: bool = True) -> None:
        self.emails = redact_emails

    def _is_secret_field(self, step: Step, obs: Observation | None) -> bool:
        if step.kind != "type":
            return False
        if step.label and SECRET_LABEL.search(step.label):
            return True
        if obs is not None and step.label:
            f = obs.find(step.label, ("text_field",))
            return bool(f and f.redacted)
        return False

    def plan(self, task: Task, obs: Observation) -> list[PlannedStep]:
        out = []
        for i, step in enumerate(task.steps):
            secret = self._is_secret_field(step, obs)
            params: dict[str, str] = {}
            if step.text is not None:
                params["text"] = (BULLET * len(step.text) if secret
                                  else mask_text(step.text, self.emails)[0] or "")
            if step.keys:
                params["keys"] = "+".join(step.keys)
            if step.amount:
                params["amount"] = str(step.amount)
            if step.seconds:
                params["seconds"] = f"{step.seconds:g}"
            out.append(PlannedStep(i, step, _ACTION_OF[step.kind], step.label, params, secret))
        return out

    def _find(self, step: Step, obs: Observation) -> Element:
        kinds: tuple[str, ...]
        if step.target_kind:
            kinds = (step.target_kind,)
        else:
            kinds = ("button", "checkbox", "radio", "text_field", "combobox", "tab",
                     "menu_item", "link", "icon", "text")
        el = obs.find(step.label or "", kinds)
        if el is None and step.target_kind in ("button", "checkbox"):
            # a button whose text OCR missed: take a text element and click it
            el = obs.find(step.label or "", ("text",))
        if el is None:
            raise TargetNotFound(f"no {'/'.join(kinds)} labelled {step.label!r} on screen")
        return el

    def ground(self, planned: PlannedStep, obs: Observation) -> Grounded:
        step = planned.step
        if step.kind == "type":
            field_el = self._find(step, obs)
            x, y = _center(field_el)
            secret = planned.secret or field_el.redacted
            if secret:
                expect = Expectation("change_seen", None, field_el.box, 3.0)
            else:
                # the field's own text afterwards: what it held plus the text when appending,
                # else exactly the text; compared as the screen is reported (secrets such as
                # e-mail addresses masked on both sides)
                text = (field_el.text or "") + (step.text or "") if step.append else step.text
                expected = mask_text(text, self.emails)[0]
                expect = Expectation("field_text", expected, field_el.box, 3.0)
            spec = ActionSpec("type", x, y, text=step.text, append=step.append)
            return Grounded(spec, field_el, expect, secret)
        if step.kind in ("click", "double_click"):
            el = self._find(step, obs)
            x, y = _center(el)
            if el.kind in ("checkbox", "radio"):
                # the indicator itself, verified by its own mark
                x = el.box[0] + el.box[2] // 2
                return Grounded(ActionSpec(step.kind, x, y), el,
                                Expectation("state", "toggled", el.box, 2.0,
                                            before=crop(obs, el.box).copy()))
            return Grounded(ActionSpec(step.kind, x, y), el,
                            Expectation("change_seen", None, None, 2.0))
        if step.kind == "expect":
            return Grounded(ActionSpec("wait", seconds=0.0), None,
                            Expectation("text_seen", mask_text(step.text, self.emails)[0], None,
                                        step.timeout_s or 5.0))
        if step.kind == "hotkey":
            return Grounded(ActionSpec("hotkey", keys=step.keys), None, Expectation("none"))
        if step.kind == "scroll":
            return Grounded(ActionSpec("scroll", amount=step.amount), None,
                            Expectation("change_seen", None, None, 2.0))
        if step.kind == "wait":
            return Grounded(ActionSpec("wait", seconds=step.seconds), None, Expectation("none"))
        raise TargetNotFound(f"cannot ground step kind {step.kind!r}")


def same_element(a: Element, b: Element) -> bool:
    return a.kind == b.kind and iou(a.box, b.box) >= 0.5
