"""Credentials: one SCRAM principal per client, with its role's ACLs and a client config file.

`add(admin, role, name, names)` makes a high-entropy password, creates the SCRAM-SHA-512
user on the broker (Admin API), grants the role's ACLs for one environment (`acls.grants`)
and writes the client config file: everything a machine needs to connect as that principal
(bootstrap servers, SASL user and password, the CA certificate inline), 0600. `revoke(name)`
deletes the user and every ACL of its principal, so its open connections are refused from the
next request on (and cut at the next re-authentication), and removes the file.

The local store (`<data_dir>/security/credentials/<name>.json`) keeps the files of the
credentials made on this machine; the Kafka runtime finds a process's credential there by role
and namespace when nothing else is configured (see `clawstream.kafka.security`).

The same file may carry a gateway token (`ingest_url`, `ingest_token`, `ingest_ca_pem`:
`clawstream tokens create --write-config`, `update_client_config`), or only that: an agent
machine that reaches Kafka through the HTTPS gateway holds no Kafka credential at all.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from clawstream.security.acls import ROLES, Grant, Names, grants
from clawstream.security.pki import write_private

MECHANISM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 8192
#: the one super user, bootstrapped when the broker's storage is formatted
ADMIN = "admin"


class CredentialError(RuntimeError):
    """A credential cannot be made, found or revoked; the message says why."""


@dataclass(frozen=True)
class Credential:
    """A client config file's content. The password is a secret: never logged or shown."""

    name: str
    role: str
    namespace: str
    bootstrap_servers: str
    password: SecretStr
    ca_pem: str
    security_protocol: str = "SASL_SSL"
    sasl_mechanism: str = MECHANISM

    @property
    def username(self) -> str:
        return self.name

    def to_json(self) -> str:
        d = asdict(self)
        d["password"] = self.password.get_secret_value()
        d["username"] = self.name
        return json.dumps(d, indent=1) + "\n"

    @classmethod
    def from_file(cls, path: Path) -> Credential:
        try:
            d = json.loads(path.read_text())
            return cls(name=d["name"], role=d["role"], namespace=d.get("namespace", ""),
                       bootstrap_servers=d["bootstrap_servers"],
                       password=SecretStr(d["password"]), ca_pem=d["ca_pem"],
                       security_protocol=d.get("security_protocol", "SASL_SSL"),
                       sasl_mechanism=d.get("sasl_mechanism", MECHANISM))
        except (OSError, ValueError, KeyError) as exc:
            raise CredentialError(f"cannot read the client config file {path}: {exc}") from None

    @classmethod
    def in_file(cls, path: Path) -> Credential | None:
        """The Kafka credential of a client config file, or None when it holds none (a
        gateway token only)."""
        data = _read_config(path)
        if "password" not in data and "bootstrap_servers" not in data:
            return None
        return cls.from_file(path)

    def write(self, path: Path) -> Path:
        write_private(path, self.to_json().encode())
        return path


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CredentialError(f"cannot read the client config file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise CredentialError(f"the client config file {path} is not a JSON object")
    return data


#: the fields of a client config file that say how to reach the ingest gateway
INGEST_FIELDS = ("ingest_url", "ingest_token", "ingest_ca_pem", "ingest_token_id",
                 "ingest_binding")


def update_client_config(path: Path, fields: Mapping[str, Any], *, name: str,
                         namespace: str) -> Path:
    """Add the gateway's `fields` (INGEST_FIELDS) to the client config file at `path` (its
    Kafka credential, if any, stays), or make one for agent `name`; 0600. Earlier gateway
    fields are replaced whole: a new token never keeps an old token's CA."""
    unknown = set(fields) - set(INGEST_FIELDS)
    if unknown:
        raise CredentialError(f"not gateway fields of a client config file: {sorted(unknown)}")
    current = (_read_config(path) if path.exists() else
               {"name": name, "role": "agent", "namespace": namespace})
    kept = {k: v for k, v in current.items() if k not in INGEST_FIELDS}
    write_private(path, (json.dumps({**kept, **fields}, indent=1) + "\n").encode())
    return path


def new_password() -> SecretStr:
    return SecretStr(secrets.token_urlsafe(32))


@dataclass(frozen=True)
class Store:
    """The credentials made on this machine (`<data_dir>/security/credentials`)."""

    dir: Path

    def path(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise CredentialError(f"bad credential name {name!r}")
        return self.dir / f"{name}.json"

    def get(self, name: str) -> Credential | None:
        p = self.path(name)
        return Credential.from_file(p) if p.exists() else None

    def all(self) -> list[Credential]:
        return [Credential.from_file(p) for p in sorted(self.dir.glob("*.json"))]

    def for_role(self, role: str, namespace: str) -> Credential | None:
        """The credential made for `role` in `namespace` (the default one first)."""
        default = self.get(default_name(role, namespace))
        if default is not None:
            return default
        return next((c for c in self.all() if c.role == role and c.namespace == namespace),
                    None)


def default_name(role: str, namespace: str) -> str:
    """The name `clawstream up` gives an environment's credential for a role."""
    return ADMIN if role == ADMIN else f"{namespace}{role}"


# -- the broker side (Admin API) ------------------------------------------------------------------
def _acl_bindings(principal: str, role_grants: list[Grant]) -> list[Any]:
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    kinds = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP,
             "cluster": ResourceType.BROKER}  # (librdkafka names the cluster resource BROKER)
    return [AclBinding(kinds[g.resource], g.name,
                       ResourcePatternType[g.pattern.upper()], f"User:{principal}", "*",
                       AclOperation[g.operation], AclPermissionType.ALLOW)
            for g in role_grants]


def _wait(futures: Any, what: str, timeout: float = 30.0) -> None:
    for fut in (futures.values() if isinstance(futures, dict) else futures):
        try:
            fut.result(timeout)
        except Exception as exc:  # the broker's answer, named
            raise CredentialError(f"{what} failed: {exc}") from None


def add(admin: Any, role: str, name: str, names: Names, bootstrap: str, ca_pem: str,
        password: SecretStr | None = None) -> Credential:
    """Create (or reset the password of) principal `name` with `role`'s ACLs."""
    from confluent_kafka.admin import (
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    if role not in ROLES:
        raise CredentialError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    password = password or new_password()
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    _wait(admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
        name, info, password.get_secret_value().encode())]), f"creating user {name}")
    bindings = _acl_bindings(name, grants(role, names))
    if bindings:
        _wait(admin.create_acls(bindings), f"granting {role} rights to {name}")
    return Credential(name, role, names.namespace, bootstrap, password, ca_pem)


def revoke(admin: Any, name: str) -> None:
    """Delete principal `name`: its SCRAM user and every ACL naming it."""
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
        ScramMechanism,
        UserScramCredentialDeletion,
    )

    if name == ADMIN:
        raise CredentialError("the admin user is the broker's super user: not revoked")
    # (None: any name, any host; the stubs type them str)
    acl_filter = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY,  # type: ignore[arg-type]
                                  f"User:{name}", None, AclOperation.ANY,  # type: ignore[arg-type]
                                  AclPermissionType.ANY)
    _wait(admin.delete_acls([acl_filter]), f"deleting the ACLs of {name}")
    futures = admin.alter_user_scram_credentials([UserScramCredentialDeletion(
        name, ScramMechanism.SCRAM_SHA_512)])
    for fut in futures.values():
        try:
            fut.result(30)
        except Exception as exc:
            if "RESOURCE_NOT_FOUND" not in str(exc):  # never made, or revoked already
                raise CredentialError(f"deleting user {name} failed: {exc}") from None
