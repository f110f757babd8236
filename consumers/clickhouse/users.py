"""Who may use the embedded engine's loopback endpoint, and as what.

Three users, each with ClickHouse settings that the engine enforces on every query it runs
for them (a query cannot lift them: `readonly=1` refuses any change of settings):
- `reader`: `readonly=1` (SELECT only): `clawstream sql`, `query`, `report`, Grafana;
- `writer`: inserts and reads, no DDL (`allow_ddl=0`): a sink or loader of another process;
- `admin`: migrations and anything else.
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
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from clawstream.security.pki import write_private

#: the engine's settings for each user's queries (readonly first: it decides what follows)
USER_SETTINGS: dict[str, dict[str, Any]] = {
    "reader": {"readonly": 1},
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
    user, key = headers.get("X-ClickHouse-User"), headers.get("X-ClickHouse-Key")
    auth = headers.get("Authorization", "")
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
