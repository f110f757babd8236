"""Process helpers shared by the local broker and schema registry runners and the chdb owner."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self

log = logging.getLogger(__name__)


def pid_alive(pid: int) -> bool:
    """Alive and not a zombie (a zombie we could not reap still accepts signal 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def raise_open_files(want: int) -> int:
    """Raise this process's open-file limit to `want` if it is lower: the hard limit too when
    allowed (root), else the soft limit up to the hard one. Returns the soft limit now."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(want, hard)), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock, so concurrent commands don't fetch or start twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """Something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail_file(path: Path, lines: int = 30) -> str:
    """The last `lines` lines of a (log) file, for error messages."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16_000))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return f"({path} not found)"
    return "\n".join(text.splitlines()[-lines:])


def cmdline(pid: int) -> list[str]:
    """A process's command line, to tell our process from a reused pid."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


class DetachedProcess:
    """A background server this project starts (own session, output to a file) and finds again
    through its pid file, so one command can start it and another stop it.

    Subclasses set `dir`, `pid_file`, `name`, `error`, `address` (what `start` returns) and
    implement `_owns(cmdline)` (is that pid really ours, not a reused one?), `answers`,
    `log_tail` and `_spawn` (launch it, through `_launch`).
    """

    name = "process"
    #: raised when it cannot start
    error: type[Exception] = RuntimeError
    #: seconds a clean shutdown may take before SIGKILL
    stop_timeout = 20.0
    #: seconds between two readiness checks while starting
    ready_poll_s = 0.25
    dir: Path
    pid_file: Path
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        raise NotImplementedError

    def _owns(self, cmd: list[str]) -> bool:
        raise NotImplementedError

    def pid(self) -> int | None:
        """Pid of our running process (checked against its command line)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not pid_alive(pid):
            return None
        cmd = cmdline(pid)
        if cmd and not self._owns(cmd):
            return None  # pid reused by something else
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None

    def answers(self, timeout: float = 2.0) -> bool:
        raise NotImplementedError

    def log_tail(self, lines: int = 30) -> str:
        raise NotImplementedError

    def _spawn(self) -> None:
        raise NotImplementedError

    def start(self, timeout: float = 90) -> str:
        """Start (or find running; the lock keeps two commands from starting it twice) and
        wait until it answers; returns its address."""
        with file_lock(self.dir / ".lock"):
            if self.pid() is None:
                self._spawn()
        self._wait_until(lambda: self.answers(timeout=2.0), self.address, timeout, self.error,
                         poll_s=self.ready_poll_s)
        return self.address

    #: open files the process may hold at least (a broker keeps several per partition)
    min_open_files = 0

    def _launch(self, cmd: list[str], log_file: Path, cwd: Path,
                env: dict[str, str] | None = None) -> None:
        """Start detached: own session, no terminal file descriptors, output to `log_file`."""
        want = self.min_open_files
        with open(log_file, "ab") as out:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                env=env, start_new_session=True, close_fds=True,
                preexec_fn=(lambda: raise_open_files(want)) if want else None,
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")

    def _wait_until(self, answers: Callable[[], bool], where: str, timeout: float,
                    error: type[Exception], poll_s: float = 0.25) -> None:
        """Until `answers()`; raise `error` with the log's tail if it exits or times out."""
        deadline = time.monotonic() + timeout
        while not answers():
            if self.pid() is None:
                code = self._proc.poll() if self._proc else None
                raise error(
                    f"{self.name} on {where} exited during start"
                    f"{f' (exit {code})' if code is not None else ''}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise error(
                    f"{self.name} on {where} did not answer within {timeout:.0f}s "
                    f"(still running, pid {self.pid()}):\n{self.log_tail()}"
                )
            time.sleep(poll_s)

    def stop(self, timeout: float | None = None) -> bool:
        """SIGTERM (a clean shutdown), wait, SIGKILL if needed. False if it was not running."""
        timeout = self.stop_timeout if timeout is None else timeout
        pid = self.pid()
        if pid is None:
            self._reap()
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        if not self._wait_gone(pid, timeout):
            log.warning("%s pid %d ignored SIGTERM for %.0fs; killing it", self.name, pid,
                        timeout)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._wait_gone(pid, 10)
        self._reap()
        self.pid_file.unlink(missing_ok=True)
        return True

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._reap()
            if not pid_alive(pid):
                return True
            time.sleep(0.2)
        return False

    def _reap(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Subcommand:
    """A `clawstream` subcommand running detached in its own session, its output appended to
    a log file (never the terminal: a child holding it would keep CI waiting)."""

    def __init__(self, name: str, args: list[str], log: Path,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.args = args
        self.log = log
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> Self:
        """(Re)start it; output goes on after what an earlier run wrote."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = None if self.env is None else {**os.environ, **self.env}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "clawstream.cli", *self.args], env=env,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL the whole process group (a crash: nothing is flushed or committed)."""
        if self.alive():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`."""
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()

    def tail(self, lines: int = 15) -> str:
        return tail_file(self.log, lines)


@contextlib.contextmanager
def running(procs: list[Subcommand]) -> Iterator[list[Subcommand]]:
    """Stop the subcommands (last started first) when the block ends, also on errors."""
    try:
        yield procs
    finally:
        for p in reversed(procs):
            p.stop()
