"""Shared fixtures: the real local Kafka broker, an isolated topic namespace per test, and
settings pointing at both. Integration tests run against the broker started by
`clawstream up` (make test does it); the session fixture starts one if none answers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from ports import free_port

from clawstream.settings import Settings, get_settings


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap address of a running real broker (started if needed). When it is the local
    broker run secured (`clawstream up`, the default), every test and the processes it
    starts connect as its admin over SASL_SSL (tests of the roles' rights make their own
    credentials): `CLAWSTREAM_KAFKA_CLIENT_CONFIG` points at the admin's client config file."""
    from clawstream.broker import ensure_broker
    from clawstream.kafka.security import local_broker_secured
    from clawstream.security.local import LocalSecurity

    settings = get_settings()
    bootstrap = ensure_broker(settings)
    if local_broker_secured(settings) and "CLAWSTREAM_KAFKA_CLIENT_CONFIG" not in os.environ:
        admin = LocalSecurity.of(settings).store.path("admin")
        os.environ["CLAWSTREAM_KAFKA_CLIENT_CONFIG"] = str(admin)
        # (the address stays this broker's, whatever address the file names)
        os.environ["CLAWSTREAM_BOOTSTRAP_SERVERS"] = bootstrap
        get_settings.cache_clear()
    return bootstrap


@pytest.fixture
def topic_ns(kafka_bootstrap: str) -> Iterator[str]:
    """A fresh topic namespace with every topic of the table created in it; afterwards every
    topic of the namespace (the workers' internal ones too) is deleted, so a broker serving
    many test runs does not run out of open files."""
    from clawstream.admin import create_topics, delete_namespace

    ns = f"t{uuid.uuid4().hex[:10]}."
    create_topics(kafka_bootstrap, namespace=ns)
    yield ns
    try:
        delete_namespace(kafka_bootstrap, ns)
    except Exception as exc:  # the test's own result matters more than the clean-up
        print(f"could not delete the topics of {ns}: {exc}")


@pytest.fixture
def cs_settings(
    kafka_bootstrap: str, topic_ns: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """Settings for one test: its own topics and data folder; exported to subprocesses.
    Groups, app id and database derive from the namespace, as for a user who sets only it."""
    env = {
        "CLAWSTREAM_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CLAWSTREAM_TOPIC_NAMESPACE": topic_ns,
        "CLAWSTREAM_DATA_DIR": str(tmp_path / "data"),
        "CLAWSTREAM_CHDB_ENDPOINT_PORT": "0",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Confluent-compatible registry: $CLAWSTREAM_TEST_SCHEMA_REGISTRY_URL if set, else
    a private local Apicurio Registry (built once with Maven) on a free port, stopped after."""
    url = os.environ.get("CLAWSTREAM_TEST_SCHEMA_REGISTRY_URL")
    if url:
        yield url
        return
    from clawstream.schema_registry import LocalSchemaRegistry

    reg = LocalSchemaRegistry(
        get_settings(), port=free_port(), data_dir=tmp_path_factory.mktemp("schema-registry")
    )
    try:
        yield reg.start(timeout=120)
    finally:
        reg.stop()
