"""`clawstream registry up|down|status`: the local Confluent-compatible schema registry.

With it running, `CLAWSTREAM_SCHEMA_REGISTRY_URL=<url it prints>` makes the SDK write the
Confluent framing (schema ids from the registry) instead of Avro single-object encoding;
readers accept both either way.
"""

from __future__ import annotations

import click
from rich.console import Console

from clawstream.settings import get_settings

console = Console(soft_wrap=True)
_port = click.option("--port", default=8081, show_default=True, help="Loopback port.")


@click.group()
def registry() -> None:
    """Run a local schema registry (Apicurio Registry, built once with Maven)."""


@registry.command()
@_port
@click.option("--timeout", default=120.0, show_default=True,
              help="Seconds to wait until it answers.")
def up(port: int, timeout: float) -> None:
    """Build (once) and start the registry on 127.0.0.1:PORT, or find it running."""
    from clawstream.schema_registry import LocalSchemaRegistry, SchemaRegistryError

    reg = LocalSchemaRegistry(get_settings(), port=port)
    try:
        with console.status("starting the schema registry (the first start builds it)"):
            url = reg.start(timeout=timeout)
    except SchemaRegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    console.print(f"[green]schema registry answering[/] at {url} (pid {reg.pid()}, "
                  f"log {reg.log_file})")
    console.print(f"use it: export CLAWSTREAM_SCHEMA_REGISTRY_URL={url}")


@registry.command()
@_port
def down(port: int) -> None:
    """Stop the registry that `clawstream registry up` started."""
    from clawstream.schema_registry import LocalSchemaRegistry

    reg = LocalSchemaRegistry(get_settings(), port=port)
    pid = reg.pid()
    if not reg.stop():
        console.print(f"no schema registry started by clawstream runs on port {port}")
        return
    console.print(f"schema registry on port {port} (pid {pid}) stopped")


@registry.command()
@_port
def status(port: int) -> None:
    """Is the local registry running and answering; which subjects does it hold."""
    from clawstream.schema_registry import LocalSchemaRegistry

    reg = LocalSchemaRegistry(get_settings(), port=port)
    subjects = reg.subjects()
    if subjects is None:
        console.print(f"[red]no schema registry answers at {reg.url}[/] "
                      "(start one: clawstream registry up)")
        raise SystemExit(1)
    owner = f"pid {reg.pid()}" if reg.is_running() else "not started by clawstream"
    console.print(f"[green]schema registry answering[/] at {reg.url} ({owner}), "
                  f"{len(subjects)} subjects")
    for s in sorted(subjects):
        console.print(f"  {s}")
