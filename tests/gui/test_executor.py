"""pyautogui execution against a real Tk app under Xvfb: the app's state is the judge."""

from __future__ import annotations

import time

import pytest

from producers.execution.executor import ActionSpec, Executor

pytestmark = [pytest.mark.gui]


def center(w: dict) -> tuple[int, int]:
    return w["x"] + w["w"] // 2, w["y"] + w["h"] // 2


def test_click_type_hotkey_change_the_app(tk_app, xvfb) -> None:
    app = tk_app("form_app")
    widgets = {w["name"]: w for w in app.state()["widgets"]}
    ex = Executor(rate_limit=20, display=xvfb.display)
    x, y = center(widgets["email"])
    res = ex.run(ActionSpec("type", x, y, text="bob@example.org"))
    assert res.ok and res.error is None and res.duration_ms > 0
    app.wait_for(lambda s: s["values"]["email"] == "bob@example.org")
    assert ex.run(ActionSpec("hotkey", keys=["backspace"])).ok
    app.wait_for(lambda s: s["values"]["email"] == "bob@example.or")
    assert ex.run(ActionSpec("click", *center(widgets["subscribe"]))).ok
    app.wait_for(lambda s: s["subscribe"] is True)
    assert ex.run(ActionSpec("double_click", *center(widgets["cancel"]))).ok
    app.wait_for(lambda s: s["cancelled"] is True)
    assert ex.run(ActionSpec("scroll", x, y, amount=-2)).ok
    assert ex.run(ActionSpec("wait", seconds=0.05)).ok


def test_refusals_and_failsafe(xvfb) -> None:
    ex = Executor(rate_limit=50, display=xvfb.display)
    out = ex.run(ActionSpec("click", 5000, 10))
    assert not out.ok and out.error_kind == "out_of_bounds"
    out = ex.run(ActionSpec("click", 0, 0))
    assert not out.ok and out.error_kind == "out_of_bounds" and "failsafe" in out.error
    assert ex.run(ActionSpec("hotkey", keys=["nosuchkey"])).error_kind == "bad_params"
    assert ex.run(ActionSpec("teleport", 1, 1)).error_kind == "unsupported"
    # a human throws the mouse into a corner: the next action trips the failsafe, all stop
    ex.gui.FAILSAFE = False
    ex.gui.moveTo(0, 0)
    ex.gui.FAILSAFE = True
    out = ex.run(ActionSpec("click", 100, 100))
    assert not out.ok and out.error_kind == "failsafe"
    assert ex.run(ActionSpec("click", 100, 100)).error_kind == "halted"
    ex.gui.FAILSAFE = False
    ex.gui.moveTo(640, 400)
    ex.gui.FAILSAFE = True


def test_rate_limit_applies_to_real_actions(xvfb) -> None:
    ex = Executor(rate_limit=10, display=xvfb.display)
    t0 = time.monotonic()
    for i in range(4):
        assert ex.run(ActionSpec("move", 300 + i, 300)).ok
    assert time.monotonic() - t0 >= 0.3 * 0.9
