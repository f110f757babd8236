"""The local PKI: a CA and the broker's certificate, made once with `cryptography`.

Like Elasticsearch 8's first start: nobody has to read a security guide. `ensure_pki(dir,
hosts)` makes (once) a private CA and a broker key and certificate signed by it, with subject
alternative names for the broker's host names and loopback, and writes them PEM-encoded under
`dir`; private keys are written 0600 and never leave it. Clients trust the CA (its certificate
is inlined in every client config file, so an agent machine needs nothing else).

The HTTPS ingest gateway's certificate comes from the same CA (`ensure_gateway_cert`, made
when `clawstream gateway` first starts without a certificate of its own, or by `clawstream pki
init --gateway-host NAME`), so one CA file is all an agent trusts, whichever way it sends.

Files (`<data_dir>/security/pki/`):
    ca.crt, ca.key       the CA (key 0600)
    broker.pem           the broker's PKCS#8 key and certificate chain (0600): Kafka's PEM keystore
    broker.crt           the broker's certificate alone (for inspection)
    gateway.crt          the gateway's certificate and the CA's (the chain it serves)
    gateway.key          the gateway's key (0600)
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
CERT_DAYS = 825
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Pki:
    """Where the PKI's files are."""

    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def broker_pem(self) -> Path:
        return self.dir / "broker.pem"

    @property
    def broker_cert(self) -> Path:
        return self.dir / "broker.crt"

    @property
    def gateway_cert(self) -> Path:
        return self.dir / "gateway.crt"

    @property
    def gateway_key(self) -> Path:
        return self.dir / "gateway.key"

    def exists(self) -> bool:
        return all(p.exists() for p in (self.ca_cert, self.ca_key, self.broker_pem))

    def ca_pem(self) -> str:
        return self.ca_cert.read_text()

    def broker_names(self) -> list[str]:
        """The host names and addresses the broker certificate is valid for."""
        return cert_names(x509.load_pem_x509_certificate(self.broker_cert.read_bytes()))

    def gateway_names(self) -> list[str]:
        """The host names and addresses the gateway certificate is valid for."""
        return cert_names(x509.load_pem_x509_certificate(self.gateway_cert.read_bytes()))


def cert_names(cert: x509.Certificate) -> list[str]:
    """A certificate's subject alternative names (DNS names, then addresses)."""
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(n) for n in san.get_values_for_type(x509.DNSName)] + [
        str(a) for a in san.get_values_for_type(x509.IPAddress)]


def _canonical(host: str) -> str:
    """How a host name or address appears among a certificate's names."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return host.lower()


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file readable by its owner only (created 0600, never wider)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "clawstream"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _san(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys([*hosts, *LOOPBACK_NAMES]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host.strip("[]"))))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def make_ca(cn: str = "clawstream local CA") -> tuple[ec.EllipticCurvePrivateKey,
                                                        x509.Certificate]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def issue(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, cn: str,
          hosts: Iterable[str]) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A server certificate for `hosts` (and loopback), signed by the CA."""
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_san(hosts), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def _ca(pki: Pki) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The CA's key and certificate, made now if there is none (an existing CA is never
    replaced: everything it signed stays trusted)."""
    if pki.ca_cert.exists() and pki.ca_key.exists():
        key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{pki.ca_key} is not the project CA's (EC) key")
        return key, x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    ca_key, ca_cert = make_ca()
    write_private(pki.ca_key, _pem_key(ca_key))
    pki.ca_cert.write_bytes(_pem_cert(ca_cert))
    return ca_key, ca_cert


def ensure_pki(directory: Path, hosts: Iterable[str] = ()) -> tuple[Pki, bool]:
    """The PKI under `directory`, made now if it is not there; (pki, made now?)."""
    pki = Pki(directory)
    if pki.exists():
        return pki, False
    ca_key, ca_cert = _ca(pki)
    key, cert = issue(ca_key, ca_cert, "clawstream broker", hosts)
    write_private(pki.broker_pem, _pem_key(key) + _pem_cert(cert) + _pem_cert(ca_cert))
    pki.broker_cert.write_bytes(_pem_cert(cert))
    return pki, True


#: a gateway certificate closer than this to its end is made again
RENEW_BEFORE = dt.timedelta(days=30)


def _gateway_cert_covers(pki: Pki, names: set[str]) -> bool:
    """The gateway's certificate is there, signed by this CA, valid for `names` and for more
    than `RENEW_BEFORE`."""
    if not (pki.gateway_cert.exists() and pki.gateway_key.exists() and pki.ca_cert.exists()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(pki.gateway_cert.read_bytes())
        cert.verify_directly_issued_by(
            x509.load_pem_x509_certificate(pki.ca_cert.read_bytes()))
    except (ValueError, TypeError, InvalidSignature):
        return False
    fresh = cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > RENEW_BEFORE
    return fresh and names <= {_canonical(n) for n in cert_names(cert)}


def ensure_gateway_cert(directory: Path, hosts: Iterable[str] = ()) -> tuple[Pki, bool]:
    """The gateway's server certificate under `directory`, signed by the project CA (made
    too if there is none), valid for `hosts` and loopback; (pki, made now?).

    An existing certificate that covers those names is kept (then the CA's key is not even
    read: a gateway machine may hold ca.crt, gateway.crt and gateway.key only); otherwise a
    new one is made for its old names and the new ones. Replicas sharing the folder take turns
    (a lock file), so none serves a key with another's certificate."""
    pki = Pki(directory)
    wanted = {_canonical(h) for h in [*hosts, *LOOPBACK_NAMES] if h}
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(directory / ".gateway.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _gateway_cert_covers(pki, wanted):
            return pki, False
        old = pki.gateway_names() if pki.gateway_cert.exists() else []
        ca_key, ca_cert = _ca(pki)
        key, cert = issue(ca_key, ca_cert, "clawstream gateway",
                          sorted({*old, *wanted} - set(LOOPBACK_NAMES)))
        write_private(pki.gateway_key, _pem_key(key))
        pki.gateway_cert.write_bytes(_pem_cert(cert) + _pem_cert(ca_cert))
        return pki, True
