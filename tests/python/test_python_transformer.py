"""PythonTransformer from PySpark: the Scala stage, with this driver as its Python backend."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

import dlbridge_test_udfs  # noqa: F401 (registers the test functions in this driver)
from dlbridge.ml import PythonTransformer


@pytest.fixture(scope="module")
def numbers(spark: SparkSession):
    return spark.range(0, 1000, 1, 4).select(F.col("id").cast("double").alias("x"), (F.col("id") % 7).alias("z"))


def test_plus_k_runs_on_executors(numbers) -> None:
    t = PythonTransformer(function="plus_k", functionParams={"k": 2.5}, inputCol="x", outputCol="y")
    out = t.transform(numbers).toPandas()
    assert len(out) == 1000
    np.testing.assert_allclose(out["y"], out["x"] + 2.5, rtol=0, atol=1e-12)


def test_backend_is_this_driver_not_a_companion(spark, numbers) -> None:
    PythonTransformer(function="plus_k", inputCol="x", outputCol="y").transform(numbers)
    bridge = spark.sparkContext._jvm.dlbridge.python.PythonBridge
    assert bridge.isRegistered(spark.sparkContext._jsc)
    assert bridge.companionPid(spark.sparkContext._jsc.sc()) == -1


def test_several_input_columns(numbers) -> None:
    t = PythonTransformer(function="weighted_sum", functionParams='{"weights": [2.0, -1.0], "bias": 0.5}',
                          inputCols=["x", "z"], outputCol="s")
    out = t.transform(numbers).toPandas()
    np.testing.assert_allclose(out["s"], 2.0 * out["x"] - out["z"] + 0.5, rtol=0, atol=1e-9)


def test_bad_params_rejected_before_any_job(spark, numbers) -> None:
    tracker = spark.sparkContext.statusTracker()
    jobs_before = len(tracker.getJobIdsForGroup(None))
    with pytest.raises(Exception, match=r"has no param 'kk'.*Accepted params: k: float = 1.0"):
        PythonTransformer(function="plus_k", functionParams={"kk": 1}, inputCol="x").transform(numbers)
    with pytest.raises(Exception, match=r"param 'k' expects int or float; received 'a'"):
        PythonTransformer(function="plus_k", functionParams={"k": "a"}, inputCol="x").transform(numbers)
    with pytest.raises(Exception, match=r"input column\(s\) nope not found"):
        PythonTransformer(function="plus_k", inputCol="nope").transform(numbers)
    assert len(tracker.getJobIdsForGroup(None)) == jobs_before


def test_function_params_must_be_a_json_object() -> None:
    with pytest.raises(TypeError, match=r"functionParams.*Expected a dict or a JSON object.*received: .\[1, 2\]"):
        PythonTransformer(function="plus_k", functionParams="[1, 2]")


def test_python_exception_carries_traceback(numbers) -> None:
    t = PythonTransformer(function="explode_on_value", functionParams={"bad": 3.0}, inputCol="x", outputCol="y")
    with pytest.raises(Exception) as info:
        t.transform(numbers).collect()
    text = str(info.value)
    assert "ZeroDivisionError" in text and "met the bad value 3.0" in text and "Traceback" in text


def test_two_threads_at_once(numbers) -> None:
    results: dict = {}
    errors: list = []

    def run(k: float) -> None:
        try:
            t = PythonTransformer(function="plus_k", functionParams={"k": k}, inputCol="x", outputCol="y")
            results[k] = t.transform(numbers).agg(F.sum("y")).first()[0]
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(k,)) for k in (1.0, 2.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors
    base = sum(range(1000))
    assert results[1.0] == pytest.approx(base + 1000 * 1.0)
    assert results[2.0] == pytest.approx(base + 1000 * 2.0)


def test_pipeline_save_load(numbers, tmp_path) -> None:
    stage = PythonTransformer(function="plus_k", functionParams={"k": 4.0}, inputCol="x", outputCol="y")
    model = Pipeline(stages=[stage]).fit(numbers)
    path = str(tmp_path / "pipeline")
    model.write().overwrite().save(path)
    loaded = PipelineModel.load(path)
    reloaded_stage = loaded.stages[0]
    assert isinstance(reloaded_stage, PythonTransformer)
    assert reloaded_stage.uid == stage.uid
    assert reloaded_stage.getFunctionParams() == '{"k": 4.0}'
    out = loaded.transform(numbers).toPandas()
    np.testing.assert_allclose(out["y"], out["x"] + 4.0, rtol=0, atol=1e-12)
    direct = PythonTransformer.load(os.path.join(path, "stages", os.listdir(os.path.join(path, "stages"))[0]))
    assert direct.getFunction() == "plus_k"
