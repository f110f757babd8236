"""Runs GUI actions with pyautogui, safely.

Safety rails, and why:
- bounds: a point outside the screen, or on one of pyautogui's failsafe corners, is refused
  before the mouse moves (moving into a corner would trip the failsafe on the next call);
- failsafe: pyautogui.FAILSAFE stays on -- a human who slams the mouse into a corner stops the
  agent; the executor then halts and refuses every later action;
- rate limit: at most `rate_limit` actions per second (a runaway planner cannot flood the UI).
pyautogui is imported lazily: it needs $DISPLAY at import time.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

ACTION_KINDS = ("click", "double_click", "type", "hotkey", "scroll", "drag", "wait", "move")


class ActionRefused(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


@dataclass
class ActionSpec:
    kind: str
    x: int | None = None
    y: int | None = None
    text: str | None = None
    keys: list[str] = field(default_factory=list)
    amount: int = 0  # scroll clicks (positive = up)
    to_x: int | None = None
    to_y: int | None = None
    seconds: float = 0.0
    button: str = "left"
    #: type: add to what the field holds instead of replacing it
    append: bool = False

    def params(self) -> dict[str, str]:
        """String params for the Action event (the caller masks secrets)."""
        out: dict[str, str] = {}
        if self.text is not None:
            out["text"] = self.text
        if self.kind == "type":
            out["mode"] = "append" if self.append else "replace"
        if self.keys:
            out["keys"] = "+".join(self.keys)
        if self.kind == "scroll":
            out["amount"] = str(self.amount)
        if self.to_x is not None and self.to_y is not None:
            out["to"] = f"{self.to_x},{self.to_y}"
        if self.seconds:
            out["seconds"] = f"{self.seconds:g}"
        if self.kind in ("click", "double_click") and self.button != "left":
            out["button"] = self.button
        return out


@dataclass
class ExecResult:
    ok: bool
    duration_ms: float
    error: str | None = None
    error_kind: str | None = None


class RateLimiter:
    """At most `rate` acquisitions per second (evenly spaced)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0

    def acquire(self) -> float:
        now = time.monotonic()
        wait = max(0.0, self._next - now)
        if wait:
            time.sleep(wait)
        self._next = max(now, self._next) + self.interval
        return wait


class Executor:
    def __init__(self, *, rate_limit: float = 5.0, pause: float = 0.03,
                 type_interval: float = 0.01, display: str | None = None) -> None:
        if display:
            os.environ["DISPLAY"] = display
        import pyautogui

        self.gui: Any = pyautogui
        pyautogui.FAILSAFE = True
        pyautogui.PAUSE = pause
        self.type_interval = type_interval
        self.limiter = RateLimiter(rate_limit)
        self.halted: str | None = None
        self.screen = tuple(pyautogui.size())

    def check_point(self, x: int | None, y: int | None) -> tuple[int, int]:
        if x is None or y is None:
            raise ActionRefused("bad_target", "action needs x and y")
        w, h = self.screen
        if not (0 <= x < w and 0 <= y < h):
            raise ActionRefused("out_of_bounds", f"({x},{y}) is outside the {w}x{h} screen")
        if (x, y) in {tuple(p) for p in self.gui.FAILSAFE_POINTS}:
            raise ActionRefused("out_of_bounds", f"({x},{y}) is a failsafe corner")
        return int(x), int(y)

    def run(self, spec: ActionSpec) -> ExecResult:
        """Perform one action; never raises (errors are in the result)."""
        t0 = time.perf_counter()
        if self.halted:
            return ExecResult(False, 0.0, f"executor halted: {self.halted}", "halted")
        try:
            if spec.kind not in ACTION_KINDS:
                raise ActionRefused("unsupported", f"unknown action kind {spec.kind!r}")
            if spec.kind != "wait":
                self.limiter.acquire()
            t0 = time.perf_counter()
            self._do(spec)
            return ExecResult(True, (time.perf_counter() - t0) * 1e3)
        except ActionRefused as exc:
            return ExecResult(False, (time.perf_counter() - t0) * 1e3, str(exc), exc.kind)
        except self.gui.FailSafeException as exc:
            self.halted = "failsafe (mouse in a screen corner)"
            return ExecResult(False, (time.perf_counter() - t0) * 1e3, str(exc), "failsafe")
        except Exception as exc:  # an X error or similar: report it, keep the agent alive
            return ExecResult(False, (time.perf_counter() - t0) * 1e3,
                              f"{type(exc).__name__}: {exc}", "executor_error")

    def _clear_field(self) -> None:
        """Select the focused field's line and delete it. End, Shift+Home, BackSpace mean the
        same in Tk entries (classic and ttk), spin boxes and browser inputs; Ctrl+A does not
        (in Tk on X11 it moves to the line start). The last End clears the selection anchor
        Tk keeps after selecting in an empty entry (a later BackSpace would do nothing)."""
        g = self.gui
        g.press("end")
        g.hotkey("shift", "home")
        g.press("backspace")
        g.press("end")

    def _do(self, s: ActionSpec) -> None:
        g = self.gui
        if s.kind == "click":
            g.click(*self.check_point(s.x, s.y), button=s.button)
        elif s.kind == "double_click":
            g.doubleClick(*self.check_point(s.x, s.y), button=s.button)
        elif s.kind == "move":
            g.moveTo(*self.check_point(s.x, s.y))
        elif s.kind == "type":
            if s.text is None:
                raise ActionRefused("bad_params", "type needs text")
            if s.x is not None:
                g.click(*self.check_point(s.x, s.y))
            if not s.append:
                self._clear_field()
            g.write(s.text, interval=self.type_interval)
        elif s.kind == "hotkey":
            if not s.keys or any(k not in g.KEYBOARD_KEYS for k in s.keys):
                raise ActionRefused("bad_params", f"unknown keys {s.keys}")
            g.hotkey(*s.keys)
        elif s.kind == "scroll":
            if s.x is not None:
                self.check_point(s.x, s.y)
            g.scroll(s.amount, x=s.x, y=s.y)
        elif s.kind == "drag":
            start = self.check_point(s.x, s.y)
            end = self.check_point(s.to_x, s.to_y)
            g.moveTo(*start)
            g.dragTo(*end, duration=0.2, button=s.button)
        elif s.kind == "wait":
            time.sleep(max(0.0, s.seconds))
