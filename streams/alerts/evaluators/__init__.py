"""One evaluator per rule kind (pure): each judges its inputs and drives the incidents of
its rules (`streams.alerts.incidents`) with its state in the alert store."""

from streams.alerts.evaluators.absence import AbsenceEvaluator
from streams.alerts.evaluators.anomaly import AnomalyEvaluator
from streams.alerts.evaluators.breaker import BreakerEvaluator
from streams.alerts.evaluators.streak import StreakEvaluator
from streams.alerts.evaluators.threshold import ThresholdEvaluator

__all__ = [
    "AbsenceEvaluator",
    "AnomalyEvaluator",
    "BreakerEvaluator",
    "StreakEvaluator",
    "ThresholdEvaluator",
]
