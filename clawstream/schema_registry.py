"""A local, real Confluent-compatible schema registry: Apicurio Registry built with Maven.

Confluent's own registry is not on Maven Central and karapace is not on PyPI, so the project
builds Apicurio Registry (which serves Confluent's REST API under `/apis/ccompat/v6`) from its
published application jar once: `infra/schema-registry/pom.xml` runs the Quarkus build into
`<cache_dir>/schema-registry/<version>/app`. `LocalSchemaRegistry` then runs it on loopback
as a detached JVM. Schemas live in an in-memory H2 database: a restart forgets them, which is
what tests want (each test session registers its own subjects).

Layout of one registry (`<data_dir>/schema-registry-<port>/` unless given):
    registry.log     the JVM's stdout/stderr (Quarkus logs to the console)
    registry.pid     pid of the running registry
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from clawstream.broker import java_binary
from clawstream.procs import DetachedProcess, file_lock, port_open, tail_file
from clawstream.settings import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)

INFRA = PROJECT_ROOT / "infra" / "schema-registry"
POM = INFRA / "pom.xml"
MAVEN_SETTINGS = INFRA / "settings.xml"
BUILD_INPUTS = (
    POM, MAVEN_SETTINGS, INFRA / "src" / "main" / "resources" / "application.properties"
)
# Newest Apicurio release whose dependency closure Maven Central serves (see the pom).
APICURIO_VERSION = "2.1.5.Final"
RUNNER = "local-schema-registry-1-runner.jar"
CCOMPAT_PATH = "/apis/ccompat/v6"
MARKER = ".complete"
JAVA_OPTS = ("-Xmx256m", "-XX:+UseSerialGC", "-Djava.awt.headless=true")
_PASS_ENV = frozenset({"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "JAVA_HOME", "USER"})


class SchemaRegistryError(RuntimeError):
    """The local schema registry cannot be built, started or stopped; the message says why."""


# --- build -------------------------------------------------------------------------------------


def app_dir(settings: Settings) -> Path:
    """Where the built registry (runner jar + lib/) of this version lives."""
    return Path(settings.cache_dir) / "schema-registry" / APICURIO_VERSION / "app"


def _build_digest() -> str:
    h = hashlib.sha256(APICURIO_VERSION.encode())
    for f in BUILD_INPUTS:
        h.update(f.read_bytes())
    return h.hexdigest()


def registry_built(settings: Settings) -> bool:
    """True when the registry was built completely from the current pom and config."""
    marker = app_dir(settings).parent / MARKER
    try:
        return marker.read_text().strip() == _build_digest()
    except OSError:
        return False


def build_registry(settings: Settings, *, force: bool = False) -> Path:
    """Run the Maven/Quarkus build once; returns the runner jar.

    Builds into a partial folder and renames it only after Maven succeeded, then writes a
    marker holding a digest of the build inputs, so an interrupted build is redone and a
    changed pom rebuilds.
    """
    app = app_dir(settings)
    if not force and registry_built(settings):
        return app / RUNNER
    version_dir = app.parent
    with file_lock(version_dir.parent / f".{APICURIO_VERSION}.lock"):
        if not force and registry_built(settings):
            return app / RUNNER
        mvn = shutil.which("mvn")
        if mvn is None:
            raise SchemaRegistryError(
                "mvn not found: Maven builds the schema registry from Maven Central "
                "(Debian: apt-get install maven, or run scripts/bootstrap.sh)"
            )
        java_binary()  # a clear error when Java 17+ is missing
        version_dir.mkdir(parents=True, exist_ok=True)
        tmp = version_dir / "app.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        mvn_log = version_dir / "maven.log"
        cmd = [
            mvn, "-q", "-B", "-Dstyle.color=never", "-gs", str(MAVEN_SETTINGS), "-f", str(POM),
            f"-Dapicurio.version={APICURIO_VERSION}", f"-Dregistry.build.directory={tmp}",
            "package",
        ]
        log.info("building Apicurio Registry %s with Maven (once)", APICURIO_VERSION)
        with open(mvn_log, "w") as out:
            rc = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, check=False
            ).returncode
        if rc != 0 or not (tmp / RUNNER).exists():
            raise SchemaRegistryError(
                f"Maven could not build Apicurio Registry {APICURIO_VERSION} (exit {rc}); "
                f"see {mvn_log}:\n{tail_file(mvn_log)}"
            )
        shutil.rmtree(app, ignore_errors=True)
        tmp.rename(app)
        (version_dir / MARKER).write_text(_build_digest() + "\n")
        log.info("schema registry built in %s", app)
    return app / RUNNER


# --- probing -----------------------------------------------------------------------------------


def registry_subjects(url: str, timeout: float = 2.0) -> list[str] | None:
    """The subjects a Confluent-compatible registry at `url` holds; None when none answers."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/subjects", timeout=timeout) as resp:
            subjects = json.loads(resp.read()) if resp.status == 200 else None
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return subjects if isinstance(subjects, list) else None


def registry_answers(url: str, timeout: float = 2.0) -> bool:
    """True when `GET <url>/subjects` returns a JSON list (a Confluent-compatible registry)."""
    return registry_subjects(url, timeout) is not None


# --- the registry ------------------------------------------------------------------------------


class LocalSchemaRegistry(DetachedProcess):
    """One Apicurio Registry on loopback, owned by this project, with in-memory storage.

    The process is detached (own session, no terminal fds) and found again through its pid
    file, so one command can start it and another stop it.
    """

    name = "schema registry"
    error = SchemaRegistryError

    def __init__(
        self, settings: Settings, port: int = 8081, data_dir: Path | str | None = None
    ) -> None:
        self.settings = settings
        self.port = port
        base = Path(data_dir) if data_dir else Path(settings.data_dir) / f"schema-registry-{port}"
        self.dir = base.resolve()
        self.log_file = self.dir / "registry.log"
        self.pid_file = self.dir / "registry.pid"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The Confluent-compatible base URL (what `schema_registry_url` should be)."""
        return f"http://127.0.0.1:{self.port}{CCOMPAT_PATH}"

    @property
    def address(self) -> str:
        """What `start` returns (building the registry first if needed): the URL, once
        GET /subjects answers."""
        return self.url

    def __repr__(self) -> str:
        return f"LocalSchemaRegistry({self.url}, dir={self.dir})"

    # -- state

    def _owns(self, cmd: list[str]) -> bool:
        return RUNNER in " ".join(cmd) and f"-Dquarkus.http.port={self.port}" in cmd

    def answers(self, timeout: float = 2.0) -> bool:
        return registry_answers(self.url, timeout)

    def subjects(self, timeout: float = 5.0) -> list[str] | None:
        return registry_subjects(self.url, timeout)

    def log_tail(self, lines: int = 30) -> str:
        return f"--- {self.log_file} ---\n{tail_file(self.log_file, lines)}"

    # -- lifecycle

    def _spawn(self) -> None:
        java = java_binary()
        if port_open("127.0.0.1", self.port, 0.5):
            raise SchemaRegistryError(
                f"port 127.0.0.1:{self.port} is already in use by another process; "
                f"cannot start {self!r}"
            )
        runner = build_registry(self.settings)
        cmd = [
            java, *JAVA_OPTS,
            "-Dquarkus.http.host=127.0.0.1", f"-Dquarkus.http.port={self.port}",
            "-jar", str(runner),
        ]
        # Apicurio reads many plain variables (KAFKA_BOOTSTRAP_SERVERS sends events to Kafka,
        # REGISTRY_DATASOURCE_URL moves storage, AUTH_ENABLED...): give it a clean environment
        # so the local registry is always the same in-memory, open one. HTTP_PORT is what its
        # prod profile reads for the port; keep it in agreement with -Dquarkus.http.port.
        env = {k: v for k, v in os.environ.items() if k in _PASS_ENV}
        env["HTTP_PORT"] = str(self.port)
        self._launch(cmd, self.log_file, self.dir, env=env)
        assert self._proc is not None
        log.info("started schema registry pid %d on %s (log %s)",
                 self._proc.pid, self.url, self.log_file)
