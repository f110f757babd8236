"""The reference agent: perceive -> plan -> act -> verify, each stage an event.

Causal links (envelope.parent_id), so a trace can be walked back from any outcome:
    frame  (parent: the action whose effect it shows, or none for the first frame)
    detection -> frame
    plan      -> the detection it was made from
    action    -> plan            (plan_id and step_index too)
    outcome   -> action          (action_id too)
Only redacted data is emitted: the frame image/thumbnail come from the redacted frame,
detections carry masked text, and text typed into a password field is replaced by bullets in
the plan and the action.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from producers.agent.planner import Grounded, PlannedStep, Planner, RulePlanner, TargetNotFound
from producers.agent.task import Task
from producers.execution.executor import ExecResult, Executor
from producers.execution.verify import Expectation, VerifyResult, poll
from producers.perception.pipeline import Observation, Perception
from producers.perception.redact import BULLET, mask_text

log = logging.getLogger(__name__)


class EventClient(Protocol):
    """The part of producers.sdk.AgentClient the agent uses."""

    def frame(self, image: Any = None, **kw: Any) -> str: ...
    def detection(self, frame_id: str, elements: Any, **kw: Any) -> str: ...
    def plan(self, goal: str, steps: Any, **kw: Any) -> str: ...
    def action(self, kind: str, **kw: Any) -> str: ...
    def outcome(self, action_id: str, status: str, duration_ms: float, **kw: Any) -> str: ...


@dataclass
class StepResult:
    index: int
    description: str
    action_id: str
    status: str
    error: str | None = None
    verification: VerifyResult | None = None
    #: the verification as emitted in the Outcome (secrets masked): safe to print
    checked: dict[str, Any] | None = None


@dataclass
class RunResult:
    ok: bool
    plan_id: str | None
    steps: list[StepResult] = field(default_factory=list)
    frames: int = 0
    detections: int = 0


class Agent:
    def __init__(self, perception: Perception, executor: Executor, client: EventClient,
                 planner: Planner | None = None, *, app: str = "",
                 redact_emails: bool = True, ground_timeout_s: float = 3.0) -> None:
        self.perception = perception
        self.executor = executor
        self.client = client
        self.planner = planner or RulePlanner(redact_emails)
        self.app = app
        self.emails = redact_emails
        self.ground_timeout_s = ground_timeout_s
        self.frames = 0
        self.detections = 0
        self.last_detection_id: str | None = None

    # -- perception events ------------------------------------------------------------------
    def publish(self, obs: Observation, parent_id: str | None) -> str:
        """Frame (redacted image -> blob store + thumbnail) then its detection."""
        f = obs.frame_fields(self.app)
        frame_id = self.client.frame(
            obs.image, app=f["app"], width=f["width"], height=f["height"], phash=f["phash"],
            change_ratio=f["change_ratio"], changed_regions=f["changed_regions"],
            redactions=f["redactions"], parent_id=parent_id, event_time=obs.captured_ms)
        d = obs.detection_body(frame_id, self.app)
        self.last_detection_id = self.client.detection(
            frame_id, d["elements"], app=self.app, duration_ms=d["duration_ms"],
            parent_id=frame_id)
        self.frames += 1
        self.detections += 1
        return frame_id

    def perceive(self, parent_id: str | None) -> Observation | None:
        """One perception step; a changed screen is published. None when unchanged."""
        obs = self.perception.observe()
        if obs is not None:
            self.publish(obs, parent_id)
        return obs

    def current(self, parent_id: str | None) -> Observation:
        self.perceive(parent_id)
        if self.perception.last is None:
            raise RuntimeError("no frame captured")
        return self.perception.last

    # -- the loop ---------------------------------------------------------------------------
    def run(self, task: Task) -> RunResult:
        obs = self.current(None)
        steps = self.planner.plan(task, obs)
        plan_id = self.client.plan(
            mask_text(task.goal, self.emails)[0] or "",
            [s.to_record(self.emails) for s in steps], app=self.app,
            planner=self.planner.name, parent_id=self.last_detection_id)
        result = RunResult(True, plan_id)
        last_action: str | None = None
        for planned in steps:
            sr = self._step(planned, plan_id, last_action)
            result.steps.append(sr)
            last_action = sr.action_id
            if sr.status != "success":
                result.ok = False
                break
        result.frames, result.detections = self.frames, self.detections
        return result

    def _ground(self, planned: PlannedStep, parent_id: str | None) -> Grounded:
        deadline = time.monotonic() + self.ground_timeout_s
        while True:
            obs = self.current(parent_id)
            try:
                return self.planner.ground(planned, obs)
            except TargetNotFound:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)

    def _step(self, planned: PlannedStep, plan_id: str, last_action: str | None) -> StepResult:
        t0 = time.perf_counter()
        desc = planned.to_record(self.emails)["description"]
        try:
            g = self._ground(planned, last_action)
        except TargetNotFound as exc:
            aid = self.client.action(
                planned.action_kind, app=self.app, plan_id=plan_id,
                step_index=planned.index, target={"label": planned.target},
                params=planned.params, parent_id=plan_id)
            self.client.outcome(aid, "failure", (time.perf_counter() - t0) * 1e3,
                                app=self.app, action_kind=planned.action_kind, error=str(exc),
                                error_kind="target_not_found")
            return StepResult(planned.index, desc, aid, "failure", str(exc))
        params = g.spec.params()
        secret = planned.secret or g.secret
        if "text" in params:
            params["text"] = (BULLET * len(params["text"]) if secret
                              else mask_text(params["text"], self.emails)[0] or "")
        target: dict[str, Any] = {"label": planned.target}
        if g.element is not None:
            e = g.element
            target.update(element_id=e.element_id, element_kind=e.kind, bbox=e.box)
        if g.spec.x is not None:
            target.update(x=g.spec.x, y=g.spec.y)
        aid = self.client.action(
            g.spec.kind, app=self.app, plan_id=plan_id, step_index=planned.index,
            target=target, params=params, parent_id=plan_id)
        before = self.perception.last
        res: ExecResult = self.executor.run(g.spec)
        verification: VerifyResult | None = None
        if res.ok:
            verification = poll(
                g.expect, self.perception.observe,
                on_observation=lambda o: self.publish(o, aid),
                current=before if g.spec.kind == "wait" else None)
        status, error, error_kind = "success", None, None
        if not res.ok:
            status, error, error_kind = "failure", res.error, res.error_kind
        elif verification is not None and not verification.passed:
            status = "timeout" if g.expect.method == "text_seen" else "failure"
            error = f"verification failed: {g.expect.method} {_safe(g.expect, secret)}"
            error_kind = "verification"
        duration = (time.perf_counter() - t0) * 1e3

        def mask(s: str | None) -> str | None:
            if s is None or secret:
                return None if s is None else BULLET * len(s)
            return mask_text(s, self.emails)[0]

        checked = verification.to_record(mask) if verification else None
        self.client.outcome(
            aid, status, duration, app=self.app, action_kind=g.spec.kind, error=mask(error),
            error_kind=error_kind, verification=checked)
        log.info("step %d %s: %s", planned.index, desc, status)
        return StepResult(planned.index, desc, aid, status, error, verification, checked)


def _safe(expect: Expectation, secret: bool) -> str:
    if secret or not expect.expected:
        return ""
    return repr(expect.expected)
