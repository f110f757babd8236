"""The security of the local installation: its PKI, its credential store, how its broker runs.

`<data_dir>/security/` (0700):
    pki/                 CA and broker certificate (`clawstream.security.pki`)
    credentials/         client config files made here (`clawstream.security.credentials`)
    broker-<port>.json   how the local broker on that port listens, written at each start
                         (the Kafka runtime reads it to know whether to use a credential)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clawstream.kafka.security import broker_mode_file
from clawstream.security.credentials import ADMIN, Credential, Store, new_password
from clawstream.security.pki import Pki, ensure_gateway_cert, ensure_pki


@dataclass(frozen=True)
class LocalSecurity:
    dir: Path

    @classmethod
    def of(cls, settings: Any) -> LocalSecurity:
        return cls((Path(settings.data_dir) / "security").resolve())

    @property
    def pki(self) -> Pki:
        return Pki(self.dir / "pki")

    @property
    def store(self) -> Store:
        return Store(self.dir / "credentials")

    def ensure(self, bootstrap: str, hosts: Iterable[str] = ()) -> Credential:
        """The PKI and the admin credential, made once; returns the admin credential."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.dir.chmod(0o700)
        pki, _ = ensure_pki(self.pki.dir, hosts)
        admin = self.store.get(ADMIN)
        if admin is None:  # (one admin per data folder: every broker formatted from it has it)
            admin = Credential(ADMIN, "admin", "", bootstrap, new_password(), pki.ca_pem())
            admin.write(self.store.path(ADMIN))
        return admin

    def gateway_tls(self, hosts: Iterable[str] = ()) -> tuple[Path, Path, bool]:
        """The gateway's certificate chain and key from the project CA, made once (see
        `ensure_gateway_cert`); (cert, key, made now?)."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.dir.chmod(0o700)
        pki, made = ensure_gateway_cert(self.pki.dir, hosts)
        return pki.gateway_cert, pki.gateway_key, made

    def mark_broker(self, bootstrap: str, protocol: str) -> None:
        """Record how the local broker at `bootstrap` listens now."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        broker_mode_file(self.dir, bootstrap).write_text(json.dumps(
            {"bootstrap": bootstrap, "protocol": protocol}) + "\n")


if __name__ == "__main__":  # `python -m clawstream.security.local --admin-config` (make bench)
    import sys

    from clawstream.kafka.security import local_broker_secured
    from clawstream.settings import get_settings

    if sys.argv[1:] == ["--admin-config"]:
        current = get_settings()
        if local_broker_secured(current):
            print(LocalSecurity.of(current).store.path(ADMIN))
