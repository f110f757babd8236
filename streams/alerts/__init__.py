"""Pure alerting: rules (YAML, validated), one evaluator per rule kind, the incident
lifecycle, the alert clock, typed state over a flat store.

No I/O here; `streams.alerting` wires it to Kafka and faust.
"""

from streams.alerts.engine import AlertEngine
from streams.alerts.incidents import AlertEvent, fingerprint
from streams.alerts.rules import (
    DEFAULT_RULES_FILE,
    RuleBook,
    RulesError,
    RuleSet,
    load_rules_file,
    parse_rules,
)

__all__ = [
    "DEFAULT_RULES_FILE",
    "AlertEngine",
    "AlertEvent",
    "RuleBook",
    "RuleSet",
    "RulesError",
    "fingerprint",
    "load_rules_file",
    "parse_rules",
]
