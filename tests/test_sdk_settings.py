"""The agent side's settings and layering: `SdkSettings` is what an agent machine needs, the
server's `Settings` extends it (one variable configures both), and neither the SDK side nor
the contract imports the server's code."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from clawstream.settings import Settings
from clawstream.settings_cli import settings_cmd
from producers.settings import SdkSettings, sdk_settings


def test_server_settings_nest_the_sdk_settings() -> None:
    assert issubclass(Settings, SdkSettings)
    for name, field in SdkSettings.model_fields.items():
        assert Settings.model_fields[name].default == field.default, name
    # what the server alone needs stays out of the agent's settings
    assert {"clickhouse_dsn", "sink_group", "worker_app_id", "rules_file"}.isdisjoint(
        SdkSettings.model_fields)


def test_one_variable_configures_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAWSTREAM_TOPIC_NAMESPACE", "staging.")
    monkeypatch.setenv("CLAWSTREAM_SPOOL_MAX_BYTES", "12345")
    sdk, server = sdk_settings(), Settings()
    for s in (sdk, server):
        assert s.topic("claw.actions.v1") == "staging.claw.actions.v1"
        assert s.spool_max_bytes == 12345
    assert server.worker_app_id == "staging.clawstream-streams"
    monkeypatch.setenv("CLAWSTREAM_SPOOL_MAX_BYTES", "7")
    assert sdk_settings().spool_max_bytes == 7  # read now, no cache to clear


def test_sdk_settings_refuse_a_namespace_topics_cannot_carry() -> None:
    with pytest.raises(ValidationError, match="topic namespace"):
        SdkSettings(topic_namespace="a b")


def test_clawstream_settings_lists_the_sdk_settings_too() -> None:
    out = CliRunner().invoke(settings_cmd, [], env={"COLUMNS": "300"}).output
    for name in ("SPOOL_MAX_BYTES", "SDK_METRICS_PORT", "CAPTURE_FPS", "SINK_BATCH_ROWS"):
        assert f"CLAWSTREAM_{name}" in out


def _imported_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\nprint(*sys.modules)"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_the_agent_side_loads_without_the_server() -> None:
    """What import-linter checks statically, seen at run time: the SDK, the fleet, the
    reference agent and the CRDT replica load no server code and no server dependency."""
    mods = _imported_after("import producers.sdk, producers.fleet_cli, producers.agent.cli, "
                           "producers.state, producers.settings")
    server = {m for m in mods if m.split(".")[0] in ("streams", "consumers", "faust", "chdb",
                                                     "clickhouse_connect")}
    assert server == set()
    assert "clawstream.settings" not in mods


def test_the_contract_loads_nothing_of_the_project() -> None:
    mods = _imported_after("import schemas.serde, schemas.envelope, schemas.crdt, "
                           "schemas.crdt.snapshot, schemas.registry_client, schemas.samples")
    assert {m for m in mods if m.split(".")[0] in ("clawstream", "producers", "streams",
                                                   "consumers")} == set()
