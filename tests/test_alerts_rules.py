"""Rules file validation and hot reload keeping the last good rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.alerts import RuleBook, RulesError, load_rules_file, parse_rules
from streams.alerts.rules import DEFAULT_RULES_FILE, merge_rulesets, parse_duration_ms


def test_durations() -> None:
    assert parse_duration_ms("500ms") == 500
    assert parse_duration_ms("10s") == 10_000
    assert parse_duration_ms("5m") == 300_000
    assert parse_duration_ms("1h") == 3_600_000
    assert parse_duration_ms(2) == 2000
    with pytest.raises(ValueError):
        parse_duration_ms("soon")


def test_errors_name_rule_and_field() -> None:
    text = """
rules:
  - {name: A, kind: threshold, metric: failure_rate, op: "~", value: 1}
  - {name: B, kind: streak}
  - {name: C, kind: absence, after: later}
  - {name: D, kind: nonsense}
  - {name: E, kind: threshold, metric: failure_rate, value: 1, bogus: 2}
"""
    with pytest.raises(RulesError) as info:
        parse_rules(text, source="mine.yaml")
    msg = str(info.value)
    assert msg.startswith("mine.yaml: ")
    assert "rule 'A' field 'op'" in msg
    assert "rule 'B' field 'count'" in msg
    assert "rule 'C' field 'after'" in msg
    assert "rule 'D'" in msg and "kind" in msg
    assert "rule 'E' field 'bogus'" in msg


def test_duplicate_names_bad_yaml_bad_matchers() -> None:
    with pytest.raises(RulesError, match="duplicate"):
        parse_rules("rules:\n - {name: A, kind: streak, count: 2}\n"
                    " - {name: A, kind: streak, count: 3}\n")
    with pytest.raises(RulesError, match="not valid YAML"):
        parse_rules("rules: [\n")
    with pytest.raises(RulesError, match="silences"):
        parse_rules("silences:\n - matchers: ['agent=~\"(\"']\n")
    with pytest.raises(RulesError, match="window_calls"):
        parse_rules("rules:\n - {name: B, kind: circuit_breaker, minimum_calls: 30, "
                    "window_calls: 10}\n")


def test_defaults_are_valid() -> None:
    rs = load_rules_file(DEFAULT_RULES_FILE)
    kinds = {r.kind for r in rs.rules}
    assert kinds == {"threshold", "absence", "streak", "circuit_breaker", "anomaly"}


def test_reload_keeps_last_good(tmp_path: Path) -> None:
    f = tmp_path / "rules.yaml"
    f.write_text("rules:\n - {name: S, kind: streak, count: 2}\n")
    book = RuleBook(load_rules_file(f))
    f.write_text("rules:\n - {name: S, kind: streak, count: -1}\n")
    assert book.try_reload(lambda: load_rules_file(f)) is False
    assert "rule 'S' field 'count'" in (book.last_error or "")
    assert book.rules.rules[0].count == 2
    f.write_text("rules:\n - {name: S, kind: streak, count: 7}\n")
    assert book.try_reload(lambda: load_rules_file(f)) is True
    assert book.last_error is None and book.rules.rules[0].count == 7


def test_user_file_overrides_defaults_by_name() -> None:
    base = load_rules_file(DEFAULT_RULES_FILE)
    user = parse_rules("rules:\n - {name: FailureStreak, kind: streak, count: 2}\n"
                       " - {name: AgentSilent, kind: absence, after: 1s, enabled: false}\n")
    merged = merge_rulesets([base, user])
    by = {r.name: r for r in merged.rules}
    assert by["FailureStreak"].count == 2
    assert "AgentSilent" not in {r.name for r in merged.enabled()}
    assert len(merged.rules) == len(base.rules)
