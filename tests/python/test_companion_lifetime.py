"""The companion backend dies with its JVM: a spark-shell starts one, the JVM is killed with
SIGKILL (no shutdown hook runs), and the companion exits on its own (stdin EOF)."""
from __future__ import annotations

import os
import signal
import subprocess
import time

from conftest import dlbridge_jar

SCRIPT = """
import dlbridge.ml.PythonTransformer
new PythonTransformer().setFunction("plus_k").setInputCol("id").setOutputCol("y").transform(spark.range(3)).count()
println("COMPANION " + dlbridge.python.PythonBridge.companionPid(sc))
"""


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_companion_exits_when_the_jvm_is_killed(tmp_path) -> None:
    script = tmp_path / "start.scala"
    script.write_text(SCRIPT)
    # The killed JVM runs no shutdown hook: its temp files (Spark's local dirs, the REPL's classes,
    # extracted native libraries) and the companion's go to the test's own directory.
    temp = tmp_path / "tmp"
    temp.mkdir()
    shell = subprocess.Popen(
        [os.path.join(os.environ["SPARK_HOME"], "bin", "spark-shell"), "--master", "local[1]",
         "--conf", "spark.ui.enabled=false", "--jars", dlbridge_jar() or "",
         "--driver-java-options", f"-Djava.io.tmpdir={temp}",
         "--conf", "spark.dlbridge.python.modules=dlbridge_test_udfs", "-I", str(script)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=dict(os.environ, TMPDIR=str(temp)),
    )
    try:
        companion = -1
        deadline = time.monotonic() + 300
        assert shell.stdout is not None
        while time.monotonic() < deadline:
            line = shell.stdout.readline()
            if not line:
                break
            if line.startswith("COMPANION "):
                companion = int(line.split()[1])
                break
        assert companion > 0, "spark-shell did not report a companion pid"
        jvm = parent_of(companion)
        os.kill(jvm, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while alive(companion) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(companion), f"companion {companion} outlived its JVM {jvm}"
    finally:
        shell.kill()
        shell.wait(timeout=60)
