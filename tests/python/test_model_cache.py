"""The per-worker inference model cache (a bounded LRU) and TensorFlow's thread policy, on real Spark.

``local[1]`` with worker reuse runs every task in one Python worker, so loads can
be counted per process: each test model holds a ``LoadRecorder`` layer that
appends the loading process's pid to a file whenever the model is deserialized.
"""
from __future__ import annotations

import collections
import json
import os
from typing import Any, Callable, Iterator

import keras
import pyarrow as pa
import pytest
from conftest import build_spark
from dlbridge_test_layers import LoadRecorder
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.functions import arrow_udf

from dlbridge import worker_cache
from dlbridge.inference import build_keras_udf

CACHE_SIZE_KEY = "spark.dlbridge.inference.modelCacheSize"


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    session = build_spark("local[1]")
    try:
        yield session
    finally:
        session.stop()


def in_worker(spark: SparkSession, describe: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """What ``describe()`` (a local function, pickled by value) returns when run in the Python worker."""

    def worker_probe(ids: Iterator[pa.Array]) -> Iterator[pa.Array]:
        info = json.dumps(describe())
        for batch in ids:
            yield pa.array([info] * len(batch))

    row = spark.range(0, 1, 1, 1).select(arrow_udf(worker_probe, "string")("id").alias("info")).first()
    return json.loads(row.info)


def probe(spark: SparkSession) -> dict[str, int]:
    """The worker's pid and TensorFlow thread pools; imports the test layers there."""

    def describe() -> dict[str, int]:
        import dlbridge_test_layers  # noqa: F401 (registers LoadRecorder for deserialization)
        import tensorflow as tf

        threads = tf.config.threading
        return {"pid": os.getpid(), "intra": threads.get_intra_op_parallelism_threads(),
                "inter": threads.get_inter_op_parallelism_threads()}

    return in_worker(spark, describe)


@pytest.fixture
def worker(spark: SparkSession) -> int:
    """The pid of the one Python worker, with the test layers imported."""
    return probe(spark)["pid"]


def recorded_models(directory: str, count: int) -> tuple[list[bytes], list[str]]:
    """``count`` distinct small models, each recording its loads in its own file."""
    blobs, logs = [], []
    for i in range(count):
        logs.append(os.path.join(directory, f"loads-{i}.txt"))
        keras.utils.set_random_seed(i)
        model = keras.Sequential([keras.Input((3,)), LoadRecorder(logs[-1]), keras.layers.Dense(1)])
        path = os.path.join(directory, f"m{i}.keras")
        model.save(path)
        with open(path, "rb") as f:
            blobs.append(f.read())
    return blobs, logs


def loads(logs: list[str]) -> list[collections.Counter]:
    """Per model: how many times each pid loaded it."""
    counts = []
    for log in logs:
        with open(log) if os.path.exists(log) else open(os.devnull) as f:
            counts.append(collections.Counter(int(line) for line in f if line.strip()))
    return counts


def frame(spark: SparkSession) -> DataFrame:
    return spark.range(0, 8, 1, 1).selectExpr("array(cast(id as float), 1.0f, 2.0f) as features")


def udfs_built_under(spark: SparkSession, cache_size: str, blobs: list[bytes]) -> list[Any]:
    """UDFs of ``blobs`` built while the session's model cache size is ``cache_size`` (unset after)."""
    spark.conf.set(CACHE_SIZE_KEY, cache_size)
    try:
        return [build_keras_udf(b, task="regression", outputs=("prediction",)) for b in blobs]
    finally:
        spark.conf.unset(CACHE_SIZE_KEY)


def rotate(spark: SparkSession, udfs: list[Any], rounds: int) -> None:
    df = frame(spark)
    for _ in range(rounds):
        for udf in udfs:
            assert len(df.select(udf("features").alias("out")).collect()) == 8  # count() would prune the UDF


def test_cache_smaller_than_the_rotation_reloads(spark, worker, tmp_path) -> None:
    blobs, logs = recorded_models(str(tmp_path), 3)
    rotate(spark, udfs_built_under(spark, "2", blobs), rounds=2)  # A B C A B C through an LRU of 2: every use misses
    assert loads(logs) == [collections.Counter({worker: 2})] * 3


def test_cache_as_large_as_the_rotation_loads_each_model_once(spark, worker, tmp_path) -> None:
    blobs, logs = recorded_models(str(tmp_path), 3)
    udfs = [build_keras_udf(b, task="regression", outputs=("prediction",), model_cache_size=4) for b in blobs]
    rotate(spark, udfs, rounds=3)
    assert loads(logs) == [collections.Counter({worker: 1})] * 3


def test_cache_size_is_read_when_the_udf_is_built(spark, worker, tmp_path) -> None:
    blobs, logs = recorded_models(str(tmp_path), 2)
    udfs = udfs_built_under(spark, "1", blobs)
    rotate(spark, udfs, rounds=2)  # the default of 4 now in force changes nothing: 1 was captured
    assert loads(logs) == [collections.Counter({worker: 2})] * 2


def test_invalid_cache_size_names_the_key(spark, tmp_path) -> None:
    blobs, _ = recorded_models(str(tmp_path), 1)
    spark.conf.set(CACHE_SIZE_KEY, "zero")
    try:
        with pytest.raises(ValueError, match=r"spark\.dlbridge\.inference\.modelCacheSize must be a positive "
                                             r"integer.*Received: 'zero'"):
            build_keras_udf(blobs[0], task="regression", outputs=("prediction",))
    finally:
        spark.conf.unset(CACHE_SIZE_KEY)
    with pytest.raises(ValueError, match="model_cache_size must be a positive integer"):
        build_keras_udf(blobs[0], task="regression", outputs=("prediction",), model_cache_size=0)


def test_tensorflow_threads_follow_the_task_cpus(spark, worker, tmp_path) -> None:
    blobs, _ = recorded_models(str(tmp_path), 1)
    rotate(spark, [build_keras_udf(blobs[0], task="regression", outputs=("prediction",))], rounds=1)
    info = probe(spark)
    assert info == {"pid": worker, "intra": 1, "inter": 1}  # spark.task.cpus=1; inter-op always 1


def collector_state(spark: SparkSession) -> dict[str, int]:
    """In the worker: its pid, how many objects gc.freeze moved out of the collector's reach, and how
    many LoadRecorder layers are still alive (nothing is collected by the probe itself)."""

    def describe() -> dict[str, int]:
        import gc

        from dlbridge_test_layers import LoadRecorder

        return {"pid": os.getpid(), "frozen": gc.get_freeze_count(), "alive": len(LoadRecorder.alive)}

    return in_worker(spark, describe)


def test_worker_freezes_what_it_holds_after_a_load_and_the_driver_does_not(spark, worker, tmp_path) -> None:
    import gc

    blobs, _ = recorded_models(str(tmp_path), 1)
    rotate(spark, [build_keras_udf(blobs[0], task="regression", outputs=("prediction",), model_cache_size=4)], 1)
    state = collector_state(spark)
    # TensorFlow, Keras and the model: the daemon's gc.collect() after each task no longer scans them
    assert state["pid"] == worker and state["frozen"] > 100_000, state
    worker_cache.get(("driver build", str(tmp_path)), dict, 4, "a build on the driver")  # outside any task
    assert gc.get_freeze_count() == 0  # the driver (this process) never freezes


def test_evicted_models_are_reclaimed_although_the_worker_freezes(spark, worker, tmp_path) -> None:
    blobs, logs = recorded_models(str(tmp_path), 2)
    udfs = [build_keras_udf(b, task="regression", outputs=("prediction",), model_cache_size=1) for b in blobs]
    rotate(spark, udfs, rounds=3)  # A B A B A B through an LRU of 1: six loads, five evictions
    assert loads(logs) == [collections.Counter({worker: 3})] * 2
    state = collector_state(spark)
    assert state["pid"] == worker and state["alive"] == 1, state  # only the cached model's layer is left
