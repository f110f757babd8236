"""The embedded ClickHouse's loopback endpoint needs a credential: none or a wrong one is a
401 before any SQL is read; the reader's queries run read-only (it cannot DROP or INSERT:
refused, the table intact; it may still set query settings); the writer inserts but runs no
DDL; neither reads or writes files through the engine (it runs with the owner's rights); the
users' passwords are private to the data folder's owner. Real engine (chdb), real HTTP."""

from __future__ import annotations

import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from clawstream.settings import Settings
from consumers.clickhouse import ChdbOwner, QueryError, QueryResult, local_client, run_query
from consumers.clickhouse.access import endpoint_client
from consumers.clickhouse.users import basic_auth, credential_for, users_file


@pytest.fixture(scope="module")
def owner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, str]]:
    data = tmp_path_factory.mktemp("chauth")
    settings = Settings(data_dir=data, chdb_endpoint_port=0, topic_namespace="",
                        clickhouse_dsn=None, clickhouse_password=None, clickhouse_user=None,
                        _env_file=None)
    with local_client(settings) as client:  # the database and its tables (migrations)
        client.command("CREATE TABLE IF NOT EXISTS guarded (x UInt8) ENGINE=MergeTree "
                       "ORDER BY x")
        client.command("INSERT INTO guarded VALUES (1)")
    own = ChdbOwner(settings)
    own.claim()
    url = own.serve()
    try:
        yield settings, url
    finally:
        own.release()


def post(url: str, headers: dict[str, str]) -> int:
    req = urllib.request.Request(f"{url}/", data=b"SELECT 1", headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def as_user(settings: Settings, user: str) -> str:
    return basic_auth(*credential_for(settings.model_copy(update={"clickhouse_user": user})))


def over_http(url: str, settings: Settings, sql: str) -> QueryResult:
    """`sql` through clickhouse-connect's http:// client, as the settings' user."""
    client = endpoint_client(settings, url)
    try:
        return run_query(client, sql)
    finally:
        client.close()


def user(settings: Settings, name: str) -> Settings:
    return settings.model_copy(update={"clickhouse_user": name})


def test_no_credential_or_a_wrong_one_is_refused(owner: tuple[Settings, str]) -> None:
    settings, url = owner
    assert post(url, {}) == 401
    assert post(url, {"Authorization": basic_auth("reader", SecretStr("guess"))}) == 401
    assert post(url, {"X-ClickHouse-User": "admin", "X-ClickHouse-Key": "guess"}) == 401
    assert post(url, {"Authorization": as_user(settings, "reader")}) == 200
    password = credential_for(settings)[1]
    assert password is not None
    assert post(url, {"X-ClickHouse-User": "reader",
                      "X-ClickHouse-Key": password.get_secret_value()}) == 200
    path = users_file(settings.data_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_reader_reads_and_cannot_drop_or_insert(owner: tuple[Settings, str]) -> None:
    settings, url = owner
    reader = user(settings, "reader")
    count = "SELECT count() FROM guarded"
    assert over_http(url, reader, count).rows == [(1,)]
    for sql in ("DROP TABLE guarded", "INSERT INTO guarded VALUES (2)",
                "SELECT count() FROM guarded SETTINGS readonly=0", "TRUNCATE TABLE guarded"):
        with pytest.raises(QueryError, match=r"(?i)readonly"):
            over_http(url, reader, sql)
    client = endpoint_client(reader, url)
    try:
        with pytest.raises(Exception, match=r"(?i)readonly"):
            client.insert("guarded", [[9]], column_names=["x"])  # rows in the body
    finally:
        client.close()
    assert over_http(url, reader, count).rows == [(1,)]  # intact
    assert over_http(url, reader, f"{count} SETTINGS join_use_nulls=1").rows == [(1,)]


def test_no_user_but_admin_reaches_outside_the_database(
        owner: tuple[Settings, str], tmp_path: Path) -> None:
    settings, url = owner
    out = tmp_path / "out.txt"
    for name in ("reader", "writer"):
        auth = user(settings, name)
        for sql in ("SELECT * FROM file('/etc/hostname', 'LineAsString')",
                    "SELECT length( /* hidden? */ FILE('/etc/hostname'))",
                    "SELECT 1 FROM guarded WHERE x IN (SELECT 1 FROM url('http://127.0.0.1:1/'"
                    ", 'CSV', 'a UInt8'))",
                    f"SELECT 1 INTO OUTFILE '{out}'",
                    "SELECT * FROM remote('127.0.0.1', system.one)"):
            with pytest.raises(QueryError, match="outside the database"):
                over_http(url, auth, sql)
    assert not out.exists()


def test_the_writer_inserts_but_runs_no_ddl_and_admin_migrates(
        owner: tuple[Settings, str]) -> None:
    settings, url = owner
    writer, admin = user(settings, "writer"), user(settings, "admin")
    over_http(url, writer, "INSERT INTO guarded VALUES (3)")
    with pytest.raises(QueryError, match=r"(?i)ddl|prohibited|not allowed"):
        over_http(url, writer, "DROP TABLE guarded")
    over_http(url, admin, "CREATE TABLE IF NOT EXISTS scratch (x UInt8) ENGINE=Memory")
    over_http(url, admin, "DROP TABLE scratch")
    client = endpoint_client(writer, url)  # rows in the body, as clickhouse-connect sends them
    try:
        client.insert("guarded", [[4], [5]], column_names=["x"])
    finally:
        client.close()
    assert over_http(url, writer, "SELECT count() FROM guarded").rows == [(4,)]


def test_no_password_shows_in_the_settings(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, clickhouse_password="s3cr3t-pw", _env_file=None)
    assert "s3cr3t-pw" not in repr(s) and "s3cr3t-pw" not in str(s.model_dump())
