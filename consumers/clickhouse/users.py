"""Who may use the embedded engine's loopback endpoint, and as what.

Three users, each with ClickHouse settings that the engine enforces on every query it runs
for them (a query cannot lift `readonly`; the reader's `readonly=2` still lets a query set
other settings, as canned and Grafana queries do):
- `reader`: `readonly=2` (reads only): `clawstream sql`, `query`, `report`, Grafana;
- `writer`: inserts and reads, no DDL (`allow_ddl=0`): a sink or loader of another process;
- `admin`: migrations and anything else.
The engine runs inside the owner's process with its rights, so the reader and the writer may
not reach outside the database either: no table function or function that reads or writes
files, URLs or other servers (`file()`, `url()`, `s3()`, `remote()`, `executable()` …) and
no `INTO OUTFILE` / `FROM INFILE` (`outside_the_database`, checked on ClickHouse's own parse
of the query).
Their passwords are made once per data folder, 0600 in `<data_dir>/security/clickhouse.json`
(beside the Kafka credentials); a process on this machine finds its user's password there,
anyone else is given it (`CLAWSTREAM_CLICKHOUSE_USER` / `CLAWSTREAM_CLICKHOUSE_PASSWORD`, a
secret). A request names its user with HTTP basic auth or ClickHouse's `X-ClickHouse-User` /
`X-ClickHouse-Key` headers; none, or a wrong one, is refused (401) before any SQL is read.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from clawstream.security.pki import write_private

#: the engine's settings for each user's queries (readonly first: it decides what follows)
USER_SETTINGS: dict[str, dict[str, Any]] = {
    "reader": {"readonly": 2},
    "writer": {"readonly": 0, "allow_ddl": 0},
    "admin": {"readonly": 0},
}
#: who queries when the settings name nobody
DEFAULT_USER = "reader"


def users_file(data_dir: Path | str) -> Path:
    return Path(data_dir) / "security" / "clickhouse.json"


def ensure_users(data_dir: Path | str) -> dict[str, SecretStr]:
    """The users' passwords, made once (0600)."""
    path = users_file(data_dir)
    found = load_users(path)
    if found is not None:
        return found
    made = {user: secrets.token_urlsafe(24) for user in USER_SETTINGS}
    write_private(path, json.dumps(made).encode())
    return {u: SecretStr(p) for u, p in made.items()}


def load_users(path: Path) -> dict[str, SecretStr] | None:
    try:
        return {u: SecretStr(p) for u, p in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return None


def credential_for(settings: Any) -> tuple[str, SecretStr | None]:
    """(user, password) this process queries the endpoint with: the settings' user (reader
    by default) and password, else that user's password from this machine's users file."""
    user = getattr(settings, "clickhouse_user", None) or DEFAULT_USER
    password = getattr(settings, "clickhouse_password", None)
    if password is None:
        known = load_users(users_file(settings.data_dir)) or {}
        password = known.get(user)
    return user, password


def authenticate(headers: Mapping[str, str], users: Mapping[str, SecretStr]) -> str | None:
    """The user a request proves to be (basic auth, or X-ClickHouse-User/Key), or None."""
    lower = {k.lower(): v for k, v in headers.items()}  # (header names: any case)
    user, key = lower.get("x-clickhouse-user"), lower.get("x-clickhouse-key")
    auth = lower.get("authorization", "")
    if user is None and auth.lower().startswith("basic "):
        try:
            user, _, key = base64.b64decode(auth[6:].strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
    if not user or key is None or user not in users:
        return None
    expected = users[user].get_secret_value().encode()
    return user if hmac.compare_digest(expected, key.encode()) else None


def basic_auth(user: str, password: SecretStr | None) -> str:
    secret = password.get_secret_value() if password is not None else ""
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


#: functions and table functions that reach files, URLs, other servers or programs
_OUTSIDE = (
    "file", "fileCluster", "url", "urlCluster", "s3", "s3Cluster", "gcs", "azureBlobStorage",
    "azureBlobStorageCluster", "hdfs", "hdfsCluster", "remote", "remoteSecure", "cluster",
    "clusterAllReplicas", "mysql", "postgresql", "sqlite", "mongodb", "redis", "jdbc", "odbc",
    "executable", "input", "deltaLake", "deltaLakeCluster", "iceberg", "icebergS3",
    "icebergAzure", "icebergHDFS", "icebergLocal", "icebergCluster", "hudi", "hudiCluster",
    "paimon", "arrowFlight", "ytsaurus", "prometheusQuery", "loop",
)
_OUTSIDE_AST = re.compile(rf"^\s*Function ({'|'.join(_OUTSIDE)})(?:\s|$)", re.I | re.M)
_FILE_CLAUSE = re.compile(r"\b(OUTFILE|INFILE)\b", re.I)


def outside_the_database(sql: str, ast: str) -> str | None:
    """What in a query reaches outside the database (`ast`: ClickHouse's `EXPLAIN AST` of
    it, so comments and spacing cannot hide a call), or None."""
    found = _OUTSIDE_AST.search(ast)
    if found:
        return f"{found.group(1)}()"
    clause = _FILE_CLAUSE.search(sql)
    return clause.group(1).upper() if clause else None
