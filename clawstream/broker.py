"""The local Apache Kafka broker: fetched with Maven, run in KRaft mode on loopback.

No Kafka broker exists in PyPI or Debian, so the project fetches the real broker's jars from
Maven Central once (`infra/kafka/pom.xml`) into `<cache_dir>/kafka/<version>/libs`, formats
a single-node KRaft storage once, and starts `kafka.Kafka` as a detached process that
outlives the command that started it (`clawstream up` / `clawstream down`). Tests use
`LocalBroker` on other ports to run a second, private broker (for outage tests).

Secure by default (`secure=True`, what `clawstream up` does unless `--insecure`): clients
connect with SASL_SSL (SCRAM-SHA-512) over TLS with a certificate of the project's own CA
(`clawstream.security`), the `StandardAuthorizer` denies whatever no ACL allows, and `admin`
(bootstrapped into the storage when it is formatted) is the one super user. The controller
listener (loopback) uses SASL/PLAIN over TLS with the same admin secret: KRaft controllers
cannot check SCRAM credentials, which live in the metadata they serve. Revoking a credential
deletes its ACLs, which the authorizer applies to the very next request, also on connections
already open (periodic re-authentication is left off: aiokafka, faust's client, cannot do it
and would be disconnected every period).

Layout of one broker (`<data_dir>/kafka-<port>/` unless given):
    server.properties, log4j2.properties  generated on every start (0600: it holds secrets)
    data/                                 KRaft metadata + topic logs (formatted once)
    server.log                            the broker's own log (log4j2, rolled)
    console.log                           the JVM's stdout/stderr (crashes, early errors)
    broker.pid                            pid of the running broker
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from clawstream.broker_properties import (
    java_quote,
    log4j2_properties,
    new_cluster_id,
    render_properties,
    secure_properties,
    server_properties,
)
from clawstream.kafka.config import KafkaSettings, client_config, kafka_settings
from clawstream.procs import DetachedProcess, file_lock, port_open, tail_file
from clawstream.security.credentials import CredentialError
from clawstream.security.local import LocalSecurity
from clawstream.security.pki import write_private
from clawstream.settings import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)

POM = PROJECT_ROOT / "infra" / "kafka" / "pom.xml"
MARKER = ".complete"
JAVA_HEAP = "-Xmx768m"
MIN_JAVA = 17
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


class BrokerError(RuntimeError):
    """The local broker cannot be fetched, started or stopped; the message says why."""


# --- prerequisites -----------------------------------------------------------------------------


def java_binary() -> str:
    """Path of a usable `java` (17+), or a clear error saying how to get one."""
    java = shutil.which("java")
    if java is None:
        raise BrokerError(
            "java not found: the local Kafka broker needs Java 17+ "
            "(Debian: apt-get install default-jre-headless, or run scripts/bootstrap.sh)"
        )
    out = subprocess.run(
        [java, "-version"], capture_output=True, text=True, check=False
    ).stderr
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if m:
        major = int(m.group(1))
        if major == 1 and m.group(2):  # "1.8.0_..." style
            major = int(m.group(2))
        if major < MIN_JAVA:
            raise BrokerError(f"{java} is Java {major}; Kafka 4.x needs Java {MIN_JAVA}+")
    return java


def libs_dir(settings: Settings) -> Path:
    """Where the jars of `settings.kafka_version` live once fetched."""
    return Path(settings.cache_dir) / "kafka" / settings.kafka_version / "libs"


def _pom_digest(version: str) -> str:
    return hashlib.sha256(POM.read_bytes() + version.encode()).hexdigest()


def jars_ready(settings: Settings) -> bool:
    """True when the jars were fetched completely for this version and this pom."""
    marker = libs_dir(settings).parent / MARKER
    try:
        return marker.read_text().strip() == _pom_digest(settings.kafka_version)
    except OSError:
        return False


def fetch_kafka(settings: Settings, *, force: bool = False) -> Path:
    """Fetch the broker's jars with Maven once; returns the libs folder.

    A marker file (holding a digest of the pom and version) is written only after Maven
    succeeded, so an interrupted download is redone, and a changed pom re-fetches.
    """
    libs = libs_dir(settings)
    if not force and jars_ready(settings):
        return libs
    version_dir = libs.parent
    with file_lock(version_dir.parent / f".{settings.kafka_version}.lock"):
        if not force and jars_ready(settings):
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError(
                "mvn not found: Maven fetches the Kafka broker from Maven Central "
                "(Debian: apt-get install maven, or run scripts/bootstrap.sh)"
            )
        version_dir.mkdir(parents=True, exist_ok=True)
        tmp = version_dir / "libs.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        mvn_log = version_dir / "maven.log"
        cmd = [
            mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(POM),
            f"-Dkafka.version={settings.kafka_version}",
            "dependency:copy-dependencies", f"-DoutputDirectory={tmp}",
        ]
        log.info("fetching Apache Kafka %s jars with Maven (once)", settings.kafka_version)
        with open(mvn_log, "w") as out:
            rc = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, check=False
            ).returncode
        if rc != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
            raise BrokerError(
                f"Maven could not fetch Kafka {settings.kafka_version} (exit {rc}); "
                f"see {mvn_log}:\n{tail_file(mvn_log)}"
            )
        shutil.rmtree(libs, ignore_errors=True)
        tmp.rename(libs)
        (version_dir / MARKER).write_text(_pom_digest(settings.kafka_version) + "\n")
        log.info("Kafka jars ready in %s", libs)
    return libs


# --- probing ----------------------------------------------------------------------------------


def _split_hostport(bootstrap: str) -> tuple[str, int]:
    first = bootstrap.split(",")[0].strip()
    if "://" in first:
        first = first.split("://", 1)[1]
    host, _, port = first.rpartition(":")
    if not host or not port.isdigit():
        raise BrokerError(f"cannot parse bootstrap servers {bootstrap!r} (want host:port)")
    return host.strip("[]"), int(port)


def broker_answers(target: str | KafkaSettings, timeout: float = 3.0) -> bool:
    """True when a Kafka broker answers at the address of `target` (settings, with their
    credentials, or a bootstrap address): it returns metadata, or refuses our credential (a
    broker is there; the client's own error says why).

    A plain TCP probe first keeps librdkafka from logging connection errors when nothing
    listens at all.
    """
    from clawstream.admin import settings_for

    settings = settings_for(target)
    bootstrap = settings.bootstrap_servers
    hosts = [_split_hostport(b) for b in bootstrap.split(",") if b.strip()]
    if not any(port_open(h, p, min(timeout, 1.0)) for h, p in hosts):
        return False
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    quiet = logging.getLogger("clawstream.broker.librdkafka")
    quiet.setLevel(logging.CRITICAL)  # (a probe: connection refused is an answer here)
    refused: list[bool] = []

    def on_error(err: KafkaError) -> None:
        if err.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL,
                          KafkaError.SASL_AUTHENTICATION_FAILED):
            refused.append(True)

    try:
        conf = client_config(settings, "admin", "admin", {"logger": quiet, "error_cb": on_error})
    except CredentialError:
        conf = client_config(kafka_settings(bootstrap), "admin", "admin",
                             {"logger": quiet, "error_cb": on_error})
    admin = AdminClient(conf)
    try:
        md = admin.list_topics(timeout=timeout)
        return bool(md.brokers)
    except KafkaException:
        return bool(refused)
    except Exception:
        return False


# --- the broker -------------------------------------------------------------------------------


class LocalBroker(DetachedProcess):
    """One real single-node KRaft broker on loopback, owned by this project.

    The process is detached (own session, no terminal fds), so `clawstream up` can exit and
    `clawstream down` (another process) finds it again through the pid file.
    """

    name = "Kafka broker"
    error = BrokerError
    stop_timeout = 30.0  # a controlled shutdown hands leadership over first
    ready_poll_s = 0.5
    #: a segment, its indexes and a socket or two per partition: many namespaces on one
    #: broker (a test run makes a hundred) outgrow a default limit of 1024 or 20000
    min_open_files = 1 << 17
    heap = JAVA_HEAP

    def __init__(
        self,
        settings: Settings,
        port: int = 9092,
        controller_port: int = 9093,
        data_dir: Path | str | None = None,
        *,
        secure: bool = True,
    ) -> None:
        self.settings = settings
        self.secure = secure
        self.port = port
        self.controller_port = controller_port
        self.dir = Path(data_dir) if data_dir else Path(settings.data_dir) / f"kafka-{port}"
        self.dir = self.dir.resolve()
        self.data = self.dir / "data"
        self.props_file = self.dir / "server.properties"
        self.log4j_file = self.dir / "log4j2.properties"
        self.server_log = self.dir / "server.log"
        self.console_log = self.dir / "console.log"
        self.pid_file = self.dir / "broker.pid"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        """What `start` returns: the bootstrap servers, once an AdminClient gets metadata."""
        return self.bootstrap

    def __repr__(self) -> str:
        return f"LocalBroker({self.bootstrap}, dir={self.dir})"

    # -- state

    def _owns(self, cmd: list[str]) -> bool:
        return "kafka.Kafka" in cmd and str(self.props_file) in cmd

    @property
    def security(self) -> LocalSecurity:
        return LocalSecurity.of(self.settings)

    def client_settings(self) -> Settings:
        """Settings of an admin client of this broker: its address, and when secured the
        admin credential of its data folder (whatever credential the environment names:
        that may be another broker's)."""
        update: dict[str, object] = {"bootstrap_servers": self.bootstrap,
                                     "kafka_sasl_username": None, "kafka_sasl_password": None}
        if self.secure:
            update |= {"kafka_client_config": self.admin_config,
                       "kafka_security_protocol": None}
        else:
            update |= {"kafka_client_config": None, "kafka_security_protocol": "PLAINTEXT"}
        return self.settings.model_copy(update=update)

    @property
    def admin_config(self) -> Path | None:
        """The admin's client config file when secured (for a client whose settings have
        another data folder, e.g. a test's agent with its own spool), else None."""
        return self.security.store.path("admin") if self.secure else None

    def answers(self, timeout: float = 3.0) -> bool:
        return broker_answers(self.client_settings(), timeout)

    def log_tail(self, lines: int = 30) -> str:
        return (
            f"--- {self.server_log} ---\n{tail_file(self.server_log, lines)}\n"
            f"--- {self.console_log} ---\n{tail_file(self.console_log, lines)}"
        )

    # -- lifecycle

    def write_config(self) -> str | None:
        """Write server.properties (0600); when secured, make the PKI and the admin credential
        first (once) and return the admin password the storage is formatted with."""
        self.dir.mkdir(parents=True, exist_ok=True)
        password = None
        if self.secure:
            admin = self.security.ensure(self.bootstrap)
            password = admin.password.get_secret_value()
            props = secure_properties(self.port, self.controller_port, self.data,
                                      self.security.pki, password, **self._node())
        else:
            props = server_properties(self.port, self.controller_port, self.data, **self._node())
        write_private(self.props_file, render_properties(props).encode())
        self.log4j_file.write_text(log4j2_properties(self.server_log))
        return password

    def _node(self) -> dict[str, Any]:  # a cluster's node: `clawstream.broker_cluster`
        return {}
    def _quorum_args(self) -> list[str]:  # the formatter's: a standalone controller
        return ["-t", new_cluster_id(), "--standalone"]

    def _java_cmd(self, java: str, main: str, *args: str) -> list[str]:
        return [
            java, self.heap, "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log4j_file}",
            f"-Dkafka.logs.dir={self.dir}",
            "-cp", str(libs_dir(self.settings) / "*"), main, *args,
        ]

    def format_storage(self, java: str, admin_password: str | None) -> None:
        """Format the KRaft storage once (a meta.properties marks a formatted directory),
        with the admin's SCRAM credential when secured. The arguments go through a Java
        argument file (0600), so the password is never on a command line `ps` shows."""
        marker = self.dir / "formatted-secure"
        if (self.data / "meta.properties").exists():
            if admin_password is not None and not marker.exists():
                raise BrokerError(
                    f"{self.data} was formatted without security, so it has no admin user: "
                    f"start it with `clawstream up --insecure`, or remove {self.dir} to start "
                    "afresh, secured")
            return
        self.data.mkdir(parents=True, exist_ok=True)
        args = ["kafka.tools.StorageTool", "format", "-c", str(self.props_file),
                *self._quorum_args()]
        if admin_password is not None:
            args += ["--add-scram", f"SCRAM-SHA-512=[name=admin,password={admin_password}]"]
        argfile = self.dir / "format.args"
        base = self._java_cmd(java, args[0])
        write_private(argfile, "\n".join(java_quote(a) for a in base[1:] + args[1:]).encode())
        fmt_log = self.dir / "format.log"
        try:
            with open(fmt_log, "w") as out:
                rc = subprocess.run([java, f"@{argfile}"], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, check=False).returncode
        finally:
            argfile.unlink(missing_ok=True)
        if rc != 0:
            raise BrokerError(f"formatting {self.data} failed (exit {rc}):\n{tail_file(fmt_log)}")
        if admin_password is not None:
            marker.write_text("the storage holds the admin's SCRAM credential\n")

    def _spawn(self) -> None:
        java = java_binary()
        for p in (self.port, self.controller_port):
            if port_open("127.0.0.1", p, 0.5):
                raise BrokerError(
                    f"port 127.0.0.1:{p} is already in use by another process; "
                    f"cannot start {self!r}"
                )
        fetch_kafka(self.settings)
        admin_password = self.write_config()
        self.format_storage(java, admin_password)
        self.security.mark_broker(self.bootstrap, "SASL_SSL" if self.secure else "PLAINTEXT")
        cmd = self._java_cmd(java, "kafka.Kafka", str(self.props_file))
        self._launch(cmd, self.console_log, self.dir)
        assert self._proc is not None
        log.info("started Kafka broker pid %d on %s (log %s)",
                 self._proc.pid, self.bootstrap, self.server_log)


def local_broker_for(settings: Settings, *, secure: bool = True) -> LocalBroker:
    """The LocalBroker that `settings.bootstrap_servers` designates (loopback only)."""
    host, port = _split_hostport(settings.bootstrap_servers)
    if host not in LOOPBACK:
        raise BrokerError(
            f"no broker answers at {settings.bootstrap_servers} and it is not a loopback "
            "address, so clawstream will not start one there; start that cluster or set "
            "CLAWSTREAM_BOOTSTRAP_SERVERS=127.0.0.1:9092"
        )
    return LocalBroker(settings, port=port, controller_port=port + 1, secure=secure)


def ensure_broker(settings: Settings, timeout: float = 90, *, secure: bool = True) -> str:
    """Bootstrap of a running broker: reuse what answers, else start the local one (secured
    unless `secure` is False)."""
    if broker_answers(settings):
        return settings.bootstrap_servers
    broker = local_broker_for(settings, secure=secure)
    log.info("no broker answers at %s; starting the local one", settings.bootstrap_servers)
    return broker.start(timeout=timeout)
