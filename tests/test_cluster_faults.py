"""A broker failover under the whole pipeline (`clawstream.cluster_trial`): on a private
secured three-node cluster, a real-time fleet, two workers of one group and the sink run
while the broker leading the most partitions is killed with -9 and restarted 30 s later.
Afterwards every event is in ClickHouse once, every closed window equals its recount from
the raw events, the failover fired no incident (AgentSilent, LostOutcomes, late events) and
the SDK lost nothing. The rolling restart and the broker stopped for 60 s run in
`bench/bench_cluster_faults.py` (too long for the suite)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_helpers import private_cluster

from clawstream.broker_cluster import LocalCluster
from clawstream.cluster_trial import SCENARIOS, run_cluster_trial, trial_env
from clawstream.settings import get_settings
from clawstream.trial import TrialConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    yield from private_cluster(tmp_path_factory.mktemp("cluster"))


def test_kill9_of_the_busiest_broker_loses_shifts_and_fires_nothing(
        cluster: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in trial_env(cluster, f"f{uuid.uuid4().hex[:8]}.", tmp_path / "data").items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    cfg = TrialConfig(agents=8, duration_s=70.0, speedup=2.0, seed=5, workers=2,
                      agent_prefix="fo")
    try:
        result = run_cluster_trial(cluster, get_settings(), "busiest-kill",
                                   SCENARIOS["busiest-kill"], cfg, tmp_path / "logs")
    finally:
        get_settings.cache_clear()
    print(result.figures(), *result.trial.faults, sep="\n")
    r = result.trial.report
    assert any("kill -9 of broker" in line for line in result.trial.faults), result.trial.faults
    assert any("answers again" in line for line in result.trial.faults), result.trial.faults
    assert result.sdk_lost == 0, result.trial.fleet
    assert result.unique == result.sent > 0 and result.read_twice == 0, result.figures()
    detail = (r.windows_differing + r.windows_missing)[:5]
    assert r.ok and r.windows_checked >= 50 and r.fleet_windows_checked >= 2, (
        r.summary(), detail)
    assert r.late_events == 0 and r.lost_outcomes == 0, r.summary()
    assert result.incidents == {}, result.incidents
    assert result.health.recovered_s is not None, "the ISRs never became whole again"
