"""Scala ⇄ PySpark: the Scala example app (spark-submit) and PySpark give identical results,
and a pipeline saved by either loads in the other (both directions share one run of the app: the
module's ``runs`` fixture)."""
from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

import example_udfs  # noqa: F401 (registers 'polynomial' in this driver)
from conftest import REPO
from keras_helpers import fit_and_load_in_one_app, spark_submit
from dlbridge.ml import PythonTransformer

COEFFICIENTS = [1.0, -2.0, 0.5]  # the Scala example's


def example_input(spark: SparkSession) -> DataFrame:
    """The same input as PythonTransformerExample.input."""
    return spark.range(0, 10000, 1, 4).select((F.col("id") / 1000.0).alias("x"))


def spark_submit_example(*args: str) -> str:
    """The PythonTransformer example app, its Python functions shipped with --py-files."""
    return spark_submit("dlbridge.examples.PythonTransformerExample", *args, options=[
        "--py-files", os.path.join(REPO, "examples", "python", "example_udfs.py"),
        "--conf", "spark.dlbridge.python.modules=example_udfs",
    ])


def as_sorted(df: DataFrame) -> np.ndarray:
    return np.asarray(df.select("x", "y").orderBy("x").toPandas().to_numpy())


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory) -> SimpleNamespace:  # type: ignore[no-untyped-def]
    """Both directions with one spark-submit of the Scala app: PySpark fits and saves a pipeline, then
    the app fits and saves its own (``fit``) and loads and runs PySpark's (``load``)."""
    root = tmp_path_factory.mktemp("cross-language")
    stage = PythonTransformer(function="polynomial", functionParams={"coefficients": COEFFICIENTS},
                              inputCol="x", outputCol="y")
    model = Pipeline(stages=[stage]).fit(example_input(spark))
    python_result = as_sorted(model.transform(example_input(spark)))
    stdout = fit_and_load_in_one_app(spark_submit_example, root, model)
    return SimpleNamespace(root=root, stdout=stdout, python_result=python_result)


def test_scala_saved_pipeline_loads_in_pyspark_with_identical_results(spark, runs) -> None:
    assert "dlbridge example (fit)" in runs.stdout
    scala_result = as_sorted(spark.read.parquet(str(runs.root / "scala-result")))
    loaded = PipelineModel.load(str(runs.root / "scala-pipeline"))
    assert isinstance(loaded.stages[0], PythonTransformer)
    python_result = as_sorted(loaded.transform(example_input(spark)))
    assert python_result.shape == (10000, 2)
    np.testing.assert_array_equal(python_result, scala_result)  # same function, same bits
    x = python_result[:, 0]
    np.testing.assert_allclose(python_result[:, 1], 1 - 2 * x + 0.5 * x**2, rtol=0, atol=1e-9)


def test_pyspark_saved_pipeline_loads_in_scala_with_identical_results(spark, runs) -> None:
    assert "dlbridge example (load)" in runs.stdout
    scala_result = as_sorted(spark.read.parquet(str(runs.root / "python-pipeline-in-scala")))
    np.testing.assert_array_equal(scala_result, runs.python_result)
