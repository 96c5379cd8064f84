"""Structured Streaming: KerasModel and PythonTransformer on file-source streams, into a file sink.

Each test writes Parquet files, reads them back as a stream, runs the stage, writes the result
with a Parquet sink and compares it with the same rows scored outside Spark. The trigger is
``availableNow`` or a processing-time trigger that runs (at least) two micro-batches.
"""
from __future__ import annotations

import os
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pytest
from pyspark.ml.functions import array_to_vector
from pyspark.sql import DataFrame, SparkSession

import dlbridge_test_udfs  # noqa: F401 (registers plus_k in this driver)
import pyarrow as pa
from conftest import build_spark
from dlbridge_test_layers import LoadRecorder
from pyspark.sql.functions import arrow_udf

from dlbridge.ml import KerasModel, PythonTransformer

FEATURES = 6
ROWS_PER_FILE = 300


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    """``local[1]`` with worker reuse: every Python task of a micro-batch runs in the same worker,
    so model loads can be counted per worker."""
    session = build_spark("local[1]")
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory) -> tuple[str, Any]:
    """A small classifier with fixed weights, saved as .keras; also returned for reference outputs."""
    import keras

    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(8, activation="tanh"),
                              keras.layers.Dense(3, activation="softmax")])
    path = str(tmp_path_factory.mktemp("model") / "net.keras")
    model.save(path)
    return path, model


def write_inputs(spark: SparkSession, directory: str, files: int, seed: int) -> np.ndarray:
    """``files`` Parquet files of ``id``, ``x`` (double), an ``array<float>`` column from pandas
    (nullable elements) and the same values as an ML Vector; returns every row's features."""
    rng = np.random.default_rng(seed)
    everything = []
    for i in range(files):
        x = rng.normal(size=(ROWS_PER_FILE, FEATURES)).astype(np.float32)
        pdf = pd.DataFrame({"id": np.arange(ROWS_PER_FILE) + i * ROWS_PER_FILE, "x": x[:, 0].astype(float),
                            "arr": list(x)})
        frame = spark.createDataFrame(pdf, "id long, x double, arr array<float>")
        frame = frame.withColumn("vec", array_to_vector("arr"))
        frame.coalesce(1).write.mode("append").parquet(directory)
        everything.append(x)
    return np.concatenate(everything)


def run_stream(spark: SparkSession, stream: DataFrame, out: str, trigger: dict[str, Any]) -> Any:
    """Write ``stream`` to a Parquet sink under ``out`` with ``trigger``; wait for it; return the query."""
    query = (stream.writeStream.format("parquet").option("path", os.path.join(out, "data"))
             .option("checkpointLocation", os.path.join(out, "checkpoint")).trigger(**trigger).start())
    if "availableNow" in trigger:
        query.awaitTermination(300)
    else:
        deadline_batches = 2
        while query.isActive and sum(p["numInputRows"] > 0 for p in query.recentProgress) < deadline_batches:
            query.awaitTermination(1)
            if query.exception() is not None:
                break
        query.stop()
    if query.exception() is not None:
        raise AssertionError(f"streaming query failed: {query.exception()}")
    return query


def input_stream(spark: SparkSession, directory: str) -> DataFrame:
    """A file-source stream over ``directory``, one file per micro-batch."""
    schema = spark.read.parquet(directory).schema
    return spark.readStream.schema(schema).option("maxFilesPerTrigger", 1).parquet(directory)


def test_model_loads_once_per_worker_across_micro_batches(spark, tmp_path) -> None:
    """First in the module: later tests run plans with two Python UDF stages in one task, which
    leaves a second idle Python worker that never imported the test layer."""
    import keras

    log = tmp_path / "loads.txt"
    keras.utils.set_random_seed(4)
    net = keras.Sequential([keras.Input((FEATURES,)), LoadRecorder(str(log)),
                            keras.layers.Dense(3, activation="softmax")])
    net.save(str(tmp_path / "net.keras"))
    model = KerasModel.fromFile(str(tmp_path / "net.keras")).setFeaturesCol("vec")  # the driver loads it once

    def import_layers(ids: Iterator[pa.Array]) -> Iterator[pa.Array]:  # the worker must know LoadRecorder
        import dlbridge_test_layers  # noqa: F401

        for batch in ids:
            yield pa.array([os.getpid()] * len(batch), pa.int64())

    worker = spark.range(0, 1, 1, 1).select(arrow_udf(import_layers, "long")("id")).first()[0]
    write_inputs(spark, str(tmp_path / "in"), files=3, seed=5)
    query = run_stream(spark, model.transform(input_stream(spark, str(tmp_path / "in"))).select("id", "prediction"),
                       str(tmp_path / "out"), {"availableNow": True})
    assert sum(p["numInputRows"] > 0 for p in query.recentProgress) == 3
    assert spark.read.parquet(str(tmp_path / "out" / "data")).count() == 3 * ROWS_PER_FILE
    loads = [int(line) for line in log.read_text().split()]
    executor_loads = [pid for pid in loads if pid != os.getpid()]
    assert executor_loads == [worker], f"loads by pid over three micro-batches: {loads} (driver {os.getpid()})"


@pytest.mark.parametrize("features_col,trigger", [
    ("vec", {"availableNow": True}),
    ("arr", {"processingTime": "1 second"}),
])
def test_keras_model_scores_a_stream(spark, tmp_path, keras_file, features_col, trigger) -> None:
    path, reference = keras_file
    x = write_inputs(spark, str(tmp_path / "in"), files=2, seed=len(features_col))
    model = KerasModel.fromFile(path).setFeaturesCol(features_col).setRawOutputCol("raw")
    scored = model.transform(input_stream(spark, str(tmp_path / "in")))
    query = run_stream(spark, scored.select("id", "prediction", "probability", "raw"), str(tmp_path / "out"),
                       trigger)
    batches = [p for p in query.recentProgress if p["numInputRows"] > 0]
    assert len(batches) >= 2, "one file per trigger: two micro-batches with data"
    result = spark.read.parquet(str(tmp_path / "out" / "data")).orderBy("id").toPandas()
    expected = reference.predict(x, verbose=0)
    assert list(result["id"]) == list(range(len(x)))
    np.testing.assert_allclose(np.stack(result["raw"].to_numpy()), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.stack([v.toArray() for v in result["probability"]]), expected,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(result["prediction"].to_numpy(), expected.argmax(axis=1).astype(float))


def test_python_transformer_on_a_stream_with_a_vector_column(spark, tmp_path) -> None:
    write_inputs(spark, str(tmp_path / "in"), files=2, seed=7)
    stage = PythonTransformer(function="plus_k", functionParams={"k": 0.5}, inputCol="x", outputCol="y")
    transformed = stage.transform(input_stream(spark, str(tmp_path / "in")))  # keeps the Vector column
    run_stream(spark, transformed, str(tmp_path / "out"), {"processingTime": "1 second"})
    result = spark.read.parquet(str(tmp_path / "out" / "data")).toPandas()
    assert len(result) == 2 * ROWS_PER_FILE
    np.testing.assert_allclose(result["y"], result["x"] + 0.5, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.stack([v.toArray() for v in result["vec"]])[:, 0], result["x"], rtol=1e-6)


def test_batch_parquet_with_a_vector_column(spark, tmp_path, keras_file) -> None:
    """The same plan shape in batch: a Parquet scan whose Vector column passes through the UDF."""
    path, reference = keras_file
    x = write_inputs(spark, str(tmp_path / "in"), files=1, seed=11)
    frame = spark.read.parquet(str(tmp_path / "in"))
    scored = KerasModel.fromFile(path).setFeaturesCol("vec").transform(frame)
    plus = PythonTransformer(function="plus_k", inputCol="x", outputCol="y").transform(scored)
    result = plus.orderBy("id").toPandas()
    np.testing.assert_array_equal(result["prediction"].to_numpy(),
                                  reference.predict(x, verbose=0).argmax(axis=1).astype(float))
    np.testing.assert_allclose(result["y"], result["x"] + 1.0, rtol=0, atol=1e-12)
    assert type(plus.schema["vec"].dataType).__name__ == "VectorUDT"


def arrow_udf_reads_columnar_batches(frame) -> bool:
    """Whether the Arrow Python UDF of ``frame``'s physical plan takes its input as columnar batches
    (Spark 4.3's ``arrow.pythonUDF.columnarInput`` path) rather than as rows (Spark's row path, or
    dlbridge's ``ProjectedArrowEvalPython`` operator, which takes rows only)."""
    nodes = [frame._jdf.queryExecution().executedPlan()]
    while nodes:
        node = nodes.pop()
        if node.nodeName() == "AdaptiveSparkPlan":
            node = node.executedPlan()
        if node.nodeName() in ("ArrowEvalPython", "ProjectedArrowEvalPython"):
            return node.child().supportsColumnar()
        nodes.extend(node.children().apply(i) for i in range(node.children().size()))
    raise AssertionError("no ArrowEvalPython in the plan")


def test_batch_parquet_with_only_an_array_column(spark, tmp_path, keras_file) -> None:
    """Without a UDT column, the packed features (and the handleInvalid='error' check), a computed argument,
    take Spark's row path: Spark's columnar-input path would evaluate them row by row anyway and turn its
    output back into batches (about 30% fewer rows/s). A Python transformer reading a column as it is keeps
    the columnar path."""
    path, reference = keras_file
    x = write_inputs(spark, str(tmp_path / "in"), files=1, seed=13)
    model = KerasModel.fromFile(path).setFeaturesCol("arr")
    frame = spark.read.parquet(str(tmp_path / "in")).drop("vec")
    scored = model.transform(frame)
    assert not arrow_udf_reads_columnar_batches(scored)
    plus = PythonTransformer(function="plus_k", inputCol="x", outputCol="y").transform(frame)
    assert arrow_udf_reads_columnar_batches(plus)
    plussed = plus.orderBy("id").toPandas()
    np.testing.assert_allclose(plussed["y"], plussed["x"] + 1.0, rtol=0, atol=1e-12)
    result = scored.orderBy("id").toPandas()
    np.testing.assert_allclose(np.stack([v.toArray() for v in result["probability"]]),
                               reference.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    bad = pd.DataFrame({"id": [0], "arr": [np.full(FEATURES, np.nan, np.float32)]})
    spark.createDataFrame(bad, "id long, arr array<float>").write.parquet(str(tmp_path / "bad"))
    with pytest.raises(Exception, match="featuresCol 'arr' holds a row with a NaN or infinite value"):
        model.transform(spark.read.parquet(str(tmp_path / "bad"))).collect()
