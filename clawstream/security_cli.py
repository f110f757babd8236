"""`clawstream pki` and `clawstream credentials`: the local CA and one credential per client."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from clawstream.settings import get_settings

console = Console()


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group("pki")
def pki() -> None:
    """The local certificate authority that signs the broker's certificate."""


@pki.command("init")
@click.option("--host", "hosts", multiple=True,
              help="A host name or address the broker certificate must be valid for, besides "
                   "loopback (repeatable).")
def pki_init(hosts: tuple[str, ...]) -> None:
    """Make the CA, the broker certificate and the admin credential (once; `clawstream up`
    does it on its first secured start). Keys and passwords are written 0600."""
    from clawstream.security.local import LocalSecurity

    settings = get_settings()
    local = LocalSecurity.of(settings)
    existed = local.pki.exists()
    local.ensure(settings.bootstrap_servers, hosts)
    console.print(("PKI already there: " if existed else "made the PKI: ") + str(local.pki.dir))
    console.print(f"broker certificate valid for: {', '.join(local.pki.broker_names())}")
    console.print(f"CA certificate (give it to clients): {local.pki.ca_cert}")


@click.group("credentials")
def credentials() -> None:
    """One SCRAM credential per client, with its role's least-privilege ACLs.

    \b
    roles: agent (writes raw events), gateway, worker, sink, notifier, reader, admin
    An agent machine needs only the client config file `add` writes; point
    CLAWSTREAM_KAFKA_CLIENT_CONFIG at it there."""


@credentials.command("add")
@click.argument("role", type=click.Choice(
    ("agent", "gateway", "worker", "sink", "notifier", "reader", "admin")))
@click.argument("name")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the client config file here (0600).")
def credentials_add(role: str, name: str, out: Path | None) -> None:
    """Create principal NAME with ROLE's rights in this namespace (CLAWSTREAM_TOPIC_NAMESPACE)
    and write its client config file. Adding an existing NAME gives it a new password."""
    from clawstream.security.credentials import CredentialError
    from clawstream.security.local import LocalSecurity
    from clawstream.security.provision import add_credential

    settings = get_settings()
    try:
        add_credential(settings, role, name, out)
    except CredentialError as exc:
        raise _fail(exc) from exc
    path = LocalSecurity.of(settings).store.path(name)
    console.print(f"{role} credential {name!r} for namespace {settings.topic_namespace!r}: "
                  f"client config file {out or path} (keep it secret: it holds the password)")


@credentials.command("revoke")
@click.argument("name")
def credentials_revoke(name: str) -> None:
    """Delete principal NAME: its user and ACLs on the broker (its open connections are
    refused from their next request) and its client config file here."""
    from clawstream.security.credentials import CredentialError
    from clawstream.security.provision import revoke_credential

    try:
        revoke_credential(get_settings(), name)
    except CredentialError as exc:
        raise _fail(exc) from exc
    console.print(f"revoked {name!r}")


@credentials.command("list")
def credentials_list() -> None:
    """The credentials made on this machine (never their passwords)."""
    from clawstream.security.local import LocalSecurity

    store = LocalSecurity.of(get_settings()).store
    table = Table(title=f"credentials in {store.dir}")
    for col in ("name", "role", "namespace", "bootstrap"):
        table.add_column(col)
    for cred in store.all() if store.dir.exists() else []:
        table.add_row(cred.name, cred.role, cred.namespace or "''", cred.bootstrap_servers)
    console.print(table)
