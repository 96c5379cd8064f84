"""Shared pytest fixtures: one real SparkSession, shared by the test modules that use the default one.

The master defaults to ``local[2]``; set ``DLBRIDGE_TEST_MASTER`` (for example
``local-cluster[2,1,1024]``) to run a module against a multi-process cluster.
The dlbridge jar (built by ``dev/build``) is put on the classpath when present.
"""
from __future__ import annotations

import os
import sys
from typing import Iterator

import pytest
from pyspark.sql import SparkSession

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# Modules that register test and example functions. The JVM (and so every Python worker
# and companion it starts) inherits PYTHONPATH from this process, so set it before Spark starts.
PYTHON_DIRS = [os.path.join(REPO, "tests", "python", "udfs"), os.path.join(REPO, "examples", "python")]
os.environ["PYTHONPATH"] = os.pathsep.join(
    PYTHON_DIRS + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
)
sys.path[:0] = [d for d in PYTHON_DIRS if d not in sys.path]


def dlbridge_jar() -> str | None:
    """The jar built by dev/build, or None when only the Python side is tested."""
    import dlbridge

    try:
        return dlbridge.jar_path()
    except FileNotFoundError:
        return None


def build_spark(master: str | None = None, **conf: str) -> SparkSession:
    """A SparkSession of its own for a module that needs a master or conf of its own (worker reuse on,
    no task retries). A process has one SparkContext, so the suite's shared session is stopped first;
    the next module that asks for ``spark`` starts it again."""
    _stop_shared()
    return _builder(master, conf).getOrCreate()


def _builder(master: str | None, conf: dict) -> SparkSession.Builder:
    builder = (
        SparkSession.builder.master(master or os.environ.get("DLBRIDGE_TEST_MASTER", "local[2]"))
        .appName("dlbridge-tests")
        .config("spark.python.worker.reuse", "true")
        .config("spark.task.maxFailures", "1")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    jar = dlbridge_jar()
    if jar:
        builder = builder.config("spark.jars", jar)
    for key, value in conf.items():
        builder = builder.config(key.replace("__", "."), value)
    return builder


_shared: list[SparkSession] = []  # the suite's default session while it runs (at most one)


def _stop_shared() -> None:
    while _shared:
        _shared.pop().stop()


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    """The suite's default SparkSession (``local[2]``), shared by the modules that use it.

    Starting a session and warming its Python workers (TensorFlow's import, the first
    fit's compilation) costs about half a minute on two cores, so consecutive modules
    share one instead of each starting its own. Each module leaves it as it found it:
    the fixture drops its cached data and temp views after it. A module that calls
    :func:`build_spark` stops it, and the next module that asks starts it again; the
    last one is stopped when the test session ends.
    """
    if not _shared:
        _shared.append(_builder(None, {}).getOrCreate())
    session = _shared[0]
    yield session
    if _shared and _shared[0] is session:
        session.catalog.clearCache()
        for table in session.catalog.listTables():
            if table.isTemporary:
                session.catalog.dropTempView(table.name)


@pytest.fixture(scope="session", autouse=True)
def _stop_the_shared_session_at_the_end() -> Iterator[None]:
    yield
    _stop_shared()
    _end_the_jvm()


def _end_the_jvm(timeout: float = 120) -> None:
    """End this process's Spark JVM (the py4j gateway) and wait until it has exited.

    The JVM exits when its stdin closes (PySpark's launch protocol) and deletes Spark's
    temporary directories in its shutdown hooks. Left to the end of the Python process it
    would do so after pytest returned, racing dev/test's check for leftover temp files.
    """
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    process = getattr(gateway, "proc", None)
    if gateway is None or process is None:
        return
    gateway.shutdown()
    if process.stdin is not None:
        process.stdin.close()
    process.wait(timeout)
    SparkContext._gateway = None
    SparkContext._jvm = None


def pytest_collection_modifyitems(items: list) -> None:
    """Run the modules that use the shared session first (in file order), so that it starts once."""
    def shared(item) -> bool:
        definitions = item._fixtureinfo.name2fixturedefs.get("spark") or ()
        return bool(definitions) and definitions[-1].func.__module__ == __name__

    sharing = {item.module for item in items if shared(item)}
    items.sort(key=lambda item: item.module not in sharing)


# The RELIABILITY.md recorder: its fixture and its end-of-session hook, registered here.
from reliability import pytest_sessionfinish, reliability  # noqa: E402,F401
