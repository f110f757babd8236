"""Silences: Alertmanager-style label matchers that suppress notifications for a while."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Silence(BaseModel):
    """Suppresses notifications of incidents whose labels match every matcher."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    matchers: list[str] = Field(min_length=1)
    starts_at: int | None = Field(None, description="epoch ms; None = always")
    ends_at: int | None = Field(None, description="epoch ms; None = forever")
    comment: str = ""

    @field_validator("matchers")
    @classmethod
    def _matchers(cls, v: list[str]) -> list[str]:
        for m in v:
            parse_matcher(m)
        return v

    def active(self, now_ms: int) -> bool:
        return (self.starts_at is None or now_ms >= self.starts_at) and (
            self.ends_at is None or now_ms < self.ends_at
        )

    def matches(self, labels: dict[str, str], now_ms: int) -> bool:
        return self.active(now_ms) and all(
            matcher_matches(parse_matcher(m), labels) for m in self.matchers
        )


_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$')


def parse_matcher(text: str) -> tuple[str, str, str]:
    """Alertmanager-style matcher: name="v", name!="v", name=~"re", name!~"re"."""
    m = _MATCHER.match(text)
    if not m:
        raise ValueError(f'bad matcher {text!r}; use name="value", !=, =~ or !~')
    name, op, value = m.groups()
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"bad regular expression in matcher {text!r}: {exc}") from exc
    return name, op, value


def matcher_matches(matcher: tuple[str, str, str], labels: dict[str, str]) -> bool:
    name, op, value = matcher
    actual = labels.get(name, "")
    if op == "=":
        return actual == value
    if op == "!=":
        return actual != value
    hit = re.fullmatch(value, actual) is not None
    return hit if op == "=~" else not hit
