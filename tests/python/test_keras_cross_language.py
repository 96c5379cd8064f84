"""Keras pipelines across languages: saved by the Scala example app and loaded in PySpark, saved
by PySpark and run by a Scala app; predictions agree to 1e-6. The two directions share one run of
each Scala app (the module's ``runs`` fixture)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import functions as F

from dlbridge.ml import KerasEstimator, KerasModel
from keras_helpers import assert_quiet, digits_csv, progress_epochs, submit_process


def pixels_frame(spark):  # type: ignore[no-untyped-def]
    raw = spark.read.option("inferSchema", "true").csv(digits_csv())
    return raw.select([(F.col(c) / 16.0).alias(c) for c in raw.columns[:64]]
                      + [F.col(raw.columns[64]).cast("double").alias("label")]).limit(300)


def probabilities(df) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    out = df.select(F.monotonically_increasing_id().alias("row"), "label", "probability", "prediction").toPandas()
    return out


def assert_same_predictions(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert len(a) == len(b) == 300
    pa = np.stack([v.toArray() for v in a["probability"]])
    pb = np.stack([v.toArray() for v in b["probability"]])
    np.testing.assert_allclose(pa, pb, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(a["prediction"].to_numpy(), b["prediction"].to_numpy())


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory) -> SimpleNamespace:  # type: ignore[no-untyped-def]
    """Both directions with one spark-submit of each Scala app (a JVM, a companion and Python workers
    each): the Scala example app fits and saves a pipeline, PySpark fits and saves another, then
    PipelineRunner runs both saved pipelines on the same Parquet input."""
    root = tmp_path_factory.mktemp("cross-language")
    demo = submit_process("dlbridge.examples.DigitsExample", digits_csv(), str(root / "scala-pipeline"), "2")
    pixels_frame(spark).write.parquet(str(root / "input"))
    data = spark.read.parquet(str(root / "input"))
    estimator = KerasEstimator(hiddenLayers=[32], epochs=2, batchSize=32, seed=3, verbose=0)
    model = Pipeline(stages=[VectorAssembler(inputCols=data.columns[:64], outputCol="features"), estimator]).fit(data)
    model.write().overwrite().save(str(root / "python-pipeline"))
    python_out = probabilities(model.transform(data))
    runner = submit_process("dlbridge.examples.PipelineRunner",
                            str(root / "scala-pipeline"), str(root / "input"), str(root / "scala-output"),
                            str(root / "python-pipeline"), str(root / "input"), str(root / "python-pipeline-in-scala"))
    return SimpleNamespace(root=root, demo=demo, runner=runner, python_out=python_out)


def test_scala_saved_pipeline_predicts_the_same_in_pyspark(spark, runs) -> None:
    """Also the demo's console (the same app as dev/demo, with 2 epochs): its results on stdout, one
    progress line per epoch on stderr, and no INFO log or TensorFlow notice."""
    demo, root = runs.demo, runs.root
    assert "dlbridge digits (Scala): test accuracy" in demo.stdout
    assert progress_epochs(demo.stderr, "kerasEst_") == [(1, 2), (2, 2)], demo.stderr[-3000:]
    assert_quiet(demo.stdout + demo.stderr)
    assert_quiet(runs.runner.stdout + runs.runner.stderr)
    loaded = PipelineModel.load(str(root / "scala-pipeline"))
    assert isinstance(loaded.stages[-1], KerasModel)
    python_out = probabilities(loaded.transform(spark.read.parquet(str(root / "input"))))
    scala_out = probabilities(spark.read.parquet(str(root / "scala-output")))
    assert_same_predictions(python_out, scala_out)


def test_pyspark_saved_pipeline_predicts_the_same_in_scala(spark, runs) -> None:
    scala_out = probabilities(spark.read.parquet(str(runs.root / "python-pipeline-in-scala")))
    assert_same_predictions(runs.python_out, scala_out)
