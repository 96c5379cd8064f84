"""Pipelines saved by an earlier version of dlbridge load and give the same predictions
(fixtures in tests/resources/saved, see the README there)."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
from pyspark.ml import Pipeline, PipelineModel

import dlbridge_test_udfs  # noqa: F401 (registers plus_k, which the saved pipelines name)
from conftest import REPO
from dlbridge.ml import KerasEstimator, KerasModel, PythonTransformer

SAVED = os.path.join(REPO, "tests", "resources", "saved", "main-4e5c77d")


def saved_input(spark):  # type: ignore[no-untyped-def]
    pdf = pd.read_csv(os.path.join(SAVED, "input.csv"))
    return spark.createDataFrame(pdf, "a double, b double, label double")


def test_a_fitted_pipeline_saved_before_the_one_registry_predicts_the_same(spark) -> None:
    model = PipelineModel.load(os.path.join(SAVED, "pipeline_model"))
    assert [type(s) for s in model.stages][::2] == [PythonTransformer, KerasModel]
    keras_model = model.stages[2]
    assert keras_model.numFeatures == 2 and len(keras_model.summary["history"]) == 3
    got = model.transform(saved_input(spark)).select("a", "b", "pred").toPandas().sort_values(["a", "b"])
    expected = pd.read_csv(os.path.join(SAVED, "predictions.csv")).sort_values(["a", "b"])
    np.testing.assert_allclose(got[["a", "b"]].to_numpy(), expected[["a", "b"]].to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got["pred"].to_numpy(), expected["pred"].to_numpy())


def test_an_unfitted_pipeline_saved_before_the_one_registry_fits(spark) -> None:
    pipeline = Pipeline.load(os.path.join(SAVED, "pipeline"))
    estimator = pipeline.getStages()[2]
    assert isinstance(estimator, KerasEstimator)
    assert (estimator.getEpochs(), estimator.getHiddenLayers(), estimator.getPredictionCol()) == (3, [8], "pred")
    fitted = pipeline.fit(saved_input(spark))
    history = fitted.stages[2].summary["history"]
    assert len(history) == 3 and all(np.isfinite(epoch["loss"]) for epoch in history)
    predictions = fitted.transform(saved_input(spark)).select("pred").toPandas()["pred"]
    assert len(predictions) == 240 and set(predictions) <= {0.0, 1.0}  # 3 epochs of a tiny MLP: not a quality bar
