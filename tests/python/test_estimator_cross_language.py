"""Scala ⇄ PySpark for a user's own Python estimator: a pipeline with ``PythonEstimator``
(``centroid_classifier``) fitted and saved by the Scala example app loads in PySpark with identical
predictions, and one fitted and saved by PySpark loads in the Scala app with identical predictions (both
directions share one run of the app: the module's ``runs`` fixture)."""
from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

import centroids  # noqa: F401 (registers 'centroid_classifier' in this driver)
from conftest import REPO
from keras_helpers import fit_and_load_in_one_app, spark_submit
from dlbridge.ml import PythonEstimator, PythonModel


def example_input(spark: SparkSession, start: int, end: int) -> DataFrame:
    """The same rows as CentroidExample.input."""
    centre = (F.col("id") % 2) * 2.0 - 1.0
    return spark.range(start, end, 1, 4).select(
        "id",
        (centre + F.sin(F.col("id")) * 1.2).alias("a"),
        (centre + F.cos(F.col("id") * 0.7) * 1.2).alias("b"),
        (F.col("id") % 2).cast("double").alias("label"),
    )


def train(spark: SparkSession) -> DataFrame:
    return example_input(spark, 0, 4000)


def holdout(spark: SparkSession) -> DataFrame:
    return example_input(spark, 4000, 5000)


def spark_submit_example(*args: str) -> str:
    """The CentroidExample app, the estimator's module shipped with --py-files."""
    return spark_submit("dlbridge.examples.CentroidExample", *args, options=[
        "--py-files", os.path.join(REPO, "examples", "python", "centroids.py"),
        "--conf", "spark.dlbridge.python.modules=centroids",
    ])


def as_sorted(df: DataFrame) -> np.ndarray:
    """id, label, prediction, ordered by id."""
    return np.asarray(df.select("id", "label", "prediction").orderBy("id").toPandas().to_numpy(dtype=float))


def accuracy(result: np.ndarray) -> float:
    return float(np.mean(result[:, 1] == result[:, 2]))


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory) -> SimpleNamespace:  # type: ignore[no-untyped-def]
    """Both directions with one spark-submit of the Scala app: PySpark fits and saves a pipeline, then
    the app fits and saves its own (``fit``) and loads and runs PySpark's (``load``)."""
    root = tmp_path_factory.mktemp("cross-language")
    stage = PythonEstimator(function="centroid_classifier", functionParams={"shrink": 0.1},
                            inputCols=["a", "b"], labelCol="label", outputCol="prediction")
    model = Pipeline(stages=[stage]).fit(train(spark))
    python_result = as_sorted(model.transform(holdout(spark)))
    stdout = fit_and_load_in_one_app(spark_submit_example, root, model)
    return SimpleNamespace(root=root, stdout=stdout, python_result=python_result)


def test_scala_saved_pipeline_loads_in_pyspark_with_identical_predictions(spark, runs) -> None:
    assert "dlbridge example (fit): accuracy = " in runs.stdout
    scala_result = as_sorted(spark.read.parquet(str(runs.root / "scala-result")))
    loaded = PipelineModel.load(str(runs.root / "scala-pipeline"))
    stage = loaded.stages[0]
    assert isinstance(stage, PythonModel)
    assert stage.getFunction() == "centroid_classifier" and stage.getInputCols() == ["a", "b"]
    assert sorted(stage.stateFiles) == ["centroids.npy", "classes.npy"]
    python_result = as_sorted(loaded.transform(holdout(spark)))
    assert python_result.shape == (1000, 3)
    np.testing.assert_array_equal(python_result, scala_result)  # same state, same predictor
    assert accuracy(python_result) >= 0.9


def test_pyspark_saved_pipeline_loads_in_scala_with_identical_predictions(spark, runs) -> None:
    assert accuracy(runs.python_result) >= 0.9
    assert "dlbridge example (load): accuracy = " in runs.stdout
    scala_result = as_sorted(spark.read.parquet(str(runs.root / "python-pipeline-in-scala")))
    np.testing.assert_array_equal(scala_result, runs.python_result)
