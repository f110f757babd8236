"""The reference agent on a real Tk form under Xvfb, real clicks, real Kafka, real ClickHouse.

One run fills Name, Email and Password, presses Submit Order and waits for the confirmation;
the app's own state confirms it. Then: every stage reached Kafka with its causal links, the
sink landed all of it in ClickHouse with the links intact, and no secret (the password, the
card number shown on screen, the e-mail address) appears in any event or stored image.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytesseract
import pytest
from gui_helpers import consume_all, strings_of
from PIL import Image, ImageGrab

pytestmark = [pytest.mark.gui, pytest.mark.integration, pytest.mark.slow]

CARD = "4111 1111 1111 1111"
PASSWORD = "hunter2secret"
EMAIL = "alice@example.com"
TASK = f"""
app: order-form
goal: Place an order for Alice
steps:
  - type "Alice" into the field labelled "Name"
  - type "{EMAIL}" into the field labelled "Email"
  - {{type: "{PASSWORD}", into: Password}}
  - click the button labelled "Submit Order"
  - expect text "Thank you Alice"
"""


def run_agent(tmp_path: Path, agent_id: str) -> subprocess.CompletedProcess[str]:
    task = tmp_path / "task.yaml"
    task.write_text(TASK)
    return subprocess.run(
        [sys.executable, "-m", "clawstream.cli", "agent", "--task", str(task),
         "--agent-id", agent_id, "--json-out"],
        env=dict(os.environ), capture_output=True, text=True, timeout=180)


@pytest.fixture
def agent_run(tk_app, xvfb, cs_settings, tmp_path):
    app = tk_app("form_app", "--card", CARD)
    proc = run_agent(tmp_path, "gui-agent-1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return app, proc, consume_all(cs_settings)


def test_agent_completes_the_form_and_every_stage_is_linked(agent_run, cs_settings) -> None:
    app, _proc, events = agent_run
    state = app.wait_for(lambda s: s["submitted"])
    assert state["values"] == {"name": "Alice", "email": EMAIL, "password": PASSWORD}
    assert any(w["name"] == "status" and "Thank you Alice" in w["text"]
               for w in state["widgets"])

    by_id = {r["envelope"]["event_id"]: (t, r) for t, r in events}
    kinds = [t for t, _ in events]
    assert kinds.count("plan") == 1 and kinds.count("action") == 5
    assert kinds.count("outcome") == 5 and kinds.count("frame") == kinds.count("detection") >= 3

    def parent(r):
        return by_id[r["envelope"]["parent_id"]]

    for t, r in events:
        if t == "detection":
            assert parent(r)[0] == "frame" and r["frame_id"] == r["envelope"]["parent_id"]
        elif t == "plan":
            assert parent(r)[0] == "detection"
        elif t == "action":
            assert parent(r)[0] == "plan" and r["plan_id"] == r["envelope"]["parent_id"]
        elif t == "outcome":
            assert parent(r)[0] == "action" and r["action_id"] == r["envelope"]["parent_id"]
            assert r["status"] == "success", r
            assert r["verification"]["passed"]
        elif t == "frame" and r["envelope"]["parent_id"] is not None:
            assert parent(r)[0] == "action"  # a frame showing an action's effect
    plan = next(r for t, r in events if t == "plan")
    assert [s["action_kind"] for s in plan["steps"]] == ["type", "type", "type", "click", "wait"]
    actions = sorted((r for t, r in events if t == "action"), key=lambda r: r["step_index"])
    submit = actions[3]
    assert submit["kind"] == "click" and submit["target"]["element_kind"] == "button"
    seqs = sorted(r["envelope"]["seq"] for _, r in events)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # one agent, no gaps

    # --- ClickHouse: the sink lands everything with links intact ---
    from consumers import clickhouse as ch
    from consumers.sink import Sink

    Sink(cs_settings, serve_metrics_endpoint=False).run(until_idle=4)
    rows = ch.query(cs_settings, "SELECT event_type, toString(event_id), "
                    "ifNull(toString(parent_id), '') FROM events").rows
    assert sorted(t for t, _, _ in rows) == sorted(kinds)
    ids = {eid: t for t, eid, _ in rows}
    expected_parent = {"detection": "frame", "plan": "detection", "action": "plan",
                       "outcome": "action"}
    for t, _eid, pid in rows:
        if t in expected_parent:
            assert ids.get(pid) == expected_parent[t], (t, pid)
    walked = ch.query(cs_settings, """
        SELECT count() FROM outcomes o
        JOIN actions a ON toString(a.event_id) = o.parent_id
        JOIN plans p ON toString(p.event_id) = a.parent_id
        JOIN detection_frames d ON toString(d.event_id) = p.parent_id
        JOIN frames f ON toString(f.event_id) = d.parent_id""").rows
    assert walked == [(5,)]


def _ocr(img: Image.Image) -> str:
    big = img.convert("L").resize((img.width * 2, img.height * 2))
    return pytesseract.image_to_string(big, config="--psm 11")


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def test_secrets_never_leave_the_machine(agent_run, cs_settings, xvfb) -> None:
    app, proc, events = agent_run
    assert PASSWORD not in proc.stdout
    # the card really is on screen and readable (the check below can fail)
    raw = _ocr(ImageGrab.grab(xdisplay=xvfb.display))
    assert "4111" in raw and EMAIL in raw

    card_digits = _digits(CARD)
    for t, r in events:
        r = dict(r)
        thumb = r.pop("thumbnail", b"")
        assert PASSWORD.encode() not in thumb and CARD.encode() not in thumb
        for s in strings_of(r):
            assert PASSWORD not in s, (t, s)
            assert EMAIL not in s, (t, s)
            assert card_digits not in _digits(s), (t, s)
    frames = [r for t, r in events if t == "frame"]
    assert all(f["redactions"] >= 2 for f in frames)  # password field + card number
    pw = next(w for w in app.state()["widgets"] if w["name"] == "password")
    pw_fields = [e for t, r in events if t == "detection" for e in r["elements"]
                 if e["kind"] == "text_field" and abs(e["bbox"]["y"] - pw["y"]) < 5]
    assert pw_fields and all(e["text"] is None for e in pw_fields)
    typed = next(r for t, r in events if t == "action" and r["step_index"] == 2)
    assert typed["params"]["text"] == "•" * len(PASSWORD)

    blobs = [p for p in (cs_settings.data_dir / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == len({f["image_uri"] for f in frames}) >= 3
    for p in blobs:
        text = _ocr(Image.open(p))
        assert "Card" in text and "Password" in text  # OCR reads the stored image...
        assert "4111" not in text and "1111" not in text, text  # ...but not the secrets
        assert PASSWORD not in text and "alice@" not in text
    for f in frames:
        thumb = Image.open(io.BytesIO(f["thumbnail"]))
        text = _ocr(thumb.resize((thumb.width * 4, thumb.height * 4)))
        assert "4111" not in text and "1111" not in text
