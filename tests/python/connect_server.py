"""A real Spark Connect server for tests: pyspark's own ``SparkConnectServer`` started with
``spark-submit`` on ``local[2]``, the dlbridge jar and the example modules, bound to 127.0.0.1 on a
free port and authenticated by a fresh bearer token.

The server runs in its own session (process group) and temporary working directory, so its JVM, the
dlbridge companion backend it starts and Spark's Python workers can all be found again;
:meth:`ConnectServer.stop` terminates (then kills) them, removes the directory and asserts that
nothing of the server is left.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

from conftest import dlbridge_jar
from standalone import _members, _signal, _wait_gone

START_TIMEOUT = 180.0  # JVM start on two busy cores
STOP_TIMEOUT = 30.0
STARTED = re.compile(r"Spark Connect server started at: \S*:(\d+)")
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "connect_client.py")


class ConnectServer:
    """A Spark Connect server with dlbridge, serving clients that present :attr:`token`.

    Parameters
    ----------
    modules : str
        The server's ``spark.dlbridge.python.modules``: the Python modules whose registered functions
        its companion backend serves.
    conf : dict
        Further Spark conf of the server. Defaults to none.
    """

    def __init__(self, modules: str, conf: Dict[str, str] | None = None) -> None:
        jar = dlbridge_jar()
        if not jar:
            raise AssertionError("The dlbridge jar is not built: run dev/build (or dev/test) first.")
        self.root = tempfile.mkdtemp(prefix="dlbridge-connect-")
        self.token = secrets.token_hex(32)
        self.log = os.path.join(self.root, "server.log")
        # Temporary files (Spark's local dirs, the Connect model cache's offload directory, Python's
        # tempfile) stay under the root, which stop() removes.
        tmp, local = os.path.join(self.root, "tmp"), os.path.join(self.root, "local")
        os.makedirs(tmp)
        os.makedirs(local)
        settings = {"spark.connect.grpc.binding.address": "127.0.0.1", "spark.connect.grpc.binding.port": "0",
                    "spark.driver.extraJavaOptions": f"-Djava.io.tmpdir={tmp}", "spark.local.dir": local,
                    "spark.dlbridge.python.modules": modules, "spark.ui.enabled": "false",
                    "spark.python.worker.reuse": "true", "spark.task.maxFailures": "1",
                    "spark.sql.shuffle.partitions": "4", **(conf or {})}
        command = [os.path.join(os.environ["SPARK_HOME"], "bin", "spark-submit"), "--master", "local[2]",
                   "--jars", jar, *[arg for key, value in settings.items() for arg in ("--conf", f"{key}={value}")],
                   "--class", SERVER_CLASS, "spark-internal"]
        env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", SPARK_CONNECT_AUTHENTICATE_TOKEN=self.token, TMPDIR=tmp,
                   PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=env, cwd=self.root, start_new_session=True)
        try:
            self.port = int(self._wait_for(STARTED))
        except BaseException:
            self.stop(check=False)
            raise

    @property
    def url(self) -> str:
        """The ``sc://`` connection string of this server, token included (pass it by environment)."""
        return f"sc://localhost:{self.port}/;token={self.token}"

    def _wait_for(self, pattern: re.Pattern) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = self.output()
            found = pattern.search(text)
            if found:
                return found.group(1)
            if self.process.poll() is not None:
                raise RuntimeError(f"the Spark Connect server exited with code {self.process.returncode} before "
                                   f"it started; output tail:\n{text[-3000:]}")
            time.sleep(0.2)
        raise RuntimeError(f"the Spark Connect server did not start within {START_TIMEOUT:.0f}s; output tail:\n"
                           f"{self.output()[-3000:]}")

    def output(self) -> str:
        """Everything the server has logged so far."""
        with open(self.log, errors="replace") as f:
            return f.read()

    def run_client(self, scenario: str, *args: str, timeout: float = 900) -> str:
        """Runs ``connect_client.py scenario args...`` as a separate Python process connected to this server.

        The connection string (with the token) reaches the client in ``SPARK_REMOTE``. Returns the
        client's stdout; fails the test with the client's output and the server's log tail if it exits
        non-zero.
        """
        env = dict(os.environ, SPARK_REMOTE=self.url)
        done = subprocess.run([sys.executable, CLIENT, scenario, *args], capture_output=True, text=True,
                              timeout=timeout, env=env, check=False)
        assert done.returncode == 0, (f"Connect client '{scenario}' failed ({done.returncode}):\n{done.stdout[-2000:]}\n"
                                      f"{done.stderr[-4000:]}\n--- server log tail ---\n{self.output()[-3000:]}")
        return done.stdout

    def processes(self) -> List[str]:
        """``pid cmdline`` of the server's live processes (JVM, companion backend, Python workers)."""
        return _members({self.process.pid}, self.root)

    def stop(self, check: bool = True) -> None:
        """SIGTERM the server (its shutdown stops the companion), SIGKILL what is left, remove its directory.

        With ``check``, asserts that no process of the server survived and its directory is gone.
        """
        groups = {self.process.pid}
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # the JVM's shutdown hooks stop Spark and the companion
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass  # killed below
        _signal(groups, self.root, signal.SIGTERM)
        left = _wait_gone(groups, self.root, STOP_TIMEOUT)
        if left:
            _signal(groups, self.root, signal.SIGKILL)
            left = _wait_gone(groups, self.root, STOP_TIMEOUT)
        self.process.wait(STOP_TIMEOUT)
        shutil.rmtree(self.root, ignore_errors=True)
        if check:
            assert not left, f"processes of the Spark Connect server survived SIGKILL: {left}"
            assert not os.path.exists(self.root), f"work dir {self.root} was not removed"
