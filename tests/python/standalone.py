"""A real Spark standalone cluster for tests: one master and two workers from pyspark's own
``spark-class``, bound to 127.0.0.1, each in its own process group and temporary work directory.

Executors launched by a worker inherit its process group; their ``pyspark.daemon`` starts a group
of its own, but every process of the cluster runs in a directory under the cluster's temporary
root. :meth:`StandaloneCluster.stop` terminates (then kills) the groups and any process working
under the root, removes the root, and asserts that no process of the cluster is left.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Iterator, Mapping

import pytest

START_TIMEOUT = 180.0  # JVM start on two busy cores
STOP_TIMEOUT = 30.0
MASTER_URL = re.compile(r"Starting Spark master at (spark://\S+)")
REGISTERED = re.compile(r"Registering worker 127\.0\.0\.1:\d+ with 1 cores")


class StandaloneCluster:
    """A master and ``workers`` workers (1 core, ``memory`` each) on 127.0.0.1.

    Parameters
    ----------
    workers : int
        Number of worker daemons. Defaults to ``2``.
    memory : str
        Memory each worker offers to executors. Defaults to ``"3g"``.
    environ : mapping, optional
        Environment of the daemons, and so of the executors they launch. Defaults to
        ``None``: this process's ``os.environ``.
    """

    def __init__(self, workers: int = 2, memory: str = "3g", environ: Mapping[str, str] | None = None) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        self.root = tempfile.mkdtemp(prefix="dlbridge-standalone-")
        self.processes: list[subprocess.Popen] = []
        self.master_url = ""
        try:
            master = self._launch("master", "org.apache.spark.deploy.master.Master",
                                  "--host", "127.0.0.1", "--port", "0", "--webui-port", "0")
            self.master_url = _wait_for_log(master, self._log_path("master"), MASTER_URL, 1)[0]
            for i in range(workers):
                work = os.path.join(self.root, f"worker-{i}")
                os.makedirs(os.path.join(work, "local"))
                self._launch(f"worker-{i}", "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                             "--port", "0", "--webui-port", "0", "--cores", "1", "--memory", memory,
                             "--work-dir", work, self.master_url, local_dirs=os.path.join(work, "local"))
            _wait_for_log(master, self._log_path("master"), REGISTERED, workers)
        except BaseException:
            self.stop(check=False)
            raise

    def _launch(self, name: str, main_class: str, *args: str, local_dirs: str | None = None) -> subprocess.Popen:
        # Temp files of the daemons and of the executors and Python workers they start (inherited
        # environment) go under the cluster's root, which stop() removes: tests kill executors and
        # workers, and a killed process deletes nothing.
        temp = os.path.join(self.root, "tmp")
        os.makedirs(temp, exist_ok=True)
        java_options = " ".join(filter(None, [self.environ.get("JAVA_TOOL_OPTIONS"), f"-Djava.io.tmpdir={temp}"]))
        env = dict(self.environ, SPARK_LOCAL_IP="127.0.0.1", SPARK_LOG_DIR=self.root, SPARK_NO_DAEMONIZE="1",
                   SPARK_MASTER_OPTS="-Dspark.master.rest.enabled=false",
                   SPARK_WORKER_OPTS="-Dspark.worker.cleanup.enabled=false",
                   TMPDIR=temp, JAVA_TOOL_OPTIONS=java_options)
        if local_dirs:
            env["SPARK_LOCAL_DIRS"] = local_dirs  # executors' block managers and shuffle files
        log = open(self._log_path(name), "wb")
        try:
            process = subprocess.Popen([os.path.join(env["SPARK_HOME"], "bin", "spark-class"), main_class,
                                        *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env=env, cwd=self.root, start_new_session=True)
        finally:
            log.close()
        self.processes.append(process)
        return process

    def _log_path(self, name: str) -> str:
        return os.path.join(self.root, f"{name}.log")

    def stop(self, check: bool = True) -> None:
        """Terminate the cluster's processes, kill what is left, remove the work dirs; assert nothing leaked."""
        groups = {p.pid for p in self.processes}  # each daemon leads its own session and group
        _signal(groups, self.root, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _members(groups, self.root) and time.monotonic() < deadline:
            time.sleep(0.2)
        _signal(groups, self.root, signal.SIGKILL)
        for process in self.processes:
            process.wait(STOP_TIMEOUT)
        left = _wait_gone(groups, self.root, STOP_TIMEOUT)
        shutil.rmtree(self.root, ignore_errors=True)
        if check:
            assert not left, f"processes of the standalone cluster survived SIGKILL: {left}"
            assert not os.path.exists(self.root), f"work dir {self.root} was not removed"


def _wait_for_log(process: subprocess.Popen, log: str, pattern: re.Pattern, count: int) -> list[str]:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        with open(log, errors="replace") as f:
            text = f.read()
        found = pattern.findall(text)
        if len(found) >= count:
            return found
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[1]} exited with code {process.returncode} before logging "
                               f"{pattern.pattern!r}; output tail:\n{text[-3000:]}")
        time.sleep(0.2)
    raise RuntimeError(f"{process.args[1]} did not log {count} x {pattern.pattern!r} within {START_TIMEOUT:.0f}s; "
                       f"output tail:\n{text[-3000:]}")


def _signal(groups: set[int], root: str, sig: int) -> None:
    """Send ``sig`` to the process ``groups`` and to every process working under ``root``."""
    for group in groups:
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            pass  # the whole group has exited already
    for member in _members(groups, root):
        try:
            os.kill(int(member.split()[0]), sig)
        except ProcessLookupError:
            pass  # exited meanwhile


def _members(groups: set[int], root: str) -> list[str]:
    """``pid cmdline`` of live (non-zombie) processes in one of ``groups`` or working under ``root``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if fields[0] == "Z":
                continue
            cwd = os.readlink(f"/proc/{pid}/cwd")
            if int(fields[2]) not in groups and cwd != root and not cwd.startswith(root + os.sep):
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ")[:200].decode(errors="replace")
            found.append(f"{pid} {cmdline}")
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
            continue  # exited while we looked, or not ours to inspect
    return found


def _wait_gone(groups: set[int], root: str, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := _members(groups, root)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.fixture(scope="module")
def standalone() -> Iterator[StandaloneCluster]:
    """A standalone master and two 1-core workers for one test module; stopped and checked after it."""
    cluster = StandaloneCluster()
    try:
        yield cluster
    finally:
        cluster.stop()
