"""Bad data follows Spark's handleInvalid convention in KerasEstimator.fit and KerasModel.transform.

Data as users have it: pandas frames turned into ``array<float>`` / ``array<double>`` columns
(nullable elements), a CSV with empty cells, NaN / inf features, null Vectors, labels that are
not class indices, empty frames, corrupt model files, and a learning rate that diverges.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.functions import array_to_vector
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StructField, StructType

from dlbridge.ml import KerasEstimator, KerasModel

ROWS = 64
QUICK = dict(hiddenLayers=[4], epochs=1, batchSize=16, numWorkers=1, seed=1, verbose=0)
INTERNALS = ("NullPointerException", "JsonParse", "Non-standard token")


def clean_pandas(rows: int = ROWS) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 4)).astype(np.float32)
    return pd.DataFrame({"features": list(x), "label": (x[:, 0] > 0).astype(float)})


def with_row(df: pd.DataFrame, features, label: float = 0.0) -> pd.DataFrame:
    return pd.concat([df, pd.DataFrame({"features": [features], "label": [label]})], ignore_index=True)


def error_text(excinfo: pytest.ExceptionInfo) -> str:
    """The exception's text, checked to carry no parser / NPE internals."""
    text = str(excinfo.value)
    assert not any(internal in text for internal in INTERNALS), text[-3000:]
    return text


def assert_parts(text: str, *parts: str) -> None:
    for part in parts:
        assert part in text, f"{part!r} not in: {text[-3000:]}"


@pytest.fixture(scope="module")
def frame(spark):
    """``features array<float>`` with nullable elements, as spark.createDataFrame(pandas) makes it."""
    return spark.createDataFrame(clean_pandas(), "features array<float>, label double")


@pytest.fixture(scope="module")
def model(frame) -> KerasModel:
    return KerasEstimator(**QUICK).fit(frame)


def test_nullable_float_and_double_arrays_fit_and_transform_like_vectors(spark, frame, model) -> None:
    assert frame.schema["features"].dataType.containsNull
    doubles = spark.createDataFrame(clean_pandas(), "features array<double>, label double")
    KerasEstimator(**QUICK).fit(doubles)
    vectors = frame.select(array_to_vector("features").alias("features"))
    model.setRawOutputCol("raw")
    raws = [np.stack(model.transform(df).select("raw").toPandas()["raw"]) for df in (frame, doubles, vectors)]
    model.setRawOutputCol("")
    assert raws[0].shape == (ROWS, 2)
    np.testing.assert_allclose(raws[1], raws[0], atol=1e-6)
    np.testing.assert_allclose(raws[2], raws[0], atol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_nan_or_inf_feature_fails_fit_naming_column_count_and_fix(spark, bad) -> None:
    rows = clean_pandas()
    rows.at[3, "features"] = np.array([0.0, bad, 1.0, 2.0], np.float32)
    df = spark.createDataFrame(rows, "features array<float>, label double")
    with pytest.raises(Exception) as excinfo:
        KerasEstimator(**QUICK).fit(df)
    assert_parts(error_text(excinfo), "featuresCol='features'", f"1 of {ROWS} row(s)", "NaN, +/-inf",
                 "handleInvalid='skip'")


@pytest.mark.parametrize("element", ["double", "float"])
def test_transform_error_and_skip_on_nan_inf_null_element_and_null_row(spark, model, element) -> None:
    clean = [(r.tolist(),) for r in np.stack(clean_pandas(8)["features"]).astype(float)]
    bad = [("NaN or infinite", [float("nan")] * 4), ("NaN or infinite", [1.0, float("inf"), 0.0, 0.0]),
           ("NaN or infinite", [0.0, 0.0, 0.0, float("-inf")]),  # the last value of the row is checked too
           ("a null element", [1.0, None, 0.0, 0.0]), ("a null array", None)]
    if element == "double":
        bad.append(("NaN or infinite", [1e39, 0.0, 0.0, 0.0]))  # finite as a double, infinite as float32
    for found, features in bad:
        single = spark.createDataFrame(clean + [(features,)], f"features array<{element}>")
        with pytest.raises(Exception) as excinfo:
            model.transform(single).collect()
        assert_parts(error_text(excinfo), "featuresCol 'features' holds a row with", found, "handleInvalid='skip'")
    every = spark.createDataFrame(clean + [(f,) for _, f in bad], f"features array<{element}>")
    assert model.copy().setHandleInvalid("skip").transform(every).count() == 8


def test_csv_with_empty_cells(spark, tmp_path) -> None:
    path = tmp_path / "data.csv"
    lines = ["a,b,label"] + [f"{i % 5 / 5},{(i * 7) % 3 / 3},{i % 2}" for i in range(40)] + ["0.5,,1", ",0.1,0"]
    path.write_text("\n".join(lines) + "\n")
    raw = spark.read.option("header", "true").option("inferSchema", "true").csv(str(path))
    df = VectorAssembler(inputCols=["a", "b"], outputCol="features", handleInvalid="keep").transform(raw)
    with pytest.raises(Exception) as excinfo:
        KerasEstimator(**QUICK).fit(df)
    assert_parts(error_text(excinfo), "featuresCol='features'", "2 of 42 row(s)", "handleInvalid='skip'")
    model = KerasEstimator(handleInvalid="skip", **QUICK).fit(df)
    assert model.getHandleInvalid() == "skip"
    assert model.transform(df).count() == 40
    with pytest.raises(Exception) as excinfo:
        model.setHandleInvalid("error").transform(df).collect()
    assert_parts(error_text(excinfo), "featuresCol 'features'", "NaN or infinite value", "handleInvalid='skip'")


def test_null_vectors_are_invalid_rows_in_fit_and_transform(spark, model) -> None:
    rows = [(Vectors.dense([0.1, 0.2, 0.3, 0.4]), 0.0)] * 20 + [(None, 1.0)] + \
           [(Vectors.sparse(4, [1], [0.5]), 1.0)] * 20
    schema = StructType([StructField("features", VectorUDT()), StructField("label", DoubleType())])
    df = spark.createDataFrame(rows, schema)
    with pytest.raises(Exception) as excinfo:
        KerasEstimator(**QUICK).fit(df)
    text = error_text(excinfo)
    assert_parts(text, "featuresCol='features'", "1 of 41 row(s)", "handleInvalid='skip'")
    assert "FAILED_EXECUTE_UDF" not in text
    assert KerasEstimator(handleInvalid="skip", **QUICK).fit(df).summary["history"][0]["samples"] == 40
    with pytest.raises(Exception) as excinfo:
        model.transform(df).collect()
    assert_parts(error_text(excinfo), "featuresCol 'features' holds a row with a null vector", "handleInvalid")
    assert model.copy().setHandleInvalid("skip").transform(df).count() == 40


@pytest.mark.parametrize("label, shown", [(-1.0, "-1.0"), (0.5, "0.5")])
def test_a_label_that_is_not_a_class_index_is_named(spark, label, shown) -> None:
    rows = clean_pandas()
    rows.at[5, "label"] = label
    df = spark.createDataFrame(rows, "features array<float>, label double")
    with pytest.raises(Exception) as excinfo:
        KerasEstimator(**QUICK).fit(df)
    assert_parts(error_text(excinfo), "labelCol 'label'", "class indices 0..k-1", "1 row(s)", shown,
                 "StringIndexer", "task='regression'")


def test_a_nan_label_is_an_invalid_row(spark) -> None:
    rows = clean_pandas()
    rows.at[5, "label"] = np.nan
    df = spark.createDataFrame(rows, "features array<float>, label double")
    with pytest.raises(Exception) as excinfo:
        KerasEstimator(**QUICK).fit(df)
    assert_parts(error_text(excinfo), "labelCol='label'", f"1 of {ROWS} row(s)", "handleInvalid='skip'")


def test_empty_frames(spark, frame, model) -> None:
    empty = frame.limit(0)
    with pytest.raises(Exception) as excinfo:
        KerasEstimator(**QUICK).fit(empty)
    assert_parts(error_text(excinfo), "no rows", "featuresCol='features'", "Fix")
    assert model.transform(empty).count() == 0


def test_a_corrupt_model_file_names_the_users_path(spark, frame, tmp_path) -> None:
    path = str(tmp_path / "broken.keras")
    with open(path, "wb") as f:
        f.write(b"this is not a zip archive")
    with pytest.raises(Exception) as excinfo:
        KerasModel.fromFile(path)
    text = error_text(excinfo)
    assert_parts(text, f"KerasModel.fromFile path '{path}'", "not a loadable Keras v3 .keras archive", "Fix")
    assert "dlbridge-model-" not in text and "File not found" not in text
    with pytest.raises(Exception) as excinfo:
        KerasEstimator(modelFile=path, **QUICK).fit(frame)
    assert_parts(error_text(excinfo), f"modelFile '{path}'", "not a loadable Keras v3 .keras archive")


def test_a_diverging_learning_rate_stops_at_the_epoch_it_diverges(spark) -> None:
    rows = clean_pandas()
    rows["label"] = rows["features"].map(lambda x: float(x.sum() * 100))
    df = spark.createDataFrame(rows, "features array<float>, label double")
    est = KerasEstimator(task="regression", optimizer="sgd", optimizerOptions={"learning_rate": 1e6},
                         **{**QUICK, "epochs": 3, "batchSize": 8})
    with pytest.raises(Exception) as excinfo:
        est.fit(df)
    assert_parts(error_text(excinfo), "training stopped in epoch", "diverged", "lower the learning rate")
