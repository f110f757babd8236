"""Making credentials on the broker as admin: the CLI's `credentials add/revoke`, and the
per-role credentials `clawstream up` makes for an environment on a secured local broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clawstream.security.acls import Names
from clawstream.security.credentials import (
    ADMIN,
    Credential,
    CredentialError,
    add,
    default_name,
    revoke,
)
from clawstream.security.local import LocalSecurity

#: the roles `clawstream up` makes a credential for on this machine
LOCAL_ROLES = ("worker", "sink", "notifier", "agent")


def names_of(settings: Any) -> Names:
    """The physical names of the environment `settings` describe."""
    return Names(settings.topic_namespace, settings.worker_app_id, settings.sink_group,
                 settings.notifier_group)


def _admin_client(settings: Any) -> Any:
    from confluent_kafka.admin import AdminClient

    from clawstream.kafka.config import client_config

    return AdminClient(client_config(settings, "admin", "admin"))


def add_credential(settings: Any, role: str, name: str, out: Path | None = None) -> Credential:
    """Create principal `name` with `role`'s ACLs in the settings' environment; its client
    config file goes to the local store (and to `out` if given). Needs the admin credential."""
    local = LocalSecurity.of(settings)
    if not local.pki.exists():
        raise CredentialError(f"no PKI under {local.pki.dir}: start the broker secured first "
                              "(`clawstream up`)")
    if name == ADMIN:
        raise CredentialError("'admin' is the broker's super user: choose another name")
    cred = add(_admin_client(settings), role, name, names_of(settings),
               settings.bootstrap_servers, local.pki.ca_pem())
    cred.write(local.store.path(name))
    _await_usable(settings, local.store.path(name))
    if out is not None:
        cred.write(out)
    return cred


def _await_usable(settings: Any, path: Path, timeout: float = 20.0) -> None:
    """Return once the broker accepts the new credential: the controller has it the moment
    `add` returns, the broker a moment later, and a client that connected in between would
    be refused (an agent started right after `credentials add` would say so and wait)."""
    import logging
    import time

    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from clawstream.kafka.config import client_config

    quiet = logging.getLogger("clawstream.security.await")
    quiet.setLevel(logging.CRITICAL)
    as_new = settings.model_copy(update={"kafka_client_config": path,
                                         "kafka_sasl_username": None})
    deadline = time.monotonic() + timeout
    while True:
        client = AdminClient(client_config(as_new, "tool", "admin", {
            "logger": quiet, "error_cb": lambda _err: None}))
        try:
            client.list_topics(timeout=2)
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise CredentialError(f"the broker at {settings.bootstrap_servers} does not "
                                      f"accept the new credential {path.stem} after "
                                      f"{timeout:.0f}s") from None


def revoke_credential(settings: Any, name: str) -> None:
    """Delete principal `name` on the broker and its file from the local store."""
    revoke(_admin_client(settings), name)
    LocalSecurity.of(settings).store.path(name).unlink(missing_ok=True)


def provision_roles(settings: Any, roles: tuple[str, ...] = LOCAL_ROLES) -> list[str]:
    """One credential per role for the settings' namespace, unless the store has it."""
    store = LocalSecurity.of(settings).store
    made = []
    for role in roles:
        name = default_name(role, settings.topic_namespace)
        if store.get(name) is None:
            add_credential(settings, role, name)
            made.append(name)
    return made
