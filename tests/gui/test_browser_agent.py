"""The reference agent in a real browser: Debian's Chromium shows a local form (served by this
test) full screen on Xvfb; `clawstream agent --task` fills it with real pyautogui clicks and
keys, verifying by what it sees, and streams its events to the real broker. The page's own
state and the events read back from Kafka are checked."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gui_helpers import consume_all

from corpus.browser import launch_chromium

pytestmark = [pytest.mark.gui, pytest.mark.integration, pytest.mark.slow]

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Sign up</title>
<style>
 body { font-family: 'DejaVu Sans'; font-size: 16px; margin: 48px 64px; background: #f4f4f4; }
 form { display: grid; grid-template-columns: 140px auto; gap: 22px 16px; align-items: center;
        width: 520px; }
 input[type=text] { width: 280px; padding: 4px; }
 .full { grid-column: 2; }
</style></head><body>
<h1>Sign up</h1>
<form id="f">
  <label for="name">Name</label><input type="text" id="name" value="Bob">
  <label for="city">City</label><input type="text" id="city">
  <label class="full"><input type="checkbox" id="news"> Subscribe to news</label>
  <div class="full"><button type="submit">Create account</button></div>
</form>
<p id="status"></p>
<script>
 window.submitted = null;
 document.getElementById('f').addEventListener('submit', ev => {
   ev.preventDefault();
   const v = id => document.getElementById(id);
   window.submitted = {name: v('name').value, city: v('city').value, news: v('news').checked};
   v('status').textContent = 'Welcome ' + v('name').value;
 });
</script></body></html>"""

TASK = """app: signup-page
goal: Sign Dana up from Oslo
steps:
  - type "Dana" into the field labelled "Name"
  - type "Oslo" into the field labelled "City"
  - tick the check box labelled "Subscribe to news"
  - click the button labelled "Create account"
  - expect text "Welcome Dana"
"""


@pytest.fixture
def served_page(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "signup.html").write_text(PAGE)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(tmp_path), **kw)

        def log_message(self, *_a) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/signup.html"
    server.shutdown()


@pytest.fixture
def chromium_page(xvfb, served_page):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_chromium(pw, args=["--kiosk", "--window-position=0,0",
                                            f"--window-size={xvfb.width},{xvfb.height}"])
        try:
            page = browser.new_page(no_viewport=True)
            page.goto(served_page)
            page.wait_for_function("document.fonts.status === 'loaded'")
            time.sleep(1.0)  # the window maps and paints
            yield page
        finally:
            browser.close()


def test_agent_fills_a_form_in_chromium(chromium_page, cs_settings, tmp_path) -> None:
    task = tmp_path / "task.yaml"
    task.write_text(TASK)
    proc = subprocess.run(
        [sys.executable, "-m", "clawstream.cli", "agent", "--task", str(task),
         "--agent-id", "browser-agent", "--json-out"],
        env=dict(os.environ), capture_output=True, text=True, timeout=180)
    out = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
    assert proc.returncode == 0, json.dumps(out.get("steps")) + proc.stderr[-2000:]

    # the page's own state: what a user relies on
    assert chromium_page.evaluate("window.submitted") == {"name": "Dana", "city": "Oslo",
                                                          "news": True}
    assert chromium_page.inner_text("#status") == "Welcome Dana"
    methods = [s["verification"]["method"] for s in out["steps"]]
    assert methods == ["field_text", "field_text", "state", "change_seen", "text_seen"]

    events = consume_all(cs_settings)
    kinds = [t for t, _ in events]
    assert kinds.count("plan") == 1 and kinds.count("action") == 5
    assert kinds.count("outcome") == 5 and kinds.count("frame") == kinds.count("detection") >= 3
    outcomes = [r for t, r in events if t == "outcome"]
    assert all(r["status"] == "success" and r["verification"]["passed"] for r in outcomes)
    actions = sorted((r for t, r in events if t == "action"), key=lambda r: r["step_index"])
    assert [a["kind"] for a in actions] == ["type", "type", "click", "click", "wait"]
    assert actions[0]["params"] == {"text": "Dana", "mode": "replace"}
    assert actions[2]["target"]["element_kind"] == "checkbox"
    assert actions[3]["target"]["element_kind"] == "button"
    assert all(r["app"] == "signup-page" for t, r in events if t in ("action", "outcome"))
