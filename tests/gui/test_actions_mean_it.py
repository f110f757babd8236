"""Actions that mean what they say, through `clawstream agent` on a real Tk app (Xvfb, real
clicks and keys, events to the real broker): typing replaces a field's text unless the step
says to append, and each step is verified by its target's own content or state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.gui, pytest.mark.integration, pytest.mark.slow]


def run_agent(tmp_path: Path, steps: list[str]) -> tuple[int, dict]:
    task = tmp_path / "task.yaml"
    task.write_text("app: profile\ngoal: edit the profile\nsteps:\n"
                    + "".join(f"  - {s}\n" for s in steps))
    proc = subprocess.run(
        [sys.executable, "-m", "clawstream.cli", "agent", "--task", str(task),
         "--agent-id", "actions-agent", "--json-out"],
        env=dict(os.environ), capture_output=True, text=True, timeout=180)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1])


def test_typing_replaces_appends_and_ticks_verified_by_the_target(tk_app, cs_settings,
                                                                   tmp_path) -> None:
    app = tk_app("profile_app")
    code, out = run_agent(tmp_path, [
        "type 'Carol' into the field labelled 'Name'",
        "append ' Mitte' to the field labelled 'City'",
        "tick the check box labelled 'Remember me'",
        "click the button labelled 'Save'",
        "expect text 'Saved Carol'",
    ])
    assert code == 0, json.dumps(out["steps"])
    state = app.wait_for(lambda s: s["saved"] is not None)
    assert state["values"]["name"] == "Carol"  # not "BobCarol"
    assert state["values"]["city"] == "Berlin Mitte"
    assert state["remember"] is True and state["saved"] == "Carol"
    name, city, tick = (s["verification"] for s in out["steps"][:3])
    assert name["method"] == "field_text" and name["expected"] == "Carol" and name["passed"]
    assert city["method"] == "field_text" and city["expected"] == "Berlin Mitte"
    assert tick["method"] == "state" and tick["passed"]


def test_a_step_whose_target_did_not_change_fails(tk_app, cs_settings, tmp_path) -> None:
    """The Account field is read-only: typing changes nothing there. "Carol" is on screen
    (in another line), which must not count as success."""
    app = tk_app("profile_app")
    code, out = run_agent(tmp_path, ["type 'Carol' into the field labelled 'Account'"])
    assert code == 1
    (step,) = out["steps"]
    assert step["status"] != "success" and "verification failed" in step["error"]
    v = step["verification"]
    assert v["method"] == "field_text" and not v["passed"]
    assert "Carol" not in v["observed"]  # the field still reads what it held
    assert app.state()["values"]["account"] == "A-1027"
