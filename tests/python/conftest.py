"""Shared pytest fixtures: one real SparkSession per test module.

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
    """A SparkSession configured for tests (worker reuse on, no task retries)."""
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
    return builder.getOrCreate()


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    """One SparkSession per test module, stopped at the end of the module."""
    session = build_spark()
    try:
        yield session
    finally:
        session.stop()


# The RELIABILITY.md recorder: its fixture and its end-of-session hook, registered here.
from reliability import pytest_sessionfinish, reliability  # noqa: E402,F401
