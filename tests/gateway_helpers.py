"""For the gateway's tests and benchmark: a throw-away CA and server certificate (made with
`cryptography`), and `clawstream gateway` run as its own process (what users run)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import procs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class TlsFiles:
    """The CA a client trusts, and the certificate and key the gateway is given (None: the
    gateway serves its own from the project PKI, `pki_tls`)."""

    ca: Path
    cert: Path | None
    key: Path | None


def pki_tls(data_dir: Path) -> TlsFiles:
    """A gateway given no certificate: it serves the project CA's, made under `data_dir`."""
    return TlsFiles(data_dir / "security" / "pki" / "ca.crt", None, None)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_tls(directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
             ca_name: str = "clawstream test CA") -> TlsFiles:
    """A CA and a server certificate for `hosts`, signed by it (P-256, one day)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (x509.CertificateBuilder().subject_name(_name(ca_name)).issuer_name(_name(ca_name))
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                            False), critical=True)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    cert = (x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    files = TlsFiles(directory / "ca.pem", directory / "gateway.pem", directory / "gateway.key")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    files.key.chmod(0o600)
    return files


class GatewayProcess:
    """`clawstream gateway` on a port, with the environment's settings plus `env`."""

    def __init__(self, tls: TlsFiles, port: int, log_file: Path,
                 env: dict[str, str] | None = None) -> None:
        self.tls = tls
        self.port = port
        self.log_file = log_file
        self.url = f"https://127.0.0.1:{port}"
        given = ({} if tls.cert is None or tls.key is None else
                 {"CLAWSTREAM_GATEWAY_TLS_CERT": str(tls.cert),
                  "CLAWSTREAM_GATEWAY_TLS_KEY": str(tls.key)})
        self.env = {**{k: v for k, v in os.environ.items()
                       if not k.startswith("CLAWSTREAM_GATEWAY_TLS_")}, **given, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> GatewayProcess:
        log = self.log_file.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clawstream.cli", "gateway", "--port", str(self.port)],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                r = httpx.get(f"{self.url}/readyz", verify=self.ssl_context(), timeout=1.0)
                if r.status_code == 200:
                    return
            except (httpx.HTTPError, FileNotFoundError):  # (the CA: a gateway serving the
                pass  # project PKI's certificate makes it as it starts)
            time.sleep(0.1)
        raise TimeoutError(f"gateway not ready in {timeout}s:\n{self.log_tail()}")

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the test CA."""
        return ssl.create_default_context(cafile=str(self.tls.ca))

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def kill(self) -> None:
        """kill -9: no goodbye."""
        procs.kill9(self.proc)

    def stop(self) -> None:
        procs.stop(self.proc)
