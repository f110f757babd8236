"""infra/prometheus: the alert rules and the scrape config pass promtool, the rules cover what
operators need, and the scrape jobs agree with the processes' metrics ports. (A real Prometheus
scraping real processes runs in tests/test_analytics_pipeline.py.)"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from clawstream.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PROM = ROOT / "infra" / "prometheus"
promtool = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(promtool is None, reason="promtool not installed")


@needs_promtool
def test_rules_pass_promtool() -> None:
    res = subprocess.run([promtool, "check", "rules", str(PROM / "rules" / "pipeline.yml")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


@needs_promtool
def test_config_passes_promtool(tmp_path: Path) -> None:
    """The config names its rules by their path inside the container
    (/etc/prometheus/rules/*.yml); check it with that glob pointed at a copy."""
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    shutil.copytree(PROM / "rules", tmp_path / "rules")
    config["rule_files"] = [str(tmp_path / "rules" / "*.yml")]
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(yaml.safe_dump(config))
    res = subprocess.run([promtool, "check", "config", str(cfg)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "pipeline.yml" in res.stdout


def test_rules_cover_pipeline_health() -> None:
    rules = yaml.safe_load((PROM / "rules" / "pipeline.yml").read_text())
    by_name = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    exprs = " ".join(r["expr"] for r in by_name.values())
    for metric in ("up{", "clawstream_sink_consumer_lag", "clawstream_sink_dlq_messages_total",
                   "clawstream_sink_insert_errors_total", "clawstream_sdk_spool_depth_messages",
                   "clawstream_worker_events_total"):
        assert metric in exprs, metric
    for r in by_name.values():
        assert r["labels"]["severity"] in ("info", "warning", "critical")
        assert r["annotations"]["summary"]


def test_scrape_jobs_match_the_metrics_ports() -> None:
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    targets = {j["job_name"]: j["static_configs"][0]["targets"][0]
               for j in config["scrape_configs"]}
    s = Settings()
    assert targets["clawstream-sink"].endswith(f":{s.sink_metrics_port}")
    assert targets["clawstream-worker"].endswith(f":{s.worker_metrics_port}")
    assert targets["clawstream-notifier"].endswith(f":{s.notifier_metrics_port}")
    assert targets["clawstream-sdk"].endswith(f":{s.sdk_metrics_port}")
