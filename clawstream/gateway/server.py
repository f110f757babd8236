"""Running the gateway: uvicorn serving the app over TLS, and the CLI commands
`clawstream gateway` and `clawstream tokens create|revoke|list`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from clawstream.settings import Settings, get_settings

log = logging.getLogger(__name__)


class TlsConfigError(click.ClickException):
    """The gateway has no usable certificate and key."""


#: bind addresses that name no host (no certificate name to add for them)
_WILDCARDS = ("", "0.0.0.0", "::", "[::]")


def gateway_names(settings: Settings, bind_host: str | None = None) -> list[str]:
    """The names the gateway's own certificate is made for (loopback is always added):
    `CLAWSTREAM_GATEWAY_TLS_HOSTS` and the bind address unless it is a wildcard."""
    names = [h.strip() for h in settings.gateway_tls_hosts.split(",") if h.strip()]
    bind = bind_host or settings.gateway_host
    return names + ([bind] if bind not in _WILDCARDS else [])


def tls_files(settings: Settings, bind_host: str | None = None) -> tuple[Path, Path]:
    """The certificate (with its chain) and key the gateway serves with; the one place that
    picks them. `CLAWSTREAM_GATEWAY_TLS_CERT` / `..._KEY` when set (a public CA's, or the
    stack's); else the project PKI's gateway certificate (`<data_dir>/security/pki`, made once,
    key 0600), signed by the CA whose file every client config file carries."""
    cert, key = settings.gateway_tls_cert, settings.gateway_tls_key
    if cert is None and key is None:
        from clawstream.security.local import LocalSecurity

        local = LocalSecurity.of(settings)
        cert, key, made = local.gateway_tls(gateway_names(settings, bind_host))
        log.info("%s the project CA's gateway certificate %s (valid for %s; CA %s)",
                 "made" if made else "serving", cert, ", ".join(local.pki.gateway_names()),
                 local.pki.ca_cert)
        return cert, key
    if cert is None or key is None:
        raise TlsConfigError(
            "set both CLAWSTREAM_GATEWAY_TLS_CERT and CLAWSTREAM_GATEWAY_TLS_KEY (a PEM "
            "certificate with its chain, and its key), or neither: then the gateway serves a "
            "certificate of the project CA (CLAWSTREAM_GATEWAY_TLS_HOSTS names its hosts)")
    for what, path in (("certificate", cert), ("key", key)):
        if not Path(path).is_file():
            raise TlsConfigError(f"the gateway's TLS {what} {path} does not exist")
    return Path(cert), Path(key)


def serve(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn's graceful shutdown: answers in flight finish)."""
    import uvicorn

    from clawstream.gateway.app import create_app

    bind = host or settings.gateway_host
    cert, key = tls_files(settings, bind)
    config = uvicorn.Config(
        create_app(settings), host=bind,
        port=settings.gateway_port if port is None else port, ssl_certfile=str(cert),
        ssl_keyfile=str(key), access_log=False, log_config=None, server_header=False,
        timeout_keep_alive=30, lifespan="on")
    uvicorn.Server(config).run()


@click.command("gateway")
@click.option("--host", default=None, help="Bind address (default: CLAWSTREAM_GATEWAY_HOST).")
@click.option("--port", type=int, default=None,
              help="Port (default: CLAWSTREAM_GATEWAY_PORT; 0 picks a free one).")
def gateway(host: str | None, port: int | None) -> None:
    """Serve the HTTPS ingest gateway: POST /v1/events with a token, /healthz, /readyz,
    /metrics. Stateless: run as many replicas as needed behind any load balancer."""
    serve(get_settings(), host=host, port=port)


@click.group("tokens")
def tokens() -> None:
    """Gateway tokens: each binds an agent id (or a prefix) and is stored as a hash."""


@tokens.command("create")
@click.option("--agent", default=None, help="The one agent id the token may send as.")
@click.option("--agent-prefix", default=None,
              help="Every agent id starting with this (a fleet on one machine).")
@click.option("--note", default="", help="What the token is for (kept with its record).")
@click.option("--write-config", "config_file", default=None,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Enrol in one file: write the token, the gateway's URL and its CA into this "
                   "client config file (0600; added to a Kafka client config file already "
                   "there) instead of printing the token.")
@click.option("--url", default=None,
              help="With --write-config: the gateway's https:// URL as the agent reaches it "
                   "(default: CLAWSTREAM_INGEST_URL).")
@click.option("--ca", "ca_file", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="With --write-config: the CA that signed the certificate agents see "
                   "(default: the project CA, when the gateway serves the project PKI's "
                   "certificate; else the agent's system CAs).")
def tokens_create(agent: str | None, agent_prefix: str | None, note: str,
                  config_file: Path | None, url: str | None, ca_file: Path | None) -> None:
    """Make a token: printed once, on stdout, or written to a client config file with
    --write-config (then shown nowhere); only its hash is stored."""
    from clawstream.gateway.enrol import check_url, gateway_ca_pem, write_enrolment
    from clawstream.gateway.tokens import TokenError, create_token

    settings = get_settings()
    try:
        if config_file is not None:  # (checked before a token exists)
            url = check_url(url or settings.ingest_url)
            ca_pem = gateway_ca_pem(settings, ca_file)
        token, record = create_token(settings, agent=agent, agent_prefix=agent_prefix,
                                     note=note)
        if config_file is not None:
            assert url is not None
            write_enrolment(config_file, url=url, token=token, record=record, ca_pem=ca_pem,
                            namespace=settings.topic_namespace)
    except TokenError as exc:
        raise click.ClickException(str(exc)) from None
    if config_file is not None:
        click.echo(f"token {record.token_id} for {record.binding}: written with {url} and "
                   f"{'its CA' if ca_pem else 'no CA (system CAs)'} to {config_file} (0600); "
                   "on the agent's machine, CLAWSTREAM_KAFKA_CLIENT_CONFIG=<that file>",
                   err=True)
        return
    click.echo(f"token {record.token_id} for {record.binding} (shown once; store it as the "
               "agent's CLAWSTREAM_INGEST_TOKEN, or use --write-config):", err=True)
    sys.stdout.write(token.get_secret_value() + "\n")


@tokens.command("revoke")
@click.argument("token_id")
def tokens_revoke(token_id: str) -> None:
    """Revoke a token by its id: every gateway replica refuses it within seconds."""
    from clawstream.gateway.tokens import TokenError, revoke_token

    try:
        record = revoke_token(get_settings(), token_id)
    except TokenError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"token {record.token_id} ({record.binding}) revoked")


@tokens.command("list")
def tokens_list() -> None:
    """Every token's id, binding and state (never a token or its hash)."""
    from clawstream.gateway.tokens import TokenError, list_tokens

    try:
        records = list_tokens(get_settings())
    except TokenError as exc:
        raise click.ClickException(str(exc)) from None
    for r in records:
        state = "revoked" if r.revoked_at is not None else "live"
        click.echo(f"{r.token_id}  {state:8} {r.binding}  {r.note}")
