"""dlbridge.inference: the executor-side Keras UDF on real Spark (local[2]) and real Keras."""
from __future__ import annotations

import os
import tempfile
import threading
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pytest
from dlbridge_test_layers import LoadRecorder
from pyspark.sql import DataFrame, SparkSession
from sklearn.datasets import load_digits

from dlbridge.inference import build_keras_udf, describe_model

ATOL = 1e-5  # float32 forward pass on the executors vs in this process


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    x = (data.data[:240] / 16.0).astype(np.float32)
    return x, data.target[:240]


def save_bytes(model: Any) -> bytes:
    with tempfile.TemporaryDirectory(prefix="dlbridge-test-") as directory:
        path = os.path.join(directory, "m.keras")
        model.save(path)
        with open(path, "rb") as f:
            return f.read()


def mlp(inputs: int, outputs: int, activation: str | None, hidden: int = 16, seed: int = 0) -> Any:
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(hidden, activation="relu"),
                             keras.layers.Dense(outputs, activation=activation)])


@pytest.fixture(scope="module")
def classifier() -> tuple[Any, bytes]:
    model = mlp(64, 10, "softmax")
    return model, save_bytes(model)


def array_frame(spark: SparkSession, x: np.ndarray, element: str = "float", partitions: int = 3) -> DataFrame:
    rows = [(i, r.tolist()) for i, r in enumerate(x)]
    return spark.createDataFrame(rows, f"id long, features array<{element}>").repartition(partitions)


def run(df: DataFrame, udf: Any, *cols: str) -> list[Any]:
    """The UDF's output structs, ordered by the ``id`` column."""
    return [r.out for r in df.select("id", udf(*cols).alias("out")).orderBy("id").collect()]


def direct(model: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(x, training=False))


@pytest.mark.parametrize("element", ["float", "double"])
def test_classifier_matches_keras(spark, digits, classifier, element) -> None:
    x, _ = digits
    model, data = classifier
    udf = build_keras_udf(data, task="classification", outputs=("prediction", "probability", "raw"))
    out = run(array_frame(spark, x, element), udf, "features")
    expected = direct(model, x)
    assert list(out[0].asDict()) == ["prediction", "probability", "raw"]
    np.testing.assert_allclose([r.probability for r in out], expected, rtol=0, atol=ATOL)
    np.testing.assert_allclose([r.raw for r in out], expected, rtol=0, atol=ATOL)
    np.testing.assert_array_equal([r.prediction for r in out], expected.argmax(axis=1))


def test_binary_float32_rows(spark, digits, classifier) -> None:
    x, _ = digits
    model, data = classifier
    df = spark.createDataFrame([(i, r.astype("<f4").tobytes()) for i, r in enumerate(x)], "id long, features binary")
    out = run(df, build_keras_udf(data, task="classification"), "features")
    np.testing.assert_allclose([r.probability for r in out], direct(model, x), rtol=0, atol=ATOL)
    short = spark.createDataFrame([(0, b"\0" * 252)], "id long, features binary")
    with pytest.raises(Exception, match=r"must hold 64 float32 values \(256 bytes\).*holds 252 bytes"):
        run(short, build_keras_udf(data, task="classification"), "features")


def test_several_numeric_columns(spark) -> None:
    model = mlp(5, 3, "softmax")
    x = np.random.default_rng(1).normal(size=(100, 5)).astype(np.float32)
    cols = [f"c{j}" for j in range(5)]
    rows = [(i, *(float(v) for v in r[:4]), int(round(r[4] * 10))) for i, r in enumerate(x)]
    x[:, 4] = np.round(x[:, 4] * 10)  # the last column is an integer column
    df = spark.createDataFrame(rows, "id long, c0 double, c1 double, c2 float, c3 double, c4 int")
    udf = build_keras_udf(save_bytes(model), task="classification", num_input_cols=5, input_cols=cols)
    out = run(df, udf, *cols)
    np.testing.assert_allclose([r.probability for r in out], direct(model, x), rtol=0, atol=ATOL)
    np.testing.assert_array_equal([r.prediction for r in out], direct(model, x).argmax(axis=1))


def test_regression(spark, digits) -> None:
    x, _ = digits
    model = mlp(64, 1, None, seed=2)
    udf = build_keras_udf(save_bytes(model), task="regression", outputs=("prediction", "raw"))
    out = run(array_frame(spark, x), udf, "features")
    np.testing.assert_allclose([r.prediction for r in out], direct(model, x)[:, 0], rtol=0, atol=ATOL)
    np.testing.assert_allclose([r.raw for r in out], direct(model, x), rtol=0, atol=ATOL)


def test_sigmoid_binary_classifier(spark, digits) -> None:
    x, _ = digits
    model = mlp(64, 1, "sigmoid", seed=3)
    udf = build_keras_udf(save_bytes(model), task="classification")
    out = run(array_frame(spark, x), udf, "features")
    p = direct(model, x)[:, 0]
    np.testing.assert_allclose([r.probability for r in out], np.column_stack([1 - p, p]), rtol=0, atol=ATOL)
    np.testing.assert_array_equal([r.prediction for r in out], (p >= 0.5).astype(float))


def test_logits_get_softmax(spark, digits) -> None:
    x, _ = digits
    model = mlp(64, 10, None, seed=4)  # linear output layer: logits
    udf = build_keras_udf(save_bytes(model), task="classification", outputs=("probability", "raw"))
    out = run(array_frame(spark, x), udf, "features")
    logits = direct(model, x).astype(np.float64)
    soft = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose([r.probability for r in out], soft / soft.sum(axis=1, keepdims=True),
                               rtol=0, atol=ATOL)
    np.testing.assert_allclose([r.raw for r in out], logits, rtol=0, atol=ATOL)


def test_cnn_reshapes_flat_rows(spark, digits) -> None:
    x, _ = digits
    keras.utils.set_random_seed(5)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    data = save_bytes(model)
    expected = direct(model, x.reshape(-1, 8, 8, 1))
    df = array_frame(spark, x)
    for shape in ([8, 8, 1], None):  # given, or taken from the model's input
        out = run(df, build_keras_udf(data, task="classification", input_shape=shape), "features")
        np.testing.assert_allclose([r.probability for r in out], expected, rtol=0, atol=ATOL)
    assert describe_model(data) == {"inputShape": [8, 8, 1], "outputShape": [10], "numInputs": 64,
                                    "numOutputs": 10}


def test_about_1mb_model_is_shipped(spark) -> None:
    model = mlp(64, 10, "softmax", hidden=4096, seed=6)  # ~1.2 MB of weights: a broadcast command
    data = save_bytes(model)
    assert len(data) > 1024 * 1024
    x = np.random.default_rng(7).random((64, 64), dtype=np.float32)
    out = run(array_frame(spark, x, partitions=2), build_keras_udf(data, task="classification"), "features")
    np.testing.assert_allclose([r.probability for r in out], direct(model, x), rtol=0, atol=ATOL)


def test_wrong_row_length_names_expected_and_received(spark, classifier) -> None:
    _, data = classifier
    df = array_frame(spark, np.zeros((10, 63), np.float32), partitions=1)
    udf = build_keras_udf(data, task="classification", input_cols=["pixels"])
    with pytest.raises(Exception, match=r"(?s)column 'pixels'.*must hold 64 values.*holds 63 values.*inputShape"):
        run(df, udf, "features")


def test_null_rows_rejected(spark, classifier) -> None:
    _, data = classifier
    df = spark.createDataFrame([(0, [0.0] * 64), (1, None)], "id long, features array<float>")
    with pytest.raises(Exception, match=r"column 'features' has 1 null rows.*na.drop"):
        run(df, build_keras_udf(data, task="classification"), "features")


def test_cache_is_thread_safe_in_process(tmp_path) -> None:
    log = tmp_path / "loads.txt"
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((64,)), LoadRecorder(str(log)), keras.layers.Dense(10, activation="softmax")])
    udf = build_keras_udf(save_bytes(model), task="classification", outputs=("prediction",), model_cache_size=1)
    x = np.random.default_rng(8).random((5, 64), dtype=np.float32)
    batch = pa.ListArray.from_arrays(pa.array(np.arange(0, 6 * 64, 64, dtype=np.int32)), pa.array(x.ravel()))
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.extend(udf.func(iter([batch])))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.read_text().split() == [str(os.getpid())]  # four threads, one load
    expected = direct(model, x).argmax(axis=1)
    assert len(results) == 4
    for struct in results:
        np.testing.assert_array_equal(struct.field("prediction").to_numpy(), expected)


def test_describe_model_removes_its_temp_file(classifier, monkeypatch, tmp_path) -> None:
    _, data = classifier
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert describe_model(data) == {"inputShape": [64], "outputShape": [10], "numInputs": 64, "numOutputs": 10}
    assert os.listdir(tmp_path) == []


def test_lambda_layer_refused(monkeypatch, tmp_path) -> None:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda t: t * 2.0), keras.layers.Dense(2)])
    data = save_bytes(model)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(ValueError, match=r"cannot be loaded safely.*Lambda.*never loads models with safe_mode=False"):
        describe_model(data)
    assert os.listdir(tmp_path) == []


def test_not_a_keras_archive() -> None:
    with pytest.raises(ValueError, match=r"not a loadable Keras v3 .keras archive.*model.save"):
        describe_model(b"definitely not a zip file")


@pytest.mark.parametrize("kwargs, message", [
    ({"task": "ranking"}, r"task must be one of \('classification', 'regression'\). Received: task='ranking'"),
    ({"task": "regression"}, r"outputs contains 'probability'.*Received: task='regression'"),
    ({"task": "classification", "outputs": ("prediction", "logits")}, r"outputs must be .*Received: outputs="),
    ({"task": "classification", "batch_size": 0}, r"batch_size must be a positive integer. Received: batch_size=0"),
    ({"task": "classification", "input_shape": [8, -8]}, r"input_shape must be .*Received: input_shape=\[8, -8\]"),
    ({"task": "classification", "num_input_cols": 2, "input_cols": ["a"]}, r"input_cols names 1 columns"),
])
def test_bad_arguments_rejected_on_the_driver(classifier, kwargs, message) -> None:
    _, data = classifier
    with pytest.raises(ValueError, match=message):
        build_keras_udf(data, **kwargs)


def test_model_bytes_type_checked() -> None:
    with pytest.raises(TypeError, match=r"model_bytes must be the non-empty bytes of a .keras file. Received: str"):
        build_keras_udf("model.keras", task="classification")  # type: ignore[arg-type]
