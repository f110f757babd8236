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


def tls_files(settings: Settings) -> tuple[Path, Path]:
    """The certificate and key the gateway serves with. The one place that picks them: today
    `CLAWSTREAM_GATEWAY_TLS_CERT` / `..._KEY`; once the project's PKI exists it is the default
    here."""
    cert, key = settings.gateway_tls_cert, settings.gateway_tls_key
    if cert is None or key is None:
        raise TlsConfigError(
            "the gateway serves HTTPS only: set CLAWSTREAM_GATEWAY_TLS_CERT and "
            "CLAWSTREAM_GATEWAY_TLS_KEY to a PEM certificate (with its chain) and its key")
    for what, path in (("certificate", cert), ("key", key)):
        if not Path(path).is_file():
            raise TlsConfigError(f"the gateway's TLS {what} {path} does not exist")
    return Path(cert), Path(key)


def serve(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn's graceful shutdown: answers in flight finish)."""
    import uvicorn

    from clawstream.gateway.app import create_app

    cert, key = tls_files(settings)
    config = uvicorn.Config(
        create_app(settings), host=host or settings.gateway_host,
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
def tokens_create(agent: str | None, agent_prefix: str | None, note: str) -> None:
    """Make a token; it is printed once, on stdout, and never stored."""
    from clawstream.gateway.tokens import TokenError, create_token

    try:
        token, record = create_token(get_settings(), agent=agent, agent_prefix=agent_prefix,
                                     note=note)
    except TokenError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"token {record.token_id} for {record.binding} (shown once; store it as the "
               "agent's CLAWSTREAM_INGEST_TOKEN):", err=True)
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
