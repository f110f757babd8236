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
@click.option("--broker-owner", type=int, default=None,
              help="Give the broker's key file (still 0600) to this uid: the Kafka container's "
                   "user, when the PKI is made in a volume it mounts.")
@click.option("--gateway-host", "gateway_hosts", multiple=True,
              help="Also make the ingest gateway's certificate (what `clawstream gateway` "
                   "serves without CLAWSTREAM_GATEWAY_TLS_CERT), valid for this name or "
                   "address agents reach it by, besides loopback (repeatable).")
def pki_init(hosts: tuple[str, ...], broker_owner: int | None,
             gateway_hosts: tuple[str, ...]) -> None:
    """Make the CA, the broker certificate and the admin credential (once; `clawstream up`
    does it on its first secured start). Keys and passwords are written 0600."""
    from clawstream.gateway.server import gateway_names
    from clawstream.security.local import LocalSecurity

    settings = get_settings()
    local = LocalSecurity.of(settings)
    existed = local.pki.exists()
    local.ensure(settings.bootstrap_servers, hosts)
    if broker_owner is not None:
        import os

        os.chown(local.pki.broker_pem, broker_owner, -1)
        os.chmod(local.pki.dir, 0o755)  # (the key file itself stays 0600)
    console.print(("PKI already there: " if existed else "made the PKI: ") + str(local.pki.dir))
    console.print(f"broker certificate valid for: {', '.join(local.pki.broker_names())}")
    if gateway_hosts:
        cert, _key, made = local.gateway_tls([*gateway_hosts, *gateway_names(settings)])
        console.print(f"{'made' if made else 'kept'} the gateway certificate {cert}, valid "
                      f"for: {', '.join(local.pki.gateway_names())}")
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


#: the secrets a docker-compose stack takes from its `.env` (variable -> what it is for)
COMPOSE_SECRETS = {
    "KAFKA_ADMIN_PASSWORD": "Kafka's super user (PLAIN, bootstraps the stack's credentials)",
    "KAFKA_WORKER_PASSWORD": "the stream worker's Kafka credential",
    "KAFKA_SINK_PASSWORD": "the sink's Kafka credential",
    "KAFKA_NOTIFIER_PASSWORD": "the notifier's Kafka credential",
    "KAFKA_AGENT_PASSWORD": "the simulated fleet's (agent) Kafka credential",
    "KAFKA_GATEWAY_PASSWORD": "the ingest gateway's Kafka credential",
    "CLICKHOUSE_ADMIN_PASSWORD": "ClickHouse admin (migrations, user management)",
    "CLICKHOUSE_WRITER_PASSWORD": "ClickHouse writer (the sink)",
    "CLICKHOUSE_READER_PASSWORD": "ClickHouse reader (queries, Grafana; readonly)",
    "GRAFANA_ADMIN_PASSWORD": "Grafana's admin user",
}
#: role -> the variable holding its password, for `provision --from-env`
ROLE_SECRETS = {"worker": "KAFKA_WORKER_PASSWORD", "sink": "KAFKA_SINK_PASSWORD",
                "notifier": "KAFKA_NOTIFIER_PASSWORD", "agent": "KAFKA_AGENT_PASSWORD",
                "gateway": "KAFKA_GATEWAY_PASSWORD"}


@credentials.command("compose-env")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path(".env"),
              show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing file (new passwords).")
def credentials_compose_env(out: Path, force: bool) -> None:
    """Write the `.env` docker-compose takes every password from (random, 0600): the compose
    file itself holds none."""
    from clawstream.security.credentials import new_password
    from clawstream.security.pki import write_private

    if out.exists() and not force:
        raise click.ClickException(f"{out} exists (use --force to make new passwords)")
    lines = ["# made by `clawstream credentials compose-env`: secrets, keep this file private"]
    for var, what in COMPOSE_SECRETS.items():
        lines += [f"# {what}", f"{var}={new_password().get_secret_value()}"]
    write_private(out, ("\n".join(lines) + "\n").encode())
    console.print(f"wrote {out} ({len(COMPOSE_SECRETS)} secrets, mode 0600)")


@credentials.command("provision")
@click.option("--from-env", "from_env", is_flag=True, required=True,
              help="Each role's password from its variable (KAFKA_WORKER_PASSWORD, ...).")
def credentials_provision(from_env: bool) -> None:
    """Make one credential per server role (worker, sink, notifier, agent, gateway) named after
    the role, with the passwords the environment gives (what a docker-compose stack's
    one-shot `credentials` service runs as admin). Idempotent."""
    import os

    from pydantic import SecretStr

    from clawstream.security.credentials import CredentialError, add
    from clawstream.security.provision import _admin_client, names_of

    settings = get_settings()
    missing = [v for v in ROLE_SECRETS.values() if not os.environ.get(v)]
    if missing:
        raise click.ClickException(f"missing in the environment: {', '.join(missing)}")
    admin = _admin_client(settings)
    try:
        for role, var in ROLE_SECRETS.items():
            add(admin, role, role, names_of(settings), settings.bootstrap_servers, "",
                SecretStr(os.environ[var]))
            console.print(f"{role}: ready")
    except CredentialError as exc:
        raise _fail(exc) from exc


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
