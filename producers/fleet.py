"""Synthetic agent fleets: realistic, causally linked event streams (pure generation, no I/O).

Each agent runs episodes (sessions): a plan for a task in some app, then per plan step a
screen frame, the detections on it, the action, and its outcome; failed steps are retried
once or end the episode; heartbeats come every few seconds of event time. Links follow the
contract: detection -> frame, action -> plan (plan_id, step_index), outcome -> action
(action_id); frames point at the previous action. Outcomes fail at a configurable rate,
scaled per app and action kind, and take a lognormal time per action kind.

Everything is deterministic given the seed (event ids come from a seeded generator), and
each agent emits exactly `events_per_agent` events (fewer when `duration_ms` of simulated time
ends first), then heartbeats only for `linger_ms`, so tests can compute what was sent. The
simulated clock only orders and spaces the events: how they are stamped and paced when sent
(compressed or real time, a skewed agent clock) is the sender's business
(`producers.fleet_cli`).
"""

from __future__ import annotations

import hashlib
import heapq
import io
import math
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

#: Apps and the tasks agents do in them: (goal, [(action_kind, target label, params)]).
TASKS: dict[str, list[tuple[str, list[tuple[str, str, dict[str, str]]]]]] = {
    "notepad": [
        ("write a note and save it", [("click", "Text area", {}), ("type", "Text area",
         {"text": "meeting at 10"}), ("hotkey", "Editor", {"keys": "ctrl+s"}),
         ("type", "File name", {"text": "note.txt"}), ("click", "Save", {})]),
        ("open a file", [("hotkey", "Editor", {"keys": "ctrl+o"}), ("double_click",
         "notes.txt", {}), ("wait", "Editor", {"seconds": "1"})]),
    ],
    "browser": [
        ("search the web", [("click", "Address bar", {}), ("type", "Address bar",
         {"text": "clawstream kafka"}), ("hotkey", "Address bar", {"keys": "enter"}),
         ("wait", "Results", {"seconds": "2"}), ("click", "First result", {}),
         ("scroll", "Page", {"dy": "-600"})]),
        ("fill a form", [("click", "Name", {}), ("type", "Name", {"text": "Ada"}),
         ("click", "Email", {}), ("type", "Email", {"text": "ada@example.com"}),
         ("click", "Accept terms", {}), ("click", "Submit", {})]),
    ],
    "mail": [
        ("reply to the newest mail", [("click", "Inbox", {}), ("double_click", "Newest mail",
         {}), ("click", "Reply", {}), ("type", "Message body", {"text": "Thanks!"}),
         ("click", "Send", {})]),
        ("archive read mails", [("click", "Inbox", {}), ("hotkey", "Inbox", {"keys": "ctrl+a"}),
         ("drag", "Selection", {"to": "Archive"}), ("wait", "Inbox", {"seconds": "1"})]),
    ],
    "sheets": [
        ("sum a column", [("click", "B1", {}), ("drag", "B1:B20", {}), ("click", "Sum", {}),
         ("type", "B21", {"text": "=SUM(B1:B20)"}), ("hotkey", "Sheet", {"keys": "enter"})]),
        ("sort a table", [("click", "A1", {}), ("hotkey", "Sheet", {"keys": "ctrl+a"}),
         ("click", "Data", {}), ("click", "Sort", {}), ("click", "OK", {})]),
    ],
    "terminal": [
        ("run the tests", [("click", "Terminal", {}), ("type", "Prompt", {"text": "make test"}),
         ("hotkey", "Prompt", {"keys": "enter"}), ("wait", "Output", {"seconds": "5"})]),
    ],
}
DEFAULT_APPS: tuple[str, ...] = tuple(TASKS)

#: Lognormal latency per action kind: (median ms, sigma).
LATENCY_MS: dict[str, tuple[float, float]] = {
    "click": (120.0, 0.4), "double_click": (180.0, 0.4), "type": (600.0, 0.5),
    "hotkey": (150.0, 0.4), "scroll": (220.0, 0.5), "drag": (900.0, 0.6),
    "wait": (1500.0, 0.3), "move": (80.0, 0.3), "other": (300.0, 0.6),
}
#: Failure-rate multipliers: some apps and kinds are harder than others.
APP_RISK: dict[str, float] = {"notepad": 0.5, "browser": 1.5, "mail": 1.0, "sheets": 1.2,
                              "terminal": 0.8}
KIND_RISK: dict[str, float] = {"click": 1.0, "double_click": 1.3, "type": 0.6, "hotkey": 0.7,
                               "scroll": 0.5, "drag": 2.5, "wait": 0.3, "move": 0.3, "other": 1.0}
ERRORS: dict[str, list[tuple[str, str]]] = {
    "failure": [("element_not_found", "target element not found on screen"),
                ("verification_failed", "expected text not seen after the action"),
                ("wrong_window", "another window had the focus")],
    "timeout": [("timeout", "no screen change within the timeout")],
}
ELEMENT_KIND = {"click": "button", "double_click": "text", "type": "text_field",
                "hotkey": "window", "scroll": "window", "drag": "other", "wait": "window",
                "move": "other"}


@dataclass(frozen=True)
class FleetConfig:
    """What to simulate. `start_time_ms` fixes event time (default: a fixed epoch)."""

    agents: int = 10
    events_per_agent: int = 1000
    seed: int = 0
    start_time_ms: int = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    apps: tuple[str, ...] = DEFAULT_APPS
    failure_rate: float = 0.05
    timeout_share: float = 0.2  # share of failed outcomes that are timeouts
    heartbeat_interval_ms: int = 10_000
    agent_prefix: str = "agent"
    #: Simulated time after which an agent stops (None: only `events_per_agent` stops it).
    duration_ms: int | None = None
    #: After its work an agent stays alive this long, sending only heartbeats (status idle).
    linger_ms: int = 0
    frame_width: int = 1280
    frame_height: int = 800
    #: (agent_id, outcome GenEvent) -> state-delta bodies to emit after it (CRDT hook).
    state_delta_hook: Callable[[str, GenEvent], list[dict[str, Any]]] | None = field(
        default=None, compare=False)

    def __post_init__(self) -> None:
        unknown = [a for a in self.apps if a not in TASKS]
        if unknown:
            raise ValueError(f"unknown apps {unknown}; known: {sorted(TASKS)}")
        if not self.apps:
            raise ValueError("at least one app is needed")
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError("failure_rate must be within 0..1")
        if self.duration_ms is not None and self.duration_ms <= 0:
            raise ValueError("duration_ms must be positive")


@dataclass(frozen=True)
class GenEvent:
    """One event to emit: everything the envelope needs except seq (the SDK owns that)."""

    agent_id: str
    event_type: str
    body: dict[str, Any]
    event_id: str
    parent_id: str | None
    session_id: str
    event_time: int
    image: bytes | None = None  # full frame image (the claim-check blob), frames only


def agent_id(cfg: FleetConfig, index: int) -> str:
    return f"{cfg.agent_prefix}-{index:04d}"


def agent_ids(cfg: FleetConfig) -> list[str]:
    return [agent_id(cfg, i) for i in range(cfg.agents)]


def failure_probability(cfg: FleetConfig, app: str, kind: str) -> float:
    return min(0.95, cfg.failure_rate * APP_RISK.get(app, 1.0) * KIND_RISK.get(kind, 1.0))


# -- images (tiny, cached: frames stay cheap) -------------------------------------------------
_COLORS = [(235, 235, 235), (40, 44, 52), (250, 250, 210), (220, 235, 250), (245, 225, 225)]


@lru_cache(maxsize=64)
def screen_image(app: str, variant: int) -> tuple[bytes, str, bytes, int, int, str]:
    """(full PNG, sha256 hex, JPEG thumbnail, thumb w, thumb h, phash) of a synthetic screen."""
    from PIL import Image, ImageDraw

    rng = random.Random(f"{app}:{variant}")
    w, h = 320, 200
    img = Image.new("RGB", (w, h), _COLORS[sum(map(ord, app)) % len(_COLORS)])
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, w, 14), fill=(60, 90, 160))
    for _ in range(6):
        x, y = rng.randrange(w - 60), rng.randrange(20, h - 20)
        draw.rectangle((x, y, x + rng.randrange(20, 60), y + 12),
                       fill=tuple(rng.randrange(256) for _ in range(3)))
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    png = buf.getvalue()
    thumb = img.resize((160, 100))
    tbuf = io.BytesIO()
    thumb.save(tbuf, format="JPEG", quality=60)
    gray = list(img.convert("L").resize((8, 8)).tobytes())
    mean = sum(gray) / 64
    phash = f"{sum(1 << i for i, p in enumerate(reversed(gray)) if p >= mean):016x}"
    return png, hashlib.sha256(png).hexdigest(), tbuf.getvalue(), 160, 100, phash


# -- generation -------------------------------------------------------------------------------
class _Agent:
    """The state machine of one synthetic agent."""

    def __init__(self, cfg: FleetConfig, index: int) -> None:
        self.cfg = cfg
        self.id = agent_id(cfg, index)
        self.rng = random.Random(f"clawstream-fleet:{cfg.seed}:{index}")
        self.t = cfg.start_time_ms + index * 137 + self.rng.randrange(1000)
        self.next_heartbeat = self.t
        self.started = self.t
        self.session = ""
        self.last_action: str | None = None

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def lognormal(self, median: float, sigma: float) -> float:
        return self.rng.lognormvariate(math.log(median), sigma)

    def ev(self, event_type: str, body: dict[str, Any], parent: str | None,
           image: bytes | None = None) -> GenEvent:
        return GenEvent(self.id, event_type, body, self.uuid(), parent, self.session, self.t,
                        image)

    def heartbeat_due(self) -> GenEvent | None:
        if self.t < self.next_heartbeat:
            return None
        self.next_heartbeat = self.t + self.cfg.heartbeat_interval_ms
        body = {"status": "ok", "uptime_s": (self.t - self.started) / 1000.0,
                "cpu_percent": round(self.rng.uniform(2, 60), 1),
                "rss_bytes": self.rng.randrange(80, 400) << 20, "queue_depth": 0,
                "spool_depth": 0}
        return self.ev("heartbeat", body, None)

    def frame(self, app: str, step: int) -> GenEvent:
        png, sha, thumb, tw, th, phash = screen_image(app, step % 4)
        n_regions = self.rng.randrange(0, 3)
        regions = [{"x": self.rng.randrange(1200), "y": self.rng.randrange(760),
                    "w": self.rng.randrange(10, 300), "h": self.rng.randrange(10, 120)}
                   for _ in range(n_regions)]
        body = {"app": app, "width": self.cfg.frame_width, "height": self.cfg.frame_height,
                "phash": phash, "change_ratio": round(self.rng.uniform(0.01, 0.6), 4),
                "changed_regions": regions, "thumbnail": thumb, "thumbnail_format": "jpeg",
                "thumb_width": tw, "thumb_height": th, "image_uri": f"cas://sha256/{sha}",
                "image_sha256": sha, "redactions": 0}
        return self.ev("frame", body, self.last_action, image=png)

    def detection(self, app: str, frame: GenEvent, label: str, kind: str) -> GenEvent:
        elements = []
        for i in range(self.rng.randrange(3, 9)):
            is_target = i == 0
            ekind = ELEMENT_KIND.get(kind, "other") if is_target else self.rng.choice(
                ["button", "text", "text_field", "icon", "checkbox"])
            ocr = round(self.rng.uniform(0.6, 0.99), 3)
            elements.append({
                "element_id": f"el-{i}",
                "kind": ekind,
                "bbox": {"x": self.rng.randrange(1200), "y": self.rng.randrange(760),
                         "w": self.rng.randrange(20, 240), "h": self.rng.randrange(16, 48)},
                "text": label if is_target else self.rng.choice(["File", "Edit", "OK", "Cancel",
                                                                 "Help", None]),
                "confidence": round(self.rng.uniform(0.7, 1.0), 3),
                "ocr_confidence": ocr,
                "source": "synthetic",
                "interactable": ekind in ("button", "text_field", "checkbox"),
            })
        self.t += int(self.lognormal(120, 0.3))
        return self.ev("detection", {"app": app, "frame_id": frame.event_id,
                                     "elements": elements,
                                     "duration_ms": round(self.lognormal(120, 0.3), 2)},
                       frame.event_id)

    def episode(self) -> Iterator[GenEvent]:
        cfg, rng = self.cfg, self.rng
        app = rng.choice(cfg.apps)
        goal, steps = rng.choice(TASKS[app])
        self.session = self.uuid()
        self.last_action = None
        self.t += int(self.lognormal(4000, 0.7))  # idle between episodes
        plan = self.ev("plan", {
            "app": app, "goal": goal, "planner": "rules",
            "steps": [{"index": i, "description": f"{k} {label}", "action_kind": k,
                       "target": label, "params": dict(p)}
                      for i, (k, label, p) in enumerate(steps)],
        }, None)
        yield plan
        for index, (kind, label, params) in enumerate(steps):
            for attempt in range(2):
                hb = self.heartbeat_due()
                if hb is not None:
                    yield hb
                self.t += int(self.lognormal(700, 0.6))  # think time
                frame = self.frame(app, index)
                yield frame
                yield self.detection(app, frame, label, kind)
                self.t += int(self.lognormal(60, 0.3))
                action = self.ev("action", {
                    "app": app, "plan_id": plan.event_id, "step_index": index, "kind": kind,
                    "target": {"label": label, "element_id": "el-0",
                               "element_kind": ELEMENT_KIND.get(kind, "other"),
                               "x": rng.randrange(1280), "y": rng.randrange(800), "bbox": None},
                    "params": dict(params), "executor": "synthetic",
                }, plan.event_id)
                yield action
                self.last_action = action.event_id
                median, sigma = LATENCY_MS.get(kind, LATENCY_MS["other"])
                duration = self.lognormal(median, sigma)
                failed = rng.random() < failure_probability(cfg, app, kind)
                if failed:
                    status = "timeout" if rng.random() < cfg.timeout_share else "failure"
                    error_kind, error = rng.choice(ERRORS[status])
                    if status == "timeout":
                        duration = max(duration, 5000.0)
                else:
                    status, error_kind, error = "success", None, None
                self.t += max(1, int(duration))
                outcome = self.ev("outcome", {
                    "action_id": action.event_id, "app": app, "action_kind": kind,
                    "status": status, "duration_ms": round(duration, 3), "error": error,
                    "error_kind": error_kind,
                    "verification": {"method": "text_seen", "expected": label,
                                     "observed": label if not failed else None,
                                     "passed": not failed},
                    "executor": "synthetic",
                }, action.event_id)
                yield outcome
                if cfg.state_delta_hook is not None:
                    for body in cfg.state_delta_hook(self.id, outcome) or []:
                        yield self.ev("state_delta", body, outcome.event_id)
                if not failed:
                    break
                if attempt == 0 and rng.random() < 0.5:
                    continue  # retry the step once
                return  # give up: the episode ends here

    def events(self) -> Iterator[GenEvent]:
        last = self.t
        for ev in self.work():
            last = ev.event_time
            yield ev
        yield from self.linger(last)

    def work(self) -> Iterator[GenEvent]:
        n = self.cfg.events_per_agent
        end = (self.cfg.start_time_ms + self.cfg.duration_ms
               if self.cfg.duration_ms is not None else None)
        emitted = 0
        while emitted < n:
            for ev in self.episode():
                if end is not None and ev.event_time >= end:
                    return
                yield ev
                emitted += 1
                if emitted >= n:
                    return

    def linger(self, last: int) -> Iterator[GenEvent]:
        """Idle but alive after the work: heartbeats every interval for `linger_ms`, as a
        real agent keeps sending them (they move event time on without opening episodes)."""
        t, until = last, last + self.cfg.linger_ms
        while t + self.cfg.heartbeat_interval_ms <= until:
            t += self.cfg.heartbeat_interval_ms
            self.t = self.next_heartbeat = t
            hb = self.heartbeat_due()
            assert hb is not None
            hb.body["status"] = "idle"
            yield hb


def generate_agent(cfg: FleetConfig, index: int) -> Iterator[GenEvent]:
    """Exactly `cfg.events_per_agent` events of agent `index`, in event-time order."""
    return _Agent(cfg, index).events()


def generate_fleet(cfg: FleetConfig) -> Iterator[GenEvent]:
    """Every agent's events, merged by event time (ties by agent), as a fleet would send."""
    def keyed(i: int) -> Iterator[tuple[int, int, int, GenEvent]]:
        for n, ev in enumerate(generate_agent(cfg, i)):
            yield ev.event_time, i, n, ev

    streams = [keyed(i) for i in range(cfg.agents)]
    for _t, _i, _n, ev in heapq.merge(*streams):
        yield ev


def simulated_span_ms(cfg: FleetConfig) -> int:
    """How much simulated time the fleet's events cover: from `cfg.start_time_ms` to the last
    event of the slowest agent (a dry run of the generation, on a copy of the stateful CRDT
    hook so the real run still starts fresh)."""
    import copy

    dry = copy.deepcopy(cfg)
    last = cfg.start_time_ms
    for i in range(cfg.agents):
        for ev in generate_agent(dry, i):
            last = max(last, ev.event_time)
    return last - cfg.start_time_ms


def expected_counts(cfg: FleetConfig) -> dict[str, int]:
    """Events per type the fleet sends (what end-to-end tests compare against). A stateful
    `state_delta_hook` must be fresh (see `producers.fleet_cli.build_config`)."""
    counts: Counter[str] = Counter()
    for i in range(cfg.agents):
        counts.update(ev.event_type for ev in generate_agent(cfg, i))
    return dict(counts)
