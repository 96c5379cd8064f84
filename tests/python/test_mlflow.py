"""MLflow (the ``dlbridge[mlflow]`` extra): a fitted ``PipelineModel`` holding a ``KerasModel`` through
``mlflow.spark`` and ``mlflow.pyfunc``, and its inner Keras model through ``mlflow.keras``.

Everything runs against a local sqlite tracking store and artifact directory in a temporary
directory: no tracking server, no network (MLflow's telemetry is switched off before it is imported).
Each test also checks that MLflow left no child process or temporary file behind, and no thread but the
workers of the artifact-repository thread pools MLflow caches per run / logged model (see the README).
"""
from __future__ import annotations

import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator, List, NamedTuple

import numpy as np
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

import processes
from dlbridge.ml import KerasEstimator, KerasModel
from keras_helpers import digits_csv

PIXELS = [f"p{i}" for i in range(64)]
PIPELINE_REQUIREMENTS = ["dlbridge==0.1.0"]  # dlbridge pins pyspark, keras, tensorflow-cpu
KERAS_REQUIREMENTS = ["keras==3.15.1", "tensorflow-cpu==2.21.0"]
# mlflow.pyfunc warns about its own agent types' hints when it is first imported.
pytestmark = pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning")


class Tracking(NamedTuple):
    """The mlflow module, an experiment whose artifacts stay under ``root``, threads its import started."""

    mlflow: Any
    experiment_id: str
    root: Path
    import_threads: List[threading.Thread]


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tracking]:
    """MLflow on a sqlite store in a temporary directory, imported with telemetry off."""
    root = tmp_path_factory.mktemp("mlflow")
    threads = threading.enumerate()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_DISABLE_TELEMETRY", "true")  # read when mlflow is imported
        env.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
        env.setenv("MLFLOW_DFS_TMP", str(root / "dfs"))  # where mlflow.spark stages Spark's save
        import mlflow

        started = [t for t in threading.enumerate() if t not in threads]
        experiment_id = mlflow.create_experiment("dlbridge", artifact_location=(root / "artifacts").as_uri())
        yield Tracking(mlflow, experiment_id, root, started)


@pytest.fixture(scope="module")
def data(spark) -> tuple[DataFrame, DataFrame]:  # type: ignore[no-untyped-def]
    """The digits as 64 numeric pixel columns in [0, 1] (what a pandas caller of pyfunc has) and ``label``."""
    raw = spark.read.option("inferSchema", "true").csv(digits_csv())
    table = raw.select([(F.col(c) / 16.0).alias(p) for c, p in zip(raw.columns, PIXELS)]
                       + [F.col(raw.columns[64]).cast("double").alias("label")])
    train, test = table.randomSplit([0.8, 0.2], seed=7)
    return train.cache(), test.limit(40).cache()


@pytest.fixture(scope="module")
def fitted(data) -> PipelineModel:  # type: ignore[no-untyped-def]
    """VectorAssembler + KerasEstimator, fitted briefly (the model's quality does not matter here)."""
    train, _ = data
    pipeline = Pipeline(stages=[VectorAssembler(inputCols=PIXELS, outputCol="features"),
                                KerasEstimator(hiddenLayers=[32], epochs=1, batchSize=64, numWorkers=1, seed=1,
                                               verbose=0)])
    return pipeline.fit(train.limit(500))


@pytest.fixture()
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This process's temporary directory for one test, so what MLflow leaves there can be seen."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return temp


def children() -> set[int]:
    """Live child processes of this (the driver's) process."""
    me = os.getpid()
    return {pid for pid in processes.descendants(me) if processes.parent(pid) == me}


class Baseline(NamedTuple):
    """Threads and child processes of this process before a test's MLflow calls."""

    threads: List[threading.Thread]
    children: set[int]


def baseline() -> Baseline:
    return Baseline(threading.enumerate(), children())


def is_py4j(thread: threading.Thread) -> bool:
    """A py4j connection thread, started when the JVM calls into this driver's Python backend."""
    return getattr(getattr(thread, "_target", None), "__module__", "").startswith("py4j")


def is_artifact_pool_worker(thread: threading.Thread) -> bool:
    """A worker of the thread pool that MLflow keeps in each artifact repository it caches (one per run or
    logged model, for later uploads and downloads); idle between calls, it ends when the interpreter exits."""
    return re.fullmatch(r"Mlflow\w*ArtifactRepository_\d+", thread.name) is not None


def assert_left_nothing(tracking: Tracking, temp: Path, before: Baseline) -> None:
    """No child process appeared, no temporary file is left, and no thread but MLflow's artifact pools'."""
    assert tracking.import_threads == []
    started = [t for t in threading.enumerate() if t not in before.threads and not is_py4j(t)]
    assert [t.name for t in started if not is_artifact_pool_worker(t)] == []
    assert children() == before.children
    assert [str(p) for p in temp.rglob("*")] == []
    assert [str(p) for p in (tracking.root / "dfs").rglob("*") if p.is_file()] == []


def probabilities(model: PipelineModel, test: DataFrame) -> np.ndarray:
    rows = model.transform(test).select("probability").toPandas()["probability"]
    return np.stack([v.toArray() for v in rows])


def test_pipeline_round_trips_through_mlflow_spark_and_pyfunc(tracking, data, fitted, private_tmp, tmp_path):
    mlflow, (_, test) = tracking.mlflow, data
    before = baseline()
    with mlflow.start_run(experiment_id=tracking.experiment_id):
        info = mlflow.spark.log_model(fitted, "pipeline", pip_requirements=PIPELINE_REQUIREMENTS)
        assert mlflow.get_artifact_uri().startswith((tracking.root / "artifacts").as_uri())

    loaded = mlflow.spark.load_model(info.model_uri, dst_path=str(tmp_path))
    assert [type(s) for s in loaded.stages] == [VectorAssembler, KerasModel]
    assert [s.uid for s in loaded.stages] == [s.uid for s in fitted.stages]
    assert loaded.stages[-1].getHiddenLayers() == [32] and loaded.stages[-1].numFeatures == 64
    expected = probabilities(fitted, test)
    np.testing.assert_allclose(probabilities(loaded, test), expected, rtol=0, atol=1e-6)

    (tmp_path / "pyfunc").mkdir()
    pyfunc = mlflow.pyfunc.load_model(info.model_uri, dst_path=str(tmp_path / "pyfunc"))
    predicted = pyfunc.predict(test.select(*PIXELS).toPandas())
    np.testing.assert_array_equal(np.asarray(predicted), expected.argmax(axis=1).astype(float))
    assert_left_nothing(tracking, private_tmp, before)


def test_inner_keras_model_through_mlflow_keras(tracking, data, fitted, private_tmp, tmp_path):
    import keras
    from mlflow.models import infer_signature

    mlflow, (_, test) = tracking.mlflow, data
    before = baseline()
    net = fitted.stages[-1].kerasModel()
    assert isinstance(net, keras.Model)
    x = test.select(*PIXELS).toPandas().to_numpy(dtype="float32")
    y = np.asarray(net.predict(x, verbose=0))
    np.testing.assert_allclose(y, probabilities(fitted, test), rtol=0, atol=1e-5)  # the model the stage runs

    with mlflow.start_run(experiment_id=tracking.experiment_id):
        info = mlflow.keras.log_model(net, name="keras", signature=infer_signature(x, y),
                                      pip_requirements=KERAS_REQUIREMENTS)
    loaded = mlflow.keras.load_model(info.model_uri, dst_path=str(tmp_path))
    assert isinstance(loaded, keras.Model) and loaded.count_params() == net.count_params()
    np.testing.assert_allclose(np.asarray(loaded.predict(x, verbose=0)), y, rtol=0, atol=1e-5)
    assert_left_nothing(tracking, private_tmp, before)
