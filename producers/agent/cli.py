"""`clawstream agent --task FILE`: run the reference agent on the current X display."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click


@click.command("agent")
@click.option("--task", "task_file", required=True, type=click.Path(exists=True, path_type=Path),
              help="YAML task file (goal + steps).")
@click.option("--agent-id", default=None, help="Agent id (default: agent-<hostname>).")
@click.option("--display", default=None, help="X display (default: settings / $DISPLAY).")
@click.option("--app", default=None, help="App name put in events (default: the task's).")
@click.option("--json-out", is_flag=True, help="Print the result as JSON.")
def agent(task_file: Path, agent_id: str | None, display: str | None, app: str | None,
          json_out: bool) -> None:
    """Perceive -> plan -> act -> verify on the screen, streaming every stage as events."""
    from producers.settings import sdk_settings

    settings = sdk_settings()
    display = display or settings.agent_display or os.environ.get("DISPLAY")
    if not display:
        raise click.ClickException("no X display: set DISPLAY or --display")
    os.environ["DISPLAY"] = display
    os.environ.setdefault("XDG_SESSION_TYPE", "x11")

    from producers.agent.loop import Agent
    from producers.agent.task import TaskError, load_task
    from producers.execution.executor import Executor
    from producers.perception.capture import ScreenCapture, parse_region
    from producers.perception.pipeline import Perception
    from producers.perception.redact import Redactor
    from producers.sdk import AgentClient

    try:
        task = load_task(task_file)
    except TaskError as exc:
        raise click.ClickException(str(exc)) from exc
    agent_id = agent_id or f"agent-{os.uname().nodename}"
    capture = ScreenCapture(display, parse_region(settings.capture_region), settings.capture_fps)
    perception = Perception(capture, redactor=Redactor(emails=settings.redact_emails))
    executor = Executor(rate_limit=settings.action_rate_limit, display=display)
    with AgentClient(settings, agent_id) as client:
        runner = Agent(perception, executor, client, app=app or task.app,
                       redact_emails=settings.redact_emails)
        result = runner.run(task)
        client.flush(30)
    if json_out:
        click.echo(json.dumps({
            "ok": result.ok, "plan_id": result.plan_id, "frames": result.frames,
            "steps": [{"index": s.index, "description": s.description, "status": s.status,
                       "action_id": s.action_id, "error": s.error,
                       "verification": s.checked} for s in result.steps],
        }))
    else:
        for s in result.steps:
            click.echo(f"[{s.status:>7}] {s.index}: {s.description}"
                       + (f"  ({s.error})" if s.error else ""))
        click.echo(f"{'done' if result.ok else 'FAILED'}: {len(result.steps)} step(s), "
                   f"{result.frames} frame(s)")
    sys.exit(0 if result.ok else 1)
