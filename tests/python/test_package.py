"""The one-step install, end to end, with real processes.

``dev/wheel`` builds the wheel; it is pip-installed into a fresh virtualenv (one
install for the module); that virtualenv's own Python is the driver of a small
fit on a real standalone cluster, whose executors run the same virtualenv packed
with venv-pack and shipped with ``spark.archives``. Then the early failures: an
executor Python without TensorFlow stops the fit before training, and a jar and
a Python package of different versions fail at their first use.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import zipfile
from typing import Any, Dict, Iterator

import pytest

import dlbridge
from dlbridge.executor_env import mismatches
from standalone import StandaloneCluster

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
DRIVER = os.path.join(HERE, "package_driver.py")
TIMEOUT = 900  # pip install of TensorFlow and pyspark on two busy cores, or a cluster fit with JVM starts
# What the executors never use: pyspark's jars (they run Spark's own) and TensorFlow's C++ headers.
PACK_EXCLUDES = ["--exclude", "lib/python*/site-packages/pyspark/jars/*",
                 "--exclude", "lib/python*/site-packages/tensorflow/include/*"]
CLUSTER_CONF = {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
                "spark.executor.memory": "1g", "spark.executor.cores": "1", "spark.cores.max": "2",
                "spark.task.maxFailures": "1", "spark.ui.enabled": "false", "spark.python.worker.reuse": "true"}


def _run(args: list, env: Dict[str, str] | None = None, cwd: str | None = None) -> str:
    """Runs a command to its end; its output is the assertion message if it fails."""
    done = subprocess.run(args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, f"{args} exited with {done.returncode}:\n{done.stdout[-5000:]}"
    return done.stdout


def _clean_env() -> Dict[str, str]:
    """This environment without what points at this checkout's Python side (dev/env.sh sets them)."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "SPARK_HOME", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "VIRTUAL_ENV")}


def _driver(python: str, args: list, env: Dict[str, str]) -> Dict[str, Any]:
    """Runs package_driver.py with ``python``; its last output line is the JSON result."""
    output = _run([python, DRIVER, *args], env=env, cwd=os.path.dirname(DRIVER))
    return json.loads(output.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> str:
    """The wheel that dev/wheel builds from the jar dev/build put into the package."""
    out = tmp_path_factory.mktemp("dist")
    _run([os.path.join(REPO, "dev", "wheel"), str(out)])
    path = out / f"dlbridge-{dlbridge.__version__}-py3-none-any.whl"
    assert path.is_file(), f"dev/wheel wrote {os.listdir(out)}, not {path.name}"
    return str(path)


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Iterator[str]:
    """A fresh virtualenv with the wheel pip-installed (its dependencies from the registry or pip's cache)."""
    root = str(tmp_path_factory.mktemp("wheel-venv") / "venv")
    try:
        _run([sys.executable, "-m", "venv", root])
        # --no-compile: byte-compiling all of TensorFlow takes minutes on two cores; what runs compiles itself
        _run([os.path.join(root, "bin", "pip"), "install", "--quiet", "--disable-pip-version-check", "--no-compile",
              wheel], env=_clean_env())
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)  # 2 GB, mostly TensorFlow


@pytest.fixture(scope="module")
def archive(venv, tmp_path_factory) -> Iterator[str]:
    """The wheel's virtualenv packed by venv-pack, as the README says, but not compressed (gzip level 0):
    compression costs a minute each way on two cores, and the archive only crosses loopback. (A plain .tar
    would not do: Spark unpacks it with Java, which refuses the venv's link to its base interpreter.)"""
    path = str(tmp_path_factory.mktemp("archive") / "dlbridge-venv.tar.gz")
    try:
        _run([os.path.join(os.path.dirname(sys.executable), "venv-pack"), "--prefix", venv, "--output", path,
              "--compress-level", "0", "--quiet", *PACK_EXCLUDES])
        yield path
    finally:
        os.remove(path)


@pytest.fixture(scope="module")
def cluster() -> Iterator[StandaloneCluster]:
    """A standalone master and two 1-core workers whose executors see no PYTHONPATH of this checkout."""
    cluster = StandaloneCluster(environ={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    try:
        yield cluster
    finally:
        cluster.stop()


def test_mismatches_name_each_executor_and_what_it_differs_in() -> None:
    driver = {"dlbridge": "0.1.0", "tensorflow": "2.21.0", "keras": "3.15.1"}
    same = {"packages": dict(driver), "host": "h1", "python": "/w/0/env/bin/python", "workdir": "/w/0",
            "executor": "0"}
    other = {"packages": {"dlbridge": "0.0.1", "tensorflow": None, "keras": "cannot be imported (ImportError: x)"},
             "host": "h2", "python": "/usr/bin/python3", "workdir": "/w/1", "executor": None}
    assert mismatches(driver, [same, other]) == [
        "an executor on host h2 (Python /usr/bin/python3, working directory /w/1): dlbridge version 0.0.1 (the "
        "driver has 0.1.0); tensorflow not installed (the driver has 2.21.0); keras cannot be imported "
        "(ImportError: x) (the driver has 3.15.1)"]


def test_the_wheel_carries_the_jar_of_its_version(wheel, venv) -> None:
    jar = f"dlbridge/jars/dlbridge_2.13-{dlbridge.__version__}.jar"
    assert jar in zipfile.ZipFile(wheel).namelist()
    python = os.path.join(venv, "bin", "python")
    code = "import dlbridge, json; print(json.dumps([dlbridge.__version__, dlbridge.jar_path(), dlbridge.__file__]))"
    version, jar_path, module = json.loads(_run([python, "-c", code], env=_clean_env(), cwd=venv).splitlines()[-1])
    assert version == dlbridge.__version__
    assert module.startswith(venv) and jar_path.startswith(venv), (module, jar_path)
    with zipfile.ZipFile(jar_path) as packed:  # the jar knows its own version (DlbridgeVersion)
        assert packed.read("dlbridge/version.properties").decode().strip() == f"version={dlbridge.__version__}"


def test_packed_venv_trains_on_the_executors(venv, archive, cluster) -> None:
    conf = {**CLUSTER_CONF, "spark.archives": f"{archive}#env", "spark.pyspark.python": "./env/bin/python"}
    result = _driver(os.path.join(venv, "bin", "python"), ["fit", cluster.master_url, json.dumps(conf)],
                     _clean_env())
    assert "error" not in result, result.get("error")
    assert result["version"] == dlbridge.__version__ and result["jar"].startswith(venv)
    assert len(result["history"]) == 3 and result["history"][-1] < result["history"][0], result["history"]
    assert result["accuracy"] >= 0.9 and result["rows"] == 400, result
    for executor in result["executors"]:  # the unpacked archive in the executor's work dir, not a local venv
        for key in ("python", "dlbridge", "tensorflow"):
            assert executor[key].startswith(cluster.root) and "/env/" in executor[key], executor


def test_executor_without_tensorflow_fails_before_training(venv, archive, cluster) -> None:
    """The wheel's venv (already packed) loses TensorFlow and becomes the executors' Python."""
    _run([os.path.join(venv, "bin", "pip"), "uninstall", "--quiet", "--yes", "tensorflow-cpu"], env=_clean_env())
    executor_python = os.path.join(venv, "bin", "python")
    env = dict(os.environ, PYSPARK_PYTHON=executor_python)  # the driver: this checkout, with TensorFlow
    result = _driver(sys.executable, ["fit", cluster.master_url, json.dumps(CLUSTER_CONF)], env)
    error = result.get("error", "")
    assert "stops before training" in error, result
    driver_tf = importlib.metadata.version("tensorflow-cpu")
    assert executor_python in error and f"tensorflow not installed (the driver has {driver_tf})" in error, error
    assert "executor 0 on host" in error or "executor 1 on host" in error, error
    assert "spark.archives" in error and "keras" not in error.split("training:")[1].split("Fix:")[0], error


def test_jar_and_python_package_of_other_versions_fail_at_first_use(tmp_path) -> None:
    """A copy of this checkout's dlbridge package, as version 0.0.1, with the jar of this version."""
    package = tmp_path / "dlbridge"
    shutil.copytree(os.path.dirname(dlbridge.__file__), package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "_version.py").write_text('__version__ = "0.0.1"\n')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    result = _driver(sys.executable, ["versions"], env)
    for where in ("pyspark", "companion"):
        assert "dlbridge version mismatch" in result[where], result
        assert f"jar on the Spark driver's classpath is version {dlbridge.__version__}" in result[where], result
        assert "Python package that" in result[where] and "is version 0.0.1" in result[where], result
    assert "failed to start" in result["companion"], result["companion"]
