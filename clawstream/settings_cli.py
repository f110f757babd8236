"""`clawstream settings`: show every setting, its variable and the value in force."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from clawstream.settings import Settings, get_settings


@click.command("settings")
def settings_cmd() -> None:
    """Show every CLAWSTREAM_* setting with its current value and meaning."""
    current = get_settings()
    table = Table("variable", "value", "meaning")
    for name, field in Settings.model_fields.items():
        table.add_row(f"CLAWSTREAM_{name.upper()}", str(getattr(current, name)),
                      field.description or "")
    Console().print(table)
