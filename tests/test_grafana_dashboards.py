"""The Grafana dashboards as files: structure Grafana's provisioning needs, datasource uids
that the provisioning defines, SQL hygiene, PromQL that promtool accepts, and files that are
up to date with infra/grafana/build_dashboards.py. (Every panel's SQL also runs against a real
pipeline run in tests/test_analytics_pipeline.py.)"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from consumers.analytics import grafana as G

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "infra" / "grafana"
BOARDS = dict((p.stem, b) for p, b in G.dashboards(GRAFANA / "dashboards"))
RAW = ("frames", "detection_frames", "detections", "plans", "actions", "outcomes",
       "heartbeats", "state_deltas", "alerts", "agent_state", "window_aggregates", "sessions")


def test_the_five_dashboards_exist_with_unique_uids() -> None:
    assert set(BOARDS) == {"fleet-overview", "agent-drilldown", "perception-quality", "alerts",
                           "pipeline-health"}
    uids = [b["uid"] for b in BOARDS.values()]
    assert len(set(uids)) == len(uids)
    assert "$agent" in json.dumps(BOARDS["agent-drilldown"]["templating"]) or any(
        v["name"] == "agent" for v in BOARDS["agent-drilldown"]["templating"]["list"])


def test_datasources_are_the_provisioned_ones() -> None:
    prov = yaml.safe_load((GRAFANA / "provisioning/datasources/datasources.yml").read_text())
    known = {d["uid"]: d["type"] for d in prov["datasources"]}
    assert known == {"clickhouse": "grafana-clickhouse-datasource", "prometheus": "prometheus"}
    for name, board in BOARDS.items():
        for panel in G.panels(board):
            for ds in [panel["datasource"]] + [t["datasource"] for t in panel["targets"]]:
                assert known.get(ds["uid"]) == ds["type"], (name, panel["title"])


def test_layout_ids_and_targets() -> None:
    for name, board in BOARDS.items():
        ids = [p["id"] for p in G.panels(board)]
        assert len(ids) == len(set(ids)), name
        for p in G.panels(board):
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, (name, p["title"])
            assert p["targets"], (name, p["title"])
            for t in p["targets"]:
                assert t.get("rawSql") or t.get("expr"), (name, p["title"])
                if "rawSql" in t:
                    assert t["format"] == (0 if p["type"] == "timeseries" else 1)
                    if p["type"] == "timeseries":
                        assert re.search(r"\bAS time\b", t["rawSql"]), (name, p["title"])


def test_sql_reads_raw_tables_with_final_and_expands() -> None:
    for name, board in BOARDS.items():
        queries = list(G.sql_targets(board)) + [
            (v["name"], v["query"]) for v in board["templating"]["list"]]
        for title, sql in queries:
            for table in RAW:
                for m in re.finditer(rf"\bFROM\s+{table}\b(\s+\w+)?", sql):
                    assert (m.group(1) or "").strip() == "FINAL", (name, title, m.group(0))
            G.expand(sql, from_ms=0, to_ms=1, variables={"agent": "a", "app": "__all"})


def test_provisioning_points_at_the_mounted_folder() -> None:
    prov = yaml.safe_load((GRAFANA / "provisioning/dashboards/dashboards.yml").read_text())
    path = prov["providers"][0]["options"]["path"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./infra/grafana/dashboards:{path}:ro" in mounts


def test_files_are_what_the_builder_writes() -> None:
    spec = importlib.util.spec_from_file_location("build_dashboards",
                                                  GRAFANA / "build_dashboards.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for name, build in mod.BOARDS.items():
        assert BOARDS[name] == json.loads(json.dumps(build().json())), (
            f"{name}.json is stale: run python infra/grafana/build_dashboards.py")


def test_promql_of_every_panel_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian prometheus) is not installed")
    rules = [{"record": f"clawstream:panel_{i}", "expr": expr}
             for i, expr in enumerate(e for b in BOARDS.values() for _t, e in G.prom_targets(b))]
    assert len(rules) >= 15
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    res = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
