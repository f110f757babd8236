"""Where a sink's inserts go, so that several sinks can share one consumer group.

- A ClickHouse server: every sink connects to it; sinks of one group simply share the
  partitions.
- The embedded engine, not owned: this sink claims its directory (`ChdbOwner`), opens it,
  migrates it and serves it on its loopback endpoint (unless `--no-endpoint`): the owner.
- The embedded engine, owned by another live process that serves it: this sink is a guest.
  chdb lets one process open a directory, so the guest inserts through the owner's endpoint,
  found in the owner file, as the endpoint's `writer` user (inserts and reads, no DDL; its
  password from this data folder's users file, or CLAWSTREAM_CLICKHOUSE_USER/_PASSWORD). It
  builds rows in Python and sends them in ClickHouse's Native format: the fast path has the
  engine read a local file, which the endpoint allows nobody.
- The owner gone while a guest runs: the guest's inserts fail, and are retried (nothing is
  committed: its records stay in Kafka). Each failure looks at the owner again (`recover`):
  another owner serving: insert through it; nobody: claim the directory and become the owner
  (open, migrate, serve), and the insert is retried on the engine in this process. A failed
  takeover (a process holding the engine without an endpoint) is retried the same way.
"""

from __future__ import annotations

import logging
import time
from typing import Literal

from clickhouse_connect.driver.client import Client

from clawstream.settings import Settings
from consumers import clickhouse as ch
from consumers.clickhouse.access import endpoint_client
from consumers.sink import metrics

log = logging.getLogger(__name__)

Role = Literal["server", "owner", "guest"]
ROLES: tuple[Role, ...] = ("server", "owner", "guest")
#: how long a starting sink waits for a starting owner's endpoint, or for the engine's lock
OPEN_WAIT_S = 60.0
#: the endpoint user a guest sink inserts as, unless the settings name one
GUEST_USER = "writer"


class Target:
    """The ClickHouse a sink writes into: `open` decides the role and gives the client,
    `recover` answers an insert's failure with a new client (guest), `close` lets go."""

    def __init__(self, settings: Settings, *, serve_endpoint: bool = True,
                 client: Client | None = None, wait: float = OPEN_WAIT_S) -> None:
        self.settings = settings
        self.serve_endpoint = serve_endpoint
        self.wait = wait
        self._given = client
        self.role: Role = "server" if not settings.is_embedded_clickhouse else "owner"
        self.url: str | None = None  # a guest's: the owner's endpoint
        self._owner: ch.ChdbOwner | None = None

    def open(self) -> Client:
        """The client to insert with, in the role the engine's state gives us."""
        if self._given is not None or not self.settings.is_embedded_clickhouse \
                or ch.claimed_here(self.settings):  # (another sink of this process owns it)
            client = self._given or ch.connect(self.settings, wait=self.wait)
            ch.migrate(client, layout=ch.layout_of(self.settings))
            self._set_role(self.role)
            return client
        deadline = time.monotonic() + self.wait
        while True:
            owner = ch.ChdbOwner(self.settings)
            if owner.claim(serves=self.serve_endpoint):
                return self._own(owner)
            state, url = ch.find_owner(self.settings)
            if url is not None:
                return self._join(url)
            if state == "closed":
                raise ch.ClickHouseUnavailable(
                    f"the embedded ClickHouse in {self._where()} is owned by a sink that "
                    f"serves no endpoint (pid {ch.owner_pid(self.settings)}, started with "
                    "--no-endpoint): a second sink inserts through the owner's endpoint; "
                    "restart that one without --no-endpoint, or use a ClickHouse server")
            if time.monotonic() > deadline:
                raise ch.ClickHouseUnavailable(
                    f"the embedded ClickHouse in {self._where()} is owned by pid "
                    f"{ch.owner_pid(self.settings)}, which has served no endpoint for "
                    f"{self.wait:.0f} s; wait for it, or stop it")
            time.sleep(0.2)  # the owner is opening the engine: its endpoint comes shortly

    def recover(self, exc: Exception) -> Client | None:
        """After a failed call: a client worth retrying with (a guest whose owner moved or
        died), or None (retry as before)."""
        if self.role != "guest":
            return None
        state, url = ch.find_owner(self.settings)
        try:
            if url is not None and url != self.url:
                log.warning("the chdb owner now serves on %s; inserting through it", url)
                return self._join(url)
            if url is None and state is None:
                owner = ch.ChdbOwner(self.settings)
                if owner.claim(serves=self.serve_endpoint):
                    log.warning("the chdb owner at %s is gone; this sink takes the embedded "
                                "ClickHouse in %s over", self.url, self._where())
                    return self._own(owner)
        except ch.ClickHouseUnavailable as failed:
            log.error("%s", failed)
            return None
        if url is None:
            log.warning("the chdb owner at %s does not serve (%s); retrying: this sink's "
                        "records stay uncommitted in Kafka until an owner serves", self.url,
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return None

    def close(self) -> None:
        if self._owner is not None:
            self._owner.release()
            self._owner = None

    # -- the roles ----------------------------------------------------------------------------
    def _own(self, owner: ch.ChdbOwner) -> Client:
        """Open the claimed engine, migrate it, serve it."""
        try:
            client = ch.connect(self.settings, wait=self.wait)
            ch.migrate(client, layout=ch.layout_of(self.settings))
            if self.serve_endpoint:
                owner.serve()
        except Exception:
            owner.release()
            raise
        self._owner, self.url = owner, None
        self._set_role("owner")
        return client

    def _join(self, url: str) -> Client:
        """A client of the owner's endpoint, as the writer (its schema checked)."""
        guest = self.settings.model_copy(
            update={"clickhouse_user": self.settings.clickhouse_user or GUEST_USER})
        if guest.clickhouse_user == "reader":
            raise ch.ClickHouseUnavailable(
                "CLAWSTREAM_CLICKHOUSE_USER=reader cannot insert: a second sink inserts "
                "through the chdb owner's endpoint as writer (leave the setting unset) or admin")
        client = endpoint_client(guest, url)
        try:
            applied = {int(r[0]) for r in client.query(
                "SELECT version FROM schema_migrations").result_rows}
        except Exception as exc:
            client.close()
            raise ch.ClickHouseUnavailable(
                f"the chdb owner's endpoint {url} failed: {str(exc).splitlines()[0]}") from None
        missing = sorted({m.version for m in ch.discover()} - applied)
        if missing:
            client.close()
            raise ch.ClickHouseUnavailable(
                f"the chdb owner (pid {ch.owner_pid(self.settings)}) has not applied "
                f"migrations {missing} that this sink writes for: restart it with this "
                "version")
        log.info("the embedded ClickHouse in %s is owned by pid %s: this sink inserts "
                 "through its endpoint %s as %s", self._where(), ch.owner_pid(self.settings),
                 url, guest.clickhouse_user)
        self.url = url
        self._set_role("guest")
        return client

    def _set_role(self, role: Role) -> None:
        self.role = role
        for each in ROLES:
            metrics.ROLE.labels(each).set(each == role)

    def _where(self) -> str:
        return str(ch.chdb_path(self.settings.resolved_clickhouse_dsn))
