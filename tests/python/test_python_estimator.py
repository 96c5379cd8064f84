"""Users' own estimators from PySpark: register_estimator, PythonEstimator / PythonModel, the state
format (no pickle), broadcast of the state, per-worker predictor and factory caching, and errors."""
from __future__ import annotations

import collections
import os
import numpy as np
import pandas as pd
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql import DataFrame, SparkSession

import centroids  # noqa: F401 (registers centroid_classifier in this driver)
import dlbridge_test_estimators  # noqa: F401
from dlbridge.ml import PythonEstimator, PythonModel, PythonTransformer


def blobs(spark: SparkSession, n: int = 400, seed: int = 0) -> DataFrame:
    """Two classes around (3, 3) and (6, 1): separable, and away from the origin."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n).astype(float)
    centre = np.where(label[:, None] == 0, [3.0, 3.0], [6.0, 1.0])
    xy = centre + rng.normal(scale=0.4, size=(n, 2))
    pdf = pd.DataFrame({"a": xy[:, 0], "b": xy[:, 1], "label": label})
    return spark.createDataFrame(pdf, "a double, b double, label double").repartition(4)


def accuracy(df: DataFrame, column: str = "prediction") -> float:
    pdf = df.select("label", column).toPandas()
    return float((pdf["label"] == pdf[column]).mean())


def test_the_readme_estimator_fits_and_predicts(spark) -> None:
    train = blobs(spark)
    est = PythonEstimator(function="centroid_classifier", functionParams={"shrink": 0.0},
                          inputCols=["a", "b"], labelCol="label", outputCol="prediction")
    model = est.fit(train)
    assert isinstance(model, PythonModel)
    assert model.stateFiles == ["centroids.npy", "classes.npy"]
    out = model.transform(blobs(spark, seed=1))
    assert dict(out.dtypes)["prediction"] == "double"
    assert accuracy(out) >= 0.98


def test_pipeline_save_load_gives_identical_predictions_and_files_are_not_pickled(spark, tmp_path) -> None:
    est = PythonEstimator(function="centroid_classifier", inputCols=["a", "b"], labelCol="label",
                          outputCol="prediction")
    fitted = Pipeline(stages=[est]).fit(blobs(spark))
    fitted.write().overwrite().save(str(tmp_path / "p"))
    loaded = PipelineModel.load(str(tmp_path / "p"))
    assert isinstance(loaded.stages[0], PythonModel)
    test = blobs(spark, seed=2)
    before = fitted.transform(test).orderBy("a").select("prediction").toPandas()
    after = loaded.transform(test).orderBy("a").select("prediction").toPandas()
    pd.testing.assert_frame_equal(before, after)
    data = next((tmp_path / "p" / "stages").iterdir()) / "data"
    assert sorted(f.name for f in data.iterdir() if not f.name.startswith((".", "_"))) == ["centroids.npy", "classes.npy"]
    centroids_ = np.load(data / "centroids.npy", allow_pickle=False)
    assert centroids_.shape == (2, 2)


def test_state_kinds_round_trip_and_weight_col_is_passed(spark) -> None:
    pdf = pd.DataFrame({"x": [1.0, 2.0, 3.0, 10.0], "w": [1.0, 1.0, 1.0, 0.0]})
    df = spark.createDataFrame(pdf, "x double, w double")
    model = PythonEstimator(function="column_means", inputCols=["x"], weightCol="w", outputCol="centred").fit(df)
    assert model.stateFiles == ["info.json", "means.npy", "note.txt", "payload.npy"]
    centred = model.transform(df).orderBy("x").select("centred").toPandas()["centred"].to_numpy()
    np.testing.assert_allclose(centred, [-1.0, 0.0, 1.0, 8.0], atol=1e-12)  # weighted mean 2.0


def test_the_state_reaches_executors_by_broadcast_not_in_the_closure(spark) -> None:
    """An 8 MB state: the transform works, and the UDF's pickled command stays small."""
    from dlbridge.backend.udfs import build_udf
    from dlbridge.registry import lookup

    df = spark.createDataFrame(pd.DataFrame({"x": np.arange(8.0)}), "x double")
    model = PythonEstimator(function="column_means", inputCols=["x"], outputCol="c",
                            functionParams={"payload_floats": 2_000_000}).fit(df)
    assert model.transform(df).filter("c = 0").count() == 0
    files = {"means.npy": b"", "payload.npy": b"\0" * 8_000_000}
    udf = build_udf(spark, lookup("column_means"), {"inputCols": ["x"]}, files)
    command_bytes = udf._unwrapped._judf.func().command().size()
    assert command_bytes < 100_000, command_bytes


def load_counts(path: str) -> collections.Counter:
    if not os.path.exists(path):
        return collections.Counter()
    with open(path) as f:
        return collections.Counter(line.strip() for line in f if line.strip())


def test_the_predictor_is_built_once_per_python_worker(spark, tmp_path) -> None:
    log = str(tmp_path / "predictor.log")
    df = spark.range(0, 4000, 1, 8).selectExpr("cast(id as double) as x")
    model = PythonEstimator(function="column_means", inputCols=["x"], outputCol="c",
                            functionParams={"log_path": log}).fit(df)
    for _ in range(3):  # 3 jobs of 8 tasks each
        assert model.transform(df).filter("c > 0").count() == 2000  # mean 1999.5
    counts = load_counts(log)
    assert counts and all(n == 1 for n in counts.values()), counts
    assert len(counts) <= 2  # local[2] reuses its Python workers


def test_a_transformer_builds_its_heavy_state_once_per_python_worker(spark, tmp_path) -> None:
    log = str(tmp_path / "factory.log")
    df = spark.range(0, 4000, 1, 8).selectExpr("cast(id as double) as x")
    stage = PythonTransformer(function="counted_heavy_state", functionParams={"log_path": log, "offset": 1.0},
                              inputCol="x", outputCol="y")
    for _ in range(3):
        assert stage.transform(df).filter("y = x + 1").count() == 4000
    counts = load_counts(log)
    assert counts and all(n == 1 for n in counts.values()), counts


@pytest.mark.parametrize("kind, expected", [
    ("list", ["bad_state", "must return the model state", "list [1, 2]"]),
    ("objects", ["state['a']", "numpy array of Python objects", "without pickle"]),
    ("nan", ["state['meta']", "NaN or infinite"]),
    ("raise", ["bad_state", "raised ZeroDivisionError", "the user's fit failed"]),
])
def test_a_bad_fit_names_the_function_and_what_it_returned(spark, kind, expected) -> None:
    df = spark.createDataFrame(pd.DataFrame({"x": [1.0]}), "x double")
    with pytest.raises(Exception) as info:
        PythonEstimator(function="bad_state", inputCols=["x"], functionParams={"kind": kind}).fit(df)
    message = str(info.value)
    for part in expected:
        assert part in message, (part, message[:2000])


def test_params_are_checked_before_any_job(spark) -> None:
    df = blobs(spark)
    tracker = spark.sparkContext.statusTracker()
    jobs_before = len(tracker.getJobIdsForGroup(None))
    est = PythonEstimator(function="centroid_classifier", inputCols=["a", "b"], labelCol="label",
                          functionParams={"shrinkk": 0.1})
    with pytest.raises(Exception) as info:
        est.fit(df)
    assert "has no param 'shrinkk'" in str(info.value) and "shrink" in str(info.value)
    with pytest.raises(Exception) as info:
        PythonEstimator(function="centroid_classifier", inputCols=["a", "b"]).fit(df)
    assert "needs param 'labelCol'" in str(info.value) and "setLabelCol" in str(info.value)
    with pytest.raises(Exception) as info:
        PythonEstimator(function="no_predictor", inputCols=["a"]).fit(df)
    assert "has no predictor" in str(info.value) and "@no_predictor.predictor" in str(info.value)
    assert len(tracker.getJobIdsForGroup(None)) == jobs_before


def test_a_transformer_stage_naming_an_estimator_says_so(spark) -> None:
    df = blobs(spark)
    with pytest.raises(Exception) as info:
        PythonTransformer(function="centroid_classifier", inputCol="a", outputCol="y").transform(df).count()
    assert "is a Python estimator" in str(info.value), str(info.value)
    assert "PythonEstimator(function='centroid_classifier'" in str(info.value)


def test_cross_validator_with_parallelism_2_over_function_params(spark) -> None:
    """Shrinking the centroids toward the origin (0.9) misplaces them: CrossValidator picks 0.0."""
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

    est = PythonEstimator(function="centroid_classifier", inputCols=["a", "b"], labelCol="label",
                          outputCol="prediction")
    grid = ParamGridBuilder().addGrid(est.functionParams, ['{"shrink": 0.9}', '{"shrink": 0.0}']).build()
    cv = CrossValidator(estimator=est, estimatorParamMaps=grid, numFolds=2, parallelism=2, seed=7,
                        evaluator=MulticlassClassificationEvaluator(metricName="accuracy"))
    model = cv.fit(blobs(spark))
    assert model.avgMetrics[1] >= 0.98 and model.avgMetrics[0] < 0.9, model.avgMetrics
    assert isinstance(model.bestModel, PythonModel)
    assert model.bestModel.getFunctionParams() == '{"shrink": 0.0}'
