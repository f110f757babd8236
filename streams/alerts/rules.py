"""Alert rules: the YAML format, its validation, and a loader that keeps the last good set.

Pure code (no I/O beyond reading the text handed in): `parse_rules(text)` validates with
pydantic and raises `RulesError` whose message names the rule and the field at fault, so an
operator fixing a bad edit knows exactly where to look. `RuleBook` holds the rules in force;
`reload(text)` swaps them only when the new text is valid.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from streams.alerts.silences import Silence

DEFAULT_RULES_FILE = Path(__file__).resolve().parents[2] / "infra" / "alerts" / "default-rules.yaml"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, None: 1000}


def parse_duration_ms(value: Any) -> int:
    """'500ms', '10s', '5m', '1h', '1d' or a number of seconds -> milliseconds."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return int(value * 1000)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"not a duration: {value!r} (use e.g. 500ms, 10s, 5m, 1h)")
    return int(float(m.group(1)) * _UNIT_MS[m.group(2)])


Duration = Annotated[int, Field(ge=0)]

#: Metrics a threshold or anomaly rule can read from a WindowAggregate, besides
#: `counts.<event type>` and `outcomes.<status>`.
AGGREGATE_METRICS = (
    "failure_rate",
    "success_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "lost_outcomes",
    "late_events",
    "clock_skew_events",
    "ocr_confidence_mean",
    "frame_change_ratio_mean",
    "detections",
    "frames",
    "active_agents",
    "outcomes_total",
)
FAILED_STATUSES = ("failure", "timeout", "lost")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def compare(op: str, a: float, b: float) -> bool:
    return _OPS[op](a, b)


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Scope(_Base):
    """Label filters on the aggregate scope; glob patterns (fnmatch), '*' matches all.

    Fleet-wide rollups carry the literal value '*'; select them with '[*]', exclude them
    with '[!*]*'.
    """

    agent: str = "*"
    app: str = "*"
    action_kind: str = "*"
    executor: str = "*"

    def matches(self, labels: dict[str, str]) -> bool:
        for name in ("agent", "app", "action_kind", "executor"):
            pattern = getattr(self, name)
            if pattern != "*" and not fnmatch.fnmatchcase(labels.get(name, ""), pattern):
                return False
        return True


class RuleBase(_Base):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]*$")
    severity: Literal["info", "warning", "critical", "page"] = "warning"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    match: Scope = Field(default_factory=Scope)
    repeat_interval: Duration | None = None
    enabled: bool = True

    @field_validator("repeat_interval", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> Any:
        return None if v is None else parse_duration_ms(v)


class _AggregateRule(RuleBase):
    metric: str
    window: str | None = Field(
        None, description="Only windows of this size (e.g. '10s', '1m'); None = all sizes."
    )
    window_kind: Literal["tumbling", "hopping"] | None = None
    min_outcomes: int = Field(0, ge=0, description="Skip windows with fewer outcomes.")
    for_: int = Field(1, alias="for", ge=1, description="Consecutive breaching windows.")

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        if v in AGGREGATE_METRICS or re.fullmatch(r"(counts|outcomes)\.[a-z_]+", v):
            return v
        raise ValueError(
            f"unknown metric {v!r}; use one of {', '.join(AGGREGATE_METRICS)}, "
            "counts.<event type> or outcomes.<status>"
        )

    @field_validator("window")
    @classmethod
    def _window(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration_ms(v)
        return v

    @cached_property
    def window_ms(self) -> int | None:
        return None if self.window is None else parse_duration_ms(self.window)


class ThresholdRule(_AggregateRule):
    kind: Literal["threshold"]
    op: Literal[">", ">=", "<", "<=", "==", "!="] = ">"
    value: float


class AnomalyRule(_AggregateRule):
    kind: Literal["anomaly"]
    alpha: float = Field(0.1, gt=0, le=1, description="EWMA smoothing factor.")
    z: float = Field(3.0, gt=0, description="|z-score| that counts as anomalous.")
    direction: Literal["up", "down", "both"] = "both"
    warmup: int = Field(10, ge=2, description="Windows seen before judging.")
    min_std: float = Field(1e-9, ge=0, description="Floor of the standard deviation.")


ActivitySource = Literal["heartbeat", "outcome", "aggregate"]
OutcomeLabel = Literal["agent", "app", "action_kind", "executor"]


def _heartbeats_and_outcomes() -> list[ActivitySource]:
    return ["heartbeat", "outcome"]


def _by_agent() -> list[OutcomeLabel]:
    return ["agent"]


def _by_app_and_executor() -> list[OutcomeLabel]:
    return ["app", "executor"]


class AbsenceRule(RuleBase):
    kind: Literal["absence"]
    after: Duration = Field(description="Silence longer than this fires.")
    sources: list[ActivitySource] = Field(default_factory=_heartbeats_and_outcomes)
    wall_clock: bool = Field(
        True, description="Also fire when no message arrived for `after` of wall time."
    )

    @field_validator("after", mode="before")
    @classmethod
    def _after(cls, v: Any) -> Any:
        return parse_duration_ms(v)


class StreakRule(RuleBase):
    kind: Literal["streak"]
    by: list[OutcomeLabel] = Field(default_factory=_by_agent)
    count: int = Field(ge=1, description="Consecutive failed outcomes that fire.")
    statuses: list[str] = Field(default_factory=lambda: list(FAILED_STATUSES))


class CircuitBreakerRule(RuleBase):
    kind: Literal["circuit_breaker"]
    by: list[OutcomeLabel] = Field(default_factory=_by_app_and_executor)
    failure_rate: float = Field(0.5, gt=0, le=1, description="Opens at this failure rate ...")
    minimum_calls: int = Field(10, ge=1, description="... over at least this many calls ...")
    window_calls: int = Field(20, ge=1, description="... among the last N calls.")
    consecutive_failures: int = Field(5, ge=1, description="Or opens after this many in a row.")
    wait: Duration = Field(30_000, description="Time OPEN before trying HALF_OPEN.")
    half_open_successes: int = Field(3, ge=1, description="Successes in HALF_OPEN to close.")
    statuses: list[str] = Field(default_factory=lambda: list(FAILED_STATUSES))

    @field_validator("wait", mode="before")
    @classmethod
    def _wait(cls, v: Any) -> Any:
        return parse_duration_ms(v)

    @model_validator(mode="after")
    def _window_covers_minimum(self) -> CircuitBreakerRule:
        if self.window_calls < self.minimum_calls:
            raise ValueError("window_calls must be >= minimum_calls")
        return self


#: Any validated rule.
AnyRule = ThresholdRule | AnomalyRule | AbsenceRule | StreakRule | CircuitBreakerRule
Rule = Annotated[AnyRule, Field(discriminator="kind")]
RULE_KINDS = ("threshold", "anomaly", "absence", "streak", "circuit_breaker")


class Defaults(_Base):
    repeat_interval: Duration = 4 * 3_600_000

    @field_validator("repeat_interval", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> Any:
        return parse_duration_ms(v)


class RulesFile(_Base):
    defaults: Defaults = Field(default_factory=Defaults)
    rules: list[dict[str, Any]] = Field(default_factory=list)
    silences: list[Silence] = Field(default_factory=list)


class RuleSet(BaseModel):
    """Validated rules in force, by name."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    rules: list[Any]
    silences: list[Silence] = Field(default_factory=list)
    defaults: Defaults = Field(default_factory=Defaults)
    _by_kind: dict[str | None, list[Any]] = PrivateAttr(default_factory=dict)

    def enabled(self, kind: str | None = None) -> list[Any]:
        """Enabled rules (of one kind); cached, a RuleSet is never changed after loading."""
        found = self._by_kind.get(kind)
        if found is None:
            found = [r for r in self.rules if r.enabled and (kind is None or r.kind == kind)]
            self._by_kind[kind] = found
        return found

    def repeat_ms(self, rule: Any) -> int:
        return rule.repeat_interval if rule.repeat_interval is not None else (
            self.defaults.repeat_interval
        )

    def silenced(self, labels: dict[str, str], now_ms: int) -> bool:
        return any(s.matches(labels, now_ms) for s in self.silences)


class RulesError(ValueError):
    """A rules file that cannot be used; the message names the rule and the field."""


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not (isinstance(p, str) and p in RULE_KINDS)]
    return ".".join(parts) or "(rule)"


_RULE_ADAPTER: Any = None


def _rule_adapter() -> Any:
    global _RULE_ADAPTER
    if _RULE_ADAPTER is None:
        from pydantic import TypeAdapter

        _RULE_ADAPTER = TypeAdapter(Rule)
    return _RULE_ADAPTER


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    """Validate a YAML rules document; raise RulesError naming rule and field."""
    try:
        doc = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise RulesError(f"{source}: not valid YAML: {exc}") from exc
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise RulesError(f"{source}: top level must be a mapping with a 'rules' list")
    try:
        top = RulesFile.model_validate(doc)
    except ValidationError as exc:
        msgs = [f"{_loc(e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise RulesError(f"{source}: " + "; ".join(msgs)) from exc
    rules: list[Any] = []
    problems: list[str] = []
    seen: set[str] = set()
    for i, raw in enumerate(top.rules):
        name = raw.get("name") if isinstance(raw, dict) else None
        label = f"rule {name!r}" if name else f"rule #{i + 1}"
        try:
            rule = _rule_adapter().validate_python(raw)
        except ValidationError as exc:
            for e in exc.errors():
                problems.append(f"{label} field '{_loc(e['loc'])}': {e['msg']}")
            continue
        if rule.name in seen:
            problems.append(f"{label} field 'name': duplicate rule name")
            continue
        seen.add(rule.name)
        rules.append(rule)
    if problems:
        raise RulesError(f"{source}: " + "; ".join(problems))
    return RuleSet(rules=rules, silences=top.silences, defaults=top.defaults)


def load_rules_file(path: Path) -> RuleSet:
    return parse_rules(Path(path).read_text(), source=str(path))


class RuleBook:
    """The rules in force; a bad reload keeps the last good set and records why."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self.last_error: str | None = None
        self.version = 1

    @classmethod
    def from_files(cls, *paths: Path | None) -> RuleBook:
        """Defaults merged with a user file (user rules replace defaults of the same name)."""
        return cls(merge_rulesets([load_rules_file(p) for p in paths if p is not None]))

    def reload(self, *rulesets_or_errors: RuleSet) -> None:
        self.rules = merge_rulesets(list(rulesets_or_errors))
        self.last_error = None
        self.version += 1

    def try_reload(self, loader: Any) -> bool:
        """Call `loader()` -> RuleSet; on RulesError keep the current rules. True if swapped."""
        try:
            new = loader()
        except (RulesError, OSError) as exc:
            self.last_error = str(exc)
            return False
        self.rules = new
        self.last_error = None
        self.version += 1
        return True


def merge_rulesets(sets: list[RuleSet]) -> RuleSet:
    """Later sets override rules of the same name, add silences, and override defaults."""
    by_name: dict[str, Any] = {}
    silences: list[Silence] = []
    defaults = Defaults()
    for s in sets:
        for r in s.rules:
            by_name[r.name] = r
        silences.extend(s.silences)
        if s.defaults.model_fields_set:
            defaults = s.defaults
    return RuleSet(rules=list(by_name.values()), silences=silences, defaults=defaults)
