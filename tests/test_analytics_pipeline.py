"""Analytics and observability against a real pipeline run.

One module-scoped run: `clawstream fleet` (8 agents x 500 events, causally linked, 30% base
failure rate) -> the real Kafka broker -> `clawstream sink` -> chdb, with `clawstream worker`
(windows, sessions, CRDT state, alerts) and `clawstream notifier` running alongside, plus CRDT
the fleet's CRDT state deltas. Then: every canned query (rollup and raw forms), the CLI
output formats, every Grafana panel's SQL after macro expansion, rollups == raw aggregates,
the HTML report, every process's /metrics, a real Prometheus scraping the processes, and a
redelivery of everything (lost commits) that must not double-count anywhere.

Over 400 lines on purpose: every test here reads the same module-scoped pipeline run (fleet,
worker, sink and notifier for a minute or more), which one file per concern would repeat.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import analytics_helpers as H
import pytest
import yaml
from ports import free_port
from prometheus_client.parser import text_string_to_metric_families

from consumers.analytics import grafana as G
from consumers.analytics import queries as Q
from consumers.analytics.cli import run_canned
from consumers.analytics.filters import Filters
from consumers.clickhouse import query

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "infra" / "grafana" / "dashboards"


class _Hook(BaseHTTPRequestHandler):
    """A webhook receiver for the notifier (Alertmanager API shape: 200 on POST)."""

    received: ClassVar[list[Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Hook.received.append(json.loads(body or b"null"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def pipe(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[H.Pipeline]:
    workdir = tmp_path_factory.mktemp("analytics")
    hook_port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", hook_port), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pipeline = H.start_pipeline(kafka_bootstrap, workdir, hook_port=hook_port)
    old = H.apply_env(pipeline)
    try:
        from clawstream.settings import get_settings

        settings = get_settings()
        expected = {H.TABLE_OF_TYPE[k]: v for k, v in pipeline.expected.items()}
        seen: list[dict[str, int]] = []

        def landed() -> bool:
            seen.append({k: v for k, v in H.raw_counts(settings, producer_only=True).items()
                         if v})
            return seen[-1] == expected

        try:
            H.wait_for(landed, 120, "every raw event in ClickHouse")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: expected {expected}, got {seen[-1:]}") from None
        for table in ("alerts", "agent_state",
                      "window_aggregates WHERE scope_agent = '*' AND window_size_ms = 60000"):
            H.wait_for(lambda t=table: query(settings, f"SELECT count() FROM {t}").rows[0][0],
                       120, f"rows in {table} (worker log: {pipeline.workdir}/worker.log)")
        yield pipeline
    finally:
        pipeline.stop_all()
        server.shutdown()
        H.restore_env(old)


@pytest.fixture(scope="module")
def settings(pipe: H.Pipeline) -> Any:
    from clawstream.settings import get_settings

    return get_settings()


def _filters(**kw: Any) -> Filters:
    return Filters.from_cli("2h", **kw)


# -- canned queries -----------------------------------------------------------------------------

CASES = [(name, src) for name in Q.CANNED for src in ("rollup", "raw")]


@pytest.mark.parametrize(("name", "source"), CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_canned_query_returns_rows_with_expected_columns(settings: Any, name: str,
                                                         source: str) -> None:
    agent = "agent-0001" if name == "timeline" else None
    results = run_canned(settings, name, _filters(agent=agent), source)
    canned = Q.CANNED[name]
    assert len(results) == len(canned.sections)
    for (title, res), section in zip(results, canned.sections, strict=True):
        assert res.rows, f"{name}/{title} returned no rows"
        assert res.column_names == section.columns, title


def test_agent_filter_reads_raw_and_restricts(settings: Any) -> None:
    fleet = run_canned(settings, "overview", _filters())[0][1].dicts()[0]
    one = run_canned(settings, "overview", _filters(agent="agent-0002"))[0][1].dicts()[0]
    assert fleet["agents"] == 8 and one["agents"] == 1
    assert 0 < one["events"] < fleet["events"]
    rows = run_canned(settings, "timeline", _filters(agent="agent-0002", limit=500))[0][1]
    times = [r[0] for r in rows.rows]
    assert times == sorted(times)
    per_agent = query(settings, "SELECT count() FROM outcomes WHERE agent_id = 'agent-0002'")
    assert sum(1 for r in rows.rows if r[1] == "outcome") == min(per_agent.rows[0][0], 500)


def test_app_filter_and_user_input_stays_data(settings: Any) -> None:
    rows = run_canned(settings, "success-rate", _filters(app="mail"))[0][1].dicts()
    assert rows and {r["app"] for r in rows} == {"mail"}
    hostile = "mail' OR 1=1 --"
    assert run_canned(settings, "success-rate", _filters(app=hostile))[0][1].rows == []


def test_episode_steps_match_the_fleet(settings: Any) -> None:
    eps = run_canned(settings, "episodes", _filters(limit=5))[0][1].dicts()
    session = eps[0]["session_id"]
    plan, steps = run_canned(settings, "episode", _filters(session=session))
    assert plan[1].dicts()[0]["session_id"] == session
    stepd = steps[1].dicts()
    assert len(stepd) == eps[0]["steps"]
    assert all(s["status"] in ("success", "failure", "timeout", "lost") for s in stepd)


def test_cli_formats(pipe: H.Pipeline) -> None:
    out = pipe.run("query", "success-rate", "--since", "2h", "--format", "json", timeout=120)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout.strip().splitlines()[0])
    assert doc["title"].startswith("Success rate") and doc["rows"]
    assert set(doc["rows"][0]) == set(Q.SUCCESS_COLUMNS)
    out = pipe.run("query", "slowest", "--since", "2h", "--format", "csv", "--limit", "3")
    assert out.returncode == 0, out.stderr
    rows = list(csv.reader(io.StringIO(out.stdout)))
    assert tuple(rows[0]) == Q.SLOWEST_COLUMNS and len(rows) == 4
    out = pipe.run("query", "timeline", "--since", "2h")
    assert out.returncode != 0 and "--agent" in out.stderr
    for name in ("overview", "alerts", "fleet-state"):  # table output, incl. others' queries
        out = pipe.run("query", name, "--format", "table") if name != "overview" else \
            pipe.run("query", name, "--since", "1h", "--agent", "agent-0003")
        assert out.returncode == 0, (name, out.stderr)
        assert "(no rows)" not in out.stdout, name


# -- rollups agree with the raw tables ----------------------------------------------------------

OUTCOMES_ROLLUP_VS_RAW = """
SELECT r.minute, r.app, r.action_kind, r.n, w.n, r.ok, w.ok, r.bad, w.bad, r.dsum, w.dsum,
       r.q, w.q, r.agents, w.agents
FROM
(
    SELECT minute, app, action_kind, countMerge(outcomes) AS n, countMerge(successes) AS ok,
           countMerge(failures) AS bad, sumMerge(duration_sum) AS dsum,
           quantilesMerge(0.5, 0.9, 0.95, 0.99)(duration_q) AS q, uniqMerge(agents) AS agents
    FROM outcomes_1m GROUP BY minute, app, action_kind
) AS r
FULL OUTER JOIN
(
    SELECT toStartOfMinute(event_time) AS minute, app, action_kind, count() AS n,
           countIf(status = 'success') AS ok, countIf(status NOT IN ('success', 'skipped')) AS bad,
           sum(duration_ms) AS dsum, quantiles(0.5, 0.9, 0.95, 0.99)(duration_ms) AS q,
           uniqExact(agent_id) AS agents
    FROM outcomes FINAL GROUP BY minute, app, action_kind
) AS w USING (minute, app, action_kind)
ORDER BY minute, app, action_kind
"""


def _rollups_vs_raw(settings: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    rows = query(settings, OUTCOMES_ROLLUP_VS_RAW).rows
    out["outcomes"] = rows
    ev = query(settings, f"""
        SELECT r.minute, r.event_type, r.app, r.n, w.n
        FROM (SELECT minute, event_type, app, countMerge(events) AS n FROM events_1m
              GROUP BY minute, event_type, app) AS r
        FULL OUTER JOIN (SELECT toStartOfMinute(event_time) AS minute, event_type, app,
                         count() AS n FROM {Q.RAW_EVENTS} GROUP BY minute, event_type, app) AS w
        USING (minute, event_type, app)""").rows
    out["events"] = ev
    det = query(settings, """
        SELECT r.minute, r.app, r.kind, r.n, w.n, r.conf, w.conf
        FROM (SELECT minute, app, element_kind AS kind, countMerge(elements) AS n,
                     avgMerge(confidence_avg) AS conf FROM detections_1m
              GROUP BY minute, app, kind) AS r
        FULL OUTER JOIN (SELECT toStartOfMinute(event_time) AS minute, app,
                         toString(element_kind) AS kind, count() AS n, avg(confidence) AS conf
                         FROM detections FINAL GROUP BY minute, app, kind) AS w
        USING (minute, app, kind)""").rows
    out["detections"] = det
    return out


def _assert_agree(cmp: dict[str, Any]) -> None:
    assert cmp["outcomes"] and cmp["events"] and cmp["detections"]
    for (minute, app, kind, n, wn, ok, wok, bad, wbad, dsum, wdsum, q, wq, ag, wag) in \
            cmp["outcomes"]:
        where = (minute, app, kind)
        assert (n, ok, bad) == (wn, wok, wbad), where
        assert math.isclose(dsum, wdsum, rel_tol=1e-9), where
        # reservoir states are exact below 8192 values per group
        for a, b in zip(q, wq, strict=True):
            assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6), (where, q, wq)
        assert ag == wag, where
    for minute, et, app, n, wn in cmp["events"]:
        assert n == wn, (minute, et, app)
    for minute, app, kind, n, wn, conf, wconf in cmp["detections"]:
        assert n == wn, (minute, app, kind)
        assert math.isclose(conf, wconf, rel_tol=1e-5), (minute, app, kind)


def test_rollups_agree_with_raw_tables(settings: Any, pipe: H.Pipeline) -> None:
    cmp = _rollups_vs_raw(settings)
    _assert_agree(cmp)
    total = sum(r[3] for r in cmp["outcomes"])
    assert total >= pipe.expected["outcome"]  # plus the worker's synthetic 'lost' outcomes
    assert sum(r[3] for r in cmp["events"]) == sum(pipe.expected.values()) + (
        total - pipe.expected["outcome"])


def test_rollup_and_raw_forms_of_canned_queries_agree(settings: Any) -> None:
    f = Filters(since_ms=0)
    for name in ("success-rate", "slowest"):
        rollup = run_canned(settings, name, Filters(since_ms=0, limit=1000), "rollup")[0][1]
        raw = run_canned(settings, name, Filters(since_ms=0, limit=1000), "raw")[0][1]
        assert sorted(map(tuple, rollup.rows)) == sorted(map(tuple, raw.rows)), name
    ro = run_canned(settings, "overview", f, "rollup")
    rw = run_canned(settings, "overview", f, "raw")
    a, b = ro[0][1].dicts()[0], rw[0][1].dicts()[0]
    for k in ("agents", "events", "outcomes", "success_rate", "p50_ms", "p95_ms"):
        assert a[k] == b[k], k
    assert sorted(ro[1][1].rows) == sorted(rw[1][1].rows)


# -- Grafana panels -----------------------------------------------------------------------------

def _boards() -> list[tuple[str, dict[str, Any]]]:
    return [(p.stem, b) for p, b in G.dashboards(DASHBOARDS)]


def test_every_grafana_panel_sql_runs_and_returns_rows(settings: Any) -> None:
    now = int(time.time() * 1000)
    window = {"from_ms": now - 6 * 3_600_000, "to_ms": now, "interval_s": 60}
    boards = _boards()
    assert {name for name, _ in boards} >= {"fleet-overview", "agent-drilldown",
                                            "perception-quality", "alerts", "pipeline-health"}
    checked = 0
    for name, board in boards:
        values: dict[str, list[str]] = {}
        for var in board["templating"]["list"]:
            res = query(settings, G.expand(var["query"], **window))
            assert res.rows, (name, var["name"])
            values[var["name"]] = [str(r[0]) for r in res.rows]
        variants = [{"agent": values.get("agent", ["agent-0000"])[0], "app": "__all"}]
        if "app" in values:
            variants.append({"agent": "agent-0000", "app": values["app"][0]})
        for title, sql in G.sql_targets(board):
            for variables in variants:
                expanded = G.expand(sql, variables=variables, **window)
                res = query(settings, expanded)
                assert res.rows, f"{name} / {title} ({variables}) returned no rows"
                assert res.column_names and all(res.column_names), (name, title)
                checked += 1
    assert checked >= 35


# -- report -------------------------------------------------------------------------------------

def test_report_from_real_run(pipe: H.Pipeline, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    res = pipe.run("report", "--out", str(out), "--since", "2h", timeout=180)
    assert res.returncode == 0, res.stderr
    html = out.read_text()
    # self-contained: nothing fetched from anywhere
    assert not re.search(r"""(src|href)=["'](https?:)?//""", html)
    assert "<script" not in html
    charts = re.search(r'<div class="charts" id="charts">(.*?)</div>', html, re.S)
    assert charts is not None
    for title in ("Throughput", "Success rate", "Outcome latency", "Failures by app"):
        assert f"<title>{title}" in charts.group(1), title
    assert charts.group(1).count("<polyline") >= 4  # throughput, success, p50, p95
    alerts = html[html.index('id="alerts"'):html.index('id="quality"')]
    assert "Alert events by rule and state" in alerts and "<rect" in alerts
    viewer = html[html.index('id="episode"'):]
    steps = re.findall(r'<div class="step" data-step="\d+">(.*?)</div>', viewer, re.S)
    assert steps, "no episode steps"
    for step in steps:
        assert 'href="data:image/jpeg;base64,' in step  # the frame's inline thumbnail
        assert 'class="det"' in step  # detection boxes
        assert '<g class="act">' in step  # the action where it happened
        assert re.search(r'class="badge"[^>]*>(success|failure|timeout)<', step)
    if shutil.which("chromium"):  # how it looks: a headless screenshot must not be blank
        shot = tmp_path / "report.png"
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1300,2400",
                        f"--screenshot={shot}", out.as_uri()], capture_output=True,
                       timeout=120, check=False)
        from PIL import Image

        colors = Image.open(shot).convert("RGB").resize((130, 240)).getcolors(100_000)
        assert colors is not None and len(colors) > 50


# -- /metrics of every long-running process -----------------------------------------------------

def scrape(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


EXPECTED_FAMILIES = {
    "sink": {"clawstream_sink_messages", "clawstream_sink_rows_inserted",
             "clawstream_sink_batches", "clawstream_sink_batch_rows",
             "clawstream_sink_insert_seconds", "clawstream_sink_insert_errors",
             "clawstream_sink_dlq_messages", "clawstream_sink_consumer_lag",
             "clawstream_sink_last_commit_timestamp_seconds"},
    "worker": {"clawstream_worker_events", "clawstream_worker_late_events",
               "clawstream_worker_windows_emitted", "clawstream_worker_watermark_ms",
               "clawstream_worker_dlq", "clawstream_alerts_firing",
               "clawstream_alerts_events", "clawstream_state_merge_deltas"},
    "notifier": {"clawstream_notifier_posts", "clawstream_notifier_retries",
                 "clawstream_notifier_gave_up", "clawstream_notifier_post_seconds",
                 "clawstream_notifier_dlq"},
    "sdk": {"clawstream_sdk_events_produced", "clawstream_sdk_events_spooled",
            "clawstream_sdk_events_failed", "clawstream_sdk_spool_depth_messages",
            "clawstream_sdk_spool_depth_bytes", "clawstream_sdk_delivery_latency_seconds"},
}


def _sdk_host_families(pipe: H.Pipeline, kafka_bootstrap: str) -> dict[str, Any]:
    """Scrape a running SDK host: `clawstream fleet --metrics` on its own namespace."""
    from clawstream.admin import create_topics

    ns = f"sdk{uuid.uuid4().hex[:8]}."
    create_topics(kafka_bootstrap, namespace=ns)
    proc = pipe.start("fleet-sdk", "fleet", "--agents", "2", "--events-per-agent", "4000",
                      "--rate", "800", "--metrics", "--no-progress",
                      extra_env={"CLAWSTREAM_TOPIC_NAMESPACE": ns})
    try:
        def produced() -> dict[str, Any] | None:
            fams = scrape(pipe.ports["sdk"])
            fam = fams.get("clawstream_sdk_events_produced")
            return fams if fam is not None and sum(s.value for s in fam.samples) > 0 else None

        return H.wait_for(produced, 60, "SDK host metrics with delivered events")
    finally:
        proc.stop()


def test_every_process_exposes_its_metrics(pipe: H.Pipeline, kafka_bootstrap: str) -> None:
    families = {name: scrape(pipe.ports[name]) for name in ("sink", "worker", "notifier")}
    families["sdk"] = _sdk_host_families(pipe, kafka_bootstrap)
    for proc, expected in EXPECTED_FAMILIES.items():
        missing = expected - set(families[proc])
        assert not missing, f"{proc} lacks {sorted(missing)}"
        assert all(n.startswith("clawstream_") or not n.startswith("claw")
                   for n in families[proc])
    sink = families["sink"]
    inserted = sum(s.value for s in sink["clawstream_sink_rows_inserted"].samples
                   if s.name.endswith("_total"))
    assert inserted >= sum(pipe.expected.values())
    assert sum(s.value for s in families["worker"]["clawstream_worker_events"].samples
               if s.name.endswith("_total")) > 0
    # every metric the dashboards and alert rules use is exported by some process
    exported = {s.name for fams in families.values() for f in fams.values() for s in f.samples}
    exported |= {f for fams in families.values() for f in fams}
    used: set[str] = set()
    for _name, board in _boards():
        for _title, expr in G.prom_targets(board):
            used |= set(re.findall(r"clawstream_[a-z_]+", expr))
    rules = yaml.safe_load((ROOT / "infra/prometheus/rules/pipeline.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            used |= set(re.findall(r"clawstream_[a-z_]+", rule["expr"]))
    unknown = {m for m in used if m not in exported and m.removesuffix("_total") not in exported}
    assert not unknown, f"dashboards/rules use metrics nobody exports: {sorted(unknown)}"


def test_real_prometheus_scrapes_the_processes(pipe: H.Pipeline, tmp_path: Path) -> None:
    prom = shutil.which("prometheus")
    if prom is None:
        pytest.skip("Debian's prometheus is not installed (make test installs it)")
    port = free_port()
    rules_dir = tmp_path / "rules"
    shutil.copytree(ROOT / "infra/prometheus/rules", rules_dir)
    config = yaml.safe_load((ROOT / "infra/prometheus/prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [str(rules_dir / "*.yml")]
    config.pop("alerting", None)
    targets = {"clawstream-sink": "sink", "clawstream-worker": "worker",
               "clawstream-notifier": "notifier"}
    config["scrape_configs"] = [
        {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{pipe.ports[p]}"]}]}
        for job, p in targets.items()]
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(yaml.safe_dump(config))
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([prom, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path}/db",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log,
                            stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api/v1"

    def get(path: str) -> Any:
        with urllib.request.urlopen(api + path, timeout=5) as resp:
            return json.loads(resp.read())["data"]

    try:
        def all_up() -> list[dict[str, Any]] | None:
            active = get("/targets")["activeTargets"]
            ok = len(active) == 3 and all(t["health"] == "up" for t in active)
            return active if ok else None

        H.wait_for(all_up, 60, "Prometheus targets up")
        groups = get("/rules")["groups"]
        assert sum(len(g["rules"]) for g in groups) >= 10
        assert all(r["health"] == "ok" for g in groups for r in g["rules"])

        def sink_messages() -> float:
            res = get("/query?query=sum(clawstream_sink_messages_total)")["result"]
            return float(res[0]["value"][1]) if res else 0.0

        assert H.wait_for(sink_messages, 30, "sink messages in Prometheus") >= sum(
            pipe.expected.values())
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


# -- redelivery: last, because it replaces the sink ---------------------------------------------

_last: list[Any] = []


def _stable(settings: Any) -> bool:
    """True once two reads 2 s apart see the same rows everywhere."""
    sql = ("SELECT (SELECT count() FROM outcomes), (SELECT count() FROM alerts), "
           "(SELECT count() FROM window_aggregates), (SELECT count() FROM sessions)")
    now = query(settings, sql).rows[0]
    same = bool(_last) and _last[-1] == now
    _last.append(now)
    if not same:
        time.sleep(2)
    return same


def test_redelivered_batches_are_not_double_counted(pipe: H.Pipeline, settings: Any) -> None:
    """Every committed offset is lost (a new consumer group re-reads every topic from the
    start): the sink must neither re-insert raw rows nor bump the rollups."""
    pipe.procs["worker"].stop()  # nothing new on the topics from here on
    H.wait_for(lambda: _stable(settings), 60, "the sink to drain")
    before = _rollups_vs_raw(settings)
    raw_before = H.raw_counts(settings)
    physical = "SELECT count() FROM outcomes SETTINGS final = 0"
    phys_before = query(settings, physical).rows[0][0]
    pipe.procs["sink"].stop()
    again = pipe.start("sink-redelivery", "sink", "--until-idle", "8",
                       extra_env={"CLAWSTREAM_SINK_GROUP": pipe.env["CLAWSTREAM_SINK_GROUP"]
                                  + "-lost-commits"})
    again.proc.wait(180)
    assert again.proc.returncode == 0, again.log()[-3000:]
    assert "skipped on resume" in again.log()
    assert H.raw_counts(settings) == raw_before
    assert query(settings, physical).rows[0][0] == phys_before
    after = _rollups_vs_raw(settings)
    _assert_agree(after)
    assert after == before
