"""PythonTransformer on a real multi-process cluster (local-cluster: 2 executor JVMs)."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

import dlbridge_test_udfs  # noqa: F401 (registers the test functions in this driver)
from conftest import build_spark
from dlbridge.ml import PythonTransformer


@pytest.fixture(scope="module")
def cluster() -> Iterator[SparkSession]:
    session = build_spark("local-cluster[2,1,1024]")
    try:
        yield session
    finally:
        session.stop()


def test_runs_on_two_executor_processes(cluster) -> None:
    df = cluster.range(0, 4000, 1, 4).select(F.col("id").cast("double").alias("x"))
    out = PythonTransformer(function="plus_k", functionParams={"k": 0.25}, inputCol="x", outputCol="y").transform(df)
    pids = PythonTransformer(function="worker_pid", inputCol="x", outputCol="pid").transform(out)
    result = pids.toPandas()
    np.testing.assert_allclose(result["y"], result["x"] + 0.25, rtol=0, atol=1e-12)
    executors = cluster.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1  # minus the driver
    assert executors == 2
    assert result["pid"].nunique() >= 2, "both executors' Python workers should have run batches"
