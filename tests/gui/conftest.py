"""GUI test fixtures: one private Xvfb server for the session, and Tk apps under it.

Xvfb picks a free display number itself (`-displayfd`), so parallel runs never collide; its
output goes to a file; it is stopped at the end of the session. DISPLAY, XDG_SESSION_TYPE=x11
and an existing ~/.Xauthority are what pyautogui / python-xlib need (see ENVIRONMENT.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

APPS = Path(__file__).resolve().parent / "apps"
SCREEN = (1280, 800)


@dataclass
class XServer:
    display: str
    width: int
    height: int
    log: Path


@pytest.fixture(scope="session")
def xvfb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XServer]:
    for tool, pkg in (("Xvfb", "xvfb"), ("tesseract", "tesseract-ocr")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install {pkg}; make test does it)")
    logdir = tmp_path_factory.mktemp("xvfb")
    log = logdir / "xvfb.log"
    read_fd, write_fd = os.pipe()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0",
             f"{SCREEN[0]}x{SCREEN[1]}x24", "-nolisten", "tcp", "-noreset"],
            stdout=out, stderr=subprocess.STDOUT, pass_fds=(write_fd,),
        )
    os.close(write_fd)
    number = b""
    deadline = time.monotonic() + 20
    with os.fdopen(read_fd, "rb") as r:
        while not number.endswith(b"\n") and time.monotonic() < deadline:
            chunk = r.read(1)
            if not chunk:
                break
            number += chunk
    if not number.strip():
        proc.kill()
        pytest.fail(f"Xvfb did not report a display; see {log}")
    display = f":{int(number)}"
    xauth = Path.home() / ".Xauthority"
    xauth.touch(exist_ok=True)
    saved = {k: os.environ.get(k) for k in ("DISPLAY", "XDG_SESSION_TYPE")}
    os.environ["DISPLAY"] = display
    os.environ["XDG_SESSION_TYPE"] = "x11"
    try:
        yield XServer(display, SCREEN[0], SCREEN[1], log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class TkApp:
    """A Tk test application running as its own process; reads its ground-truth JSON."""

    def __init__(self, proc: subprocess.Popen, state_file: Path, log: Path) -> None:
        self.proc = proc
        self.state_file = state_file
        self.log = log

    def state(self) -> dict:
        return json.loads(self.state_file.read_text())

    def wait_for(self, pred: Callable[[dict], bool], timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        last: dict = {}
        while time.monotonic() < deadline:
            try:
                last = self.state()
                if pred(last):
                    return last
            except (FileNotFoundError, json.JSONDecodeError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"app state never matched; last={last}; log={self.log.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def tk_app(xvfb: XServer, tmp_path: Path) -> Iterator[Callable[..., TkApp]]:
    """Start `tests/gui/apps/<name>.py` under the Xvfb display; stopped after the test."""
    started: list[TkApp] = []

    def start(name: str, *args: str) -> TkApp:
        state = tmp_path / f"{name}-state.json"
        log = tmp_path / f"{name}.log"
        env = {**os.environ, "DISPLAY": xvfb.display}
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, str(APPS / f"{name}.py"), "--state", str(state), *args],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )
        app = TkApp(proc, state, log)
        started.append(app)
        app.wait_for(lambda s: s.get("ready") is True, timeout=20)
        time.sleep(0.3)  # let the X server finish painting
        return app

    yield start
    for app in started:
        app.stop()
