"""Processes, sockets and files seen from outside through /proc (Linux): what the fault-injection
and long-run tests observe instead of hooks in production code."""
from __future__ import annotations

import logging
import os
import re
import threading

LISTEN, ESTABLISHED = "0A", "01"


def _read(path: str, mode: str = "r") -> str | bytes | None:
    try:
        with open(path, mode) as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None  # the process exited while we looked


def pids() -> list[int]:
    """Every process id on the machine."""
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def cmdline(pid: int) -> str:
    """The command line of ``pid`` with spaces between arguments ('' if it is gone)."""
    raw = _read(f"/proc/{pid}/cmdline", "rb")
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() if raw else ""


def parent(pid: int) -> int | None:
    """The parent pid of ``pid``, or None if it is gone."""
    stat = _read(f"/proc/{pid}/stat")
    return int(stat.rsplit(")", 1)[1].split()[1]) if stat else None


def descendants(root: int) -> list[int]:
    """Live processes below ``root`` (children, grandchildren, ...), zombies excluded."""
    children: dict[int, list[int]] = {}
    for pid in pids():
        stat = _read(f"/proc/{pid}/stat")
        if stat and stat.rsplit(")", 1)[1].split()[0] != "Z":
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(pid)
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def executor_pids(app_id: str) -> list[int]:
    """Executor JVMs (``CoarseGrainedExecutorBackend``) of the Spark application ``app_id``."""
    return [pid for pid in pids() if "CoarseGrainedExecutorBackend" in (c := cmdline(pid)) and app_id in c]


def executor_of(pid: int) -> int | None:
    """The executor JVM that ``pid`` (a Python worker) descends from."""
    current: int | None = pid
    while current and current > 1:
        if "CoarseGrainedExecutorBackend" in cmdline(current):
            return current
        current = parent(current)
    return None


def socket_inodes(pid: int) -> set[str]:
    """Inodes of the sockets open in ``pid``."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue  # closed while we looked
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except (FileNotFoundError, PermissionError):
        pass  # the process is gone
    return inodes


def tcp_table() -> list[tuple[int, int, str, str]]:
    """``(local port, remote port, state, inode)`` of every TCP socket (IPv4 and IPv6)."""
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        text = _read(table) or ""
        for line in text.splitlines()[1:]:
            fields = line.split()
            rows.append((int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16),
                         fields[3], fields[9]))
    return rows


def listening_ports(pid: int) -> set[int]:
    """TCP ports on which ``pid`` listens."""
    mine = socket_inodes(pid)
    return {local for local, _, state, inode in tcp_table() if state == LISTEN and inode in mine}


def connected_to(port: int) -> list[int]:
    """Processes holding an established TCP connection to local ``port`` (the clients of a server)."""
    inodes = {inode for _, remote, state, inode in tcp_table() if state == ESTABLISHED and remote == port}
    return [pid for pid in pids() if pid != os.getpid() and socket_inodes(pid) & inodes] if inodes else []


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid``."""
    status = _read(f"/proc/{pid}/status") or ""
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return int(match.group(1)) * 1024 if match else 0


def thread_count(pid: int) -> int:
    """Threads of ``pid``."""
    return len(os.listdir(f"/proc/{pid}/task"))


def open_fds(pid: int) -> int:
    """Open file descriptors of ``pid``."""
    return len(os.listdir(f"/proc/{pid}/fd"))


class EpochWatcher(logging.Handler):
    """Watches the trainer's per-epoch progress lines (``<uid> epoch N/M - loss ...`` on the
    ``dlbridge.progress`` logger) of fits running in this process (fits with verbose >= 1)."""

    PATTERN = re.compile(r"\bepoch (\d+)/\d+ - loss")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.finished = 0
        self._changed = threading.Condition()
        self._logger = logging.getLogger("dlbridge.progress")
        self._level = self._logger.level

    def emit(self, record: logging.LogRecord) -> None:
        match = self.PATTERN.search(record.getMessage())
        if match:
            with self._changed:
                self.finished = max(self.finished, int(match.group(1)))
                self._changed.notify_all()

    def wait_finished(self, epochs: int, timeout: float) -> None:
        """Block until ``epochs`` epochs are logged as finished (AssertionError after ``timeout``)."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.finished >= epochs, timeout):
                raise AssertionError(f"epoch {epochs} did not finish within {timeout:.0f}s "
                                     f"(last finished: {self.finished})")

    def __enter__(self) -> "EpochWatcher":
        self._logger.addHandler(self)
        self._logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)
