"""Grafana's ClickHouse-datasource macros and template variables, expanded the way the plugin
(grafana-clickhouse-datasource v4) does, so tests can run every panel's SQL for real.

Pure: `expand(sql, from_ms=..., to_ms=..., interval_s=..., variables={...})` -> SQL text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

_MACRO_ARG = r"\(\s*([^()]+?)\s*\)"


def _literal(text: str) -> Callable[[re.Match[str]], str]:
    """A re.sub replacement that inserts `text` as it is (no backslash processing)."""
    return lambda _m: text


def expand(sql: str, *, from_ms: int, to_ms: int, interval_s: int = 60,
           variables: Mapping[str, str] | None = None) -> str:
    """Replace $__ macros and $var / ${var} / ${var:singlequote} template variables."""
    fs, ts = from_ms // 1000, to_ms // 1000
    out = sql
    subs: list[tuple[str, Any]] = [
        (r"\$__timeFilter_ms" + _MACRO_ARG,
         lambda m: f"{m[1]} >= fromUnixTimestamp64Milli({from_ms}) AND "
                   f"{m[1]} <= fromUnixTimestamp64Milli({to_ms})"),
        (r"\$__timeFilter" + _MACRO_ARG,
         lambda m: f"{m[1]} >= toDateTime({fs}) AND {m[1]} <= toDateTime({ts})"),
        (r"\$__dateFilter" + _MACRO_ARG,
         lambda m: f"{m[1]} >= toDate({fs}) AND {m[1]} <= toDate({ts})"),
        (r"\$__timeInterval_ms" + _MACRO_ARG,
         lambda m: f"toStartOfInterval(toDateTime64({m[1]}, 3), "
                   f"INTERVAL {interval_s * 1000} millisecond)"),
        (r"\$__timeInterval" + _MACRO_ARG,
         lambda m: f"toStartOfInterval(toDateTime({m[1]}), INTERVAL {interval_s} second)"),
        (r"\$__fromTime_ms\b", lambda m: f"fromUnixTimestamp64Milli({from_ms})"),
        (r"\$__toTime_ms\b", lambda m: f"fromUnixTimestamp64Milli({to_ms})"),
        (r"\$__fromTime\b", lambda m: f"toDateTime({fs})"),
        (r"\$__toTime\b", lambda m: f"toDateTime({ts})"),
        (r"\$__interval_s\b", lambda m: str(interval_s)),
    ]
    for pattern, repl in subs:
        out = re.sub(pattern, repl, out)
    for name, value in (variables or {}).items():
        quoted = "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"
        out = out.replace(f"${{{name}:singlequote}}", quoted)
        out = out.replace(f"${{{name}}}", str(value))
        out = re.sub(rf"\${re.escape(name)}\b", _literal(str(value)), out)
    leftover = re.search(r"\$\{?[A-Za-z_]\w*", out)
    if leftover:
        raise ValueError(f"unexpanded macro or variable {leftover.group(0)!r} in: {out[:200]}")
    return out


def dashboards(directory: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(directory.glob("*.json")):
        yield path, json.loads(path.read_text())


def panels(board: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in rows."""
    for p in board.get("panels", []):
        yield p
        yield from p.get("panels", [])


def sql_targets(board: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, raw SQL) of every ClickHouse query of a dashboard."""
    for p in panels(board):
        for t in p.get("targets", []):
            if (t.get("datasource") or p.get("datasource") or {}).get("uid") == "clickhouse":
                yield p.get("title", "?"), t["rawSql"]


def prom_targets(board: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) of every Prometheus query of a dashboard."""
    for p in panels(board):
        for t in p.get("targets", []):
            if (t.get("datasource") or p.get("datasource") or {}).get("uid") == "prometheus":
                yield p.get("title", "?"), t["expr"]
