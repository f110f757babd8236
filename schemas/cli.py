"""`clawstream schemas check|show|list`: the contract from the command line."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from schemas.compat import Incompatibility, check_backward
from schemas.registry import Contract, contract


def check_contract(c: Contract) -> dict[str, list[Incompatibility]]:
    """Every current schema against every previous version of it: "Name v<N>" -> problems."""
    results: dict[str, list[Incompatibility]] = {}
    for name, versions in sorted(c.history_by_name.items()):
        current = c.get(name)
        for h in versions:
            results[f"{name} v{h.version}"] = check_backward(current.expanded, h.expanded)
    return results


def _plain(schema: Any) -> Any:
    """Schema JSON without fastavro's bookkeeping keys."""
    if isinstance(schema, dict):
        return {k: _plain(v) for k, v in schema.items() if not k.startswith("__")}
    if isinstance(schema, list):
        return [_plain(v) for v in schema]
    return schema


@click.group("schemas")
def schemas() -> None:
    """The Avro contract: compatibility check and expanded schemas."""


@schemas.command("check")
def check() -> None:
    """Check that every schema stays BACKWARD compatible with its history (exit 1 if not)."""
    c = contract()
    results = check_contract(c)
    failed = 0
    for label, problems in results.items():
        if problems:
            failed += 1
            click.echo(f"INCOMPATIBLE  {label} -> current")
            for p in problems:
                click.echo(f"    {p}")
        else:
            click.echo(f"ok            {label} -> current")
    without = sorted(set(c.by_name) - set(c.history_by_name))
    if without:
        click.echo(f"(no history yet: {', '.join(without)})")
    if failed:
        click.echo(f"{failed} incompatible version(s): a reader with today's schemas cannot "
                   "read their data", err=True)
        sys.exit(1)
    click.echo(f"all {len(results)} previous version(s) readable with the current schemas")


@schemas.command("show")
@click.argument("name")
def show(name: str) -> None:
    """Print the expanded schema NAME (Action, clawstream.v1.Action or action) + fingerprint."""
    c = contract()
    try:
        s = c.get(name)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from exc
    click.echo(json.dumps(s.expanded, indent=2))
    click.echo(f"full name:   {s.full_name}")
    click.echo(f"event type:  {s.event_type}")
    click.echo(f"topic:       {s.topic}")
    click.echo(f"fingerprint: {s.fingerprint.hex()} (CRC-64-AVRO, little-endian as on the wire)")
    for h in c.history_by_name.get(s.name, []):
        click.echo(f"history v{h.version}: {h.fingerprint.hex()} ({h.path.name})")


@schemas.command("list")
def list_() -> None:
    """Every event schema with its type, topic and fingerprint."""
    c = contract()
    for s in c.by_name.values():
        versions = len(c.history_by_name.get(s.name, [])) + 1
        click.echo(f"{s.name:16s} {s.event_type:12s} {s.topic or '-':24s} "
                   f"{s.fingerprint.hex()}  v{versions}")


@schemas.command("freeze")
@click.argument("name")
@click.option("--from", "source", type=click.Path(exists=True, dir_okay=False),
              help="An older .avsc of NAME (e.g. from `git show REV:schemas/avro/NAME.avsc`); "
              "default: the current schema, frozen before you edit it.")
def freeze(name: str, source: str | None) -> None:
    """Record a version of NAME in schemas/history/ as <Name>.v<N+1>.avsc (expanded)."""
    from pathlib import Path

    from schemas.registry import HISTORY_DIR, expand, load_json, load_shared

    c = contract()
    try:
        current = c.get(name)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from exc
    expanded = current.expanded if source is None else expand(load_json(Path(source)),
                                                              load_shared())
    if expanded["name"] != current.full_name:
        raise click.ClickException(f"{source} holds {expanded['name']}, not {current.full_name}")
    versions = c.history_by_name.get(current.name, [])
    version = max((h.version for h in versions), default=0) + 1
    path = HISTORY_DIR / f"{current.name}.v{version}.avsc"
    HISTORY_DIR.mkdir(exist_ok=True)
    path.write_text(json.dumps(_plain(expanded), indent=2) + "\n")
    click.echo(f"wrote {path}")
