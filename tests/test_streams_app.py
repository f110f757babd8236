"""The faust app factory (no broker needed: nothing connects until the worker starts)."""

from __future__ import annotations

import sys
import types

import pytest

from clawstream.settings import Settings
from streams.app import create_app, declare_changelogs, input_group
from streams.windowing import CorrelationOperator, SessionOperator, WindowOperator


def test_event_topics_go_to_the_event_time_processor_and_broken_modules_are_skipped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    broken = types.ModuleType("streams.broken_addon")

    def register(app, settings):
        raise RuntimeError("boom")

    broken.register = register  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "streams.broken_addon", broken)
    settings = Settings(worker_app_id="unit-app", topic_namespace="ns.")
    app = create_app(settings, modules=("streams.event_time", "streams.not_there",
                                        "streams.broken_addon"))
    assert app.conf.id == "unit-app"
    assert app.clawstream_modules == ("streams.event_time",)
    proc = app.clawstream_event_time
    assert {type(op) for op in proc.new_pipeline().operators.values()} == {
        WindowOperator, CorrelationOperator, SessionOperator}
    names = {a.name for a in app.agents.values()}
    assert "event-time-fleet" in names
    # every event topic is read by the processor's own consumer group, not by faust's
    assert "ns.claw.actions.v1" in proc.source.topics
    assert "ns.claw.frames.v1" in proc.source.topics
    assert proc.source.group == input_group(settings) == "unit-app-windows"
    assert not any(t.startswith("ns.claw.") for topic in app.topics for t in topic.topics)
    config = proc.source._config()
    assert config["partition.assignment.strategy"] == "range"  # co-partitioned topics
    assert config["enable.auto.commit"] is False  # committed only once persisted


def test_core_module_failures_are_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "streams.event_time", None)  # import fails
    with pytest.raises(ImportError):
        create_app(Settings(worker_app_id="unit-app-2"), modules=("streams.event_time",))


@pytest.mark.integration
def test_changelogs_exist_before_the_worker_subscribes(kafka_bootstrap: str) -> None:
    """A table written before faust's metadata saw its changelog crashed its agent
    (PartitionsMismatch, "0 partitions"): the worker creates them up front, idempotently."""
    import uuid

    from clawstream.admin import describe_topics
    from schemas.topics import TopicSpec

    app_id = f"decl-{uuid.uuid4().hex[:8]}"
    settings = Settings(bootstrap_servers=kafka_bootstrap, worker_app_id=app_id)
    app = create_app(settings)
    created = declare_changelogs(app, settings)
    assert declare_changelogs(app, settings) == []
    want = {t.changelog_topic.get_topic_name(): t.partitions or 6 for t in app.tables.values()}
    assert sorted(created) == sorted(want)
    infos = {i.name: i for i in describe_topics(
        kafka_bootstrap, specs=[TopicSpec(name, None) for name in want])}
    for name, partitions in want.items():
        assert infos[name].partitions == partitions
        assert infos[name].cleanup_policy == "compact"
