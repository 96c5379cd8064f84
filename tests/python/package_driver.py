"""A PySpark driver program for test_package.py, run as its own process by a given interpreter.

``python package_driver.py fit <master> <conf JSON>`` starts Spark with
``dlbridge.spark_session(master, conf=...)``, trains a small KerasEstimator,
transforms with the model, asks the executors which Python and which dlbridge
they run, and prints one JSON line: ``{"jar", "version", "history",
"accuracy", "rows", "executors"}``, or ``{"error": ...}`` when the fit fails.

``python package_driver.py versions`` uses the dlbridge package it imports
with its own jar on ``local[1]``, first in process (a PySpark stage), then
through a companion backend that the JVM starts, and prints the two errors as
``{"pyspark": ..., "companion": ...}``.
"""
from __future__ import annotations

import json
import sys
from typing import Any, Dict, Iterator

import numpy as np
import pandas as pd

import dlbridge


def _blobs(n: int = 400, seed: int = 1) -> pd.DataFrame:
    """Two Gaussian blobs in 4 dimensions, labels 0 and 1."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    features = rng.normal(0.0, 1.0, (n, 4)) + 3.0 * label[:, None]
    return pd.DataFrame({"features": list(features), "label": label.astype(float)})


def _where(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """On an executor: its Python interpreter and the dlbridge it imports."""
    import importlib.util
    import sys

    import dlbridge as executor_dlbridge

    for _ in batches:
        pass
    yield pd.DataFrame({"python": [sys.executable], "dlbridge": [executor_dlbridge.__file__],
                        "tensorflow": [importlib.util.find_spec("tensorflow").origin]})


def fit(master: str, conf: Dict[str, str]) -> Dict[str, Any]:
    """Fits and transforms on ``master``; see the module docstring."""
    from dlbridge.ml import KerasEstimator

    spark = dlbridge.spark_session(master, "dlbridge-package-test", conf)
    try:
        data = spark.createDataFrame(_blobs()).repartition(2)
        estimator = KerasEstimator(hiddenLayers=[8], epochs=3, batchSize=32, numWorkers=2, mode="hogwild",
                                   optimizerOptions={"learning_rate": 0.02}, seed=1)
        try:
            model = estimator.fit(data)
        except Exception as e:  # noqa: BLE001 - the error is what the negative case checks
            return {"error": str(e)}
        scored = model.transform(data).select("prediction", "label").toPandas()
        executors = spark.range(0, 2, 1, 2).mapInPandas(_where, "python string, dlbridge string, tensorflow string")
        return {"jar": dlbridge.jar_path(), "version": dlbridge.__version__,
                "history": [epoch["loss"] for epoch in model.summary["history"]],
                "accuracy": float((scored["prediction"] == scored["label"]).mean()), "rows": len(scored),
                "executors": [row.asDict() for row in executors.collect()]}
    finally:
        spark.stop()


def versions() -> Dict[str, str]:
    """The errors of the first use of the jar in process and through a companion; see the module docstring."""
    from py4j.protocol import Py4JJavaError

    from dlbridge.backend import ensure_backend

    spark = dlbridge.spark_session("local[1]", "dlbridge-version-test", {"spark.ui.enabled": "false"})
    found = {}
    try:
        try:
            ensure_backend(spark)  # what every dlbridge.ml stage calls before its first JVM call
            found["pyspark"] = "no error"
        except RuntimeError as e:
            found["pyspark"] = str(e)
        try:  # what a JVM stage does when no PySpark backend is registered: start a companion
            spark._jvm.dlbridge.python.PythonBridge.backend(spark._jsparkSession)
            found["companion"] = "no error"
        except Py4JJavaError as e:
            found["companion"] = str(e.java_exception.getMessage())
    finally:
        spark.stop()
    return found


if __name__ == "__main__":
    result = fit(sys.argv[2], json.loads(sys.argv[3])) if sys.argv[1] == "fit" else versions()
    print(json.dumps(result))
