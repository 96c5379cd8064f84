"""A user's own Python estimator, registered by name: the nearest-centroid classifier of the README.

Put this module on the driver's and executors' PYTHONPATH (or ship it with
``--py-files``) and list it in ``spark.dlbridge.python.modules`` for a JVM
application; a PySpark driver just imports it. Then Scala, Java and PySpark use
it as ``dlbridge.ml.PythonEstimator`` with ``function="centroid_classifier"``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame

from dlbridge import register_estimator


@register_estimator("centroid_classifier", returns="double")
def centroid_classifier(df: DataFrame, inputCols: list, labelCol: str, shrink: float = 0.0) -> dict:
    """fit: runs in the driver's Python backend on the real training DataFrame.
    Stage column params (inputCols, labelCol, weightCol) are passed by name when declared.
    Returns the model state: str keys -> numpy arrays, bytes, or JSON values."""
    pdf = df.select(*inputCols, labelCol).toPandas()
    classes = np.sort(pdf[labelCol].unique())
    x = pdf[inputCols].to_numpy()
    centroids = np.stack([x[pdf[labelCol].to_numpy() == k].mean(0) for k in classes]) * (1 - shrink)
    return {"centroids": centroids, "classes": classes}


@centroid_classifier.predictor
def centroid_predictor(state: dict, shrink: float = 0.0):
    """Runs once per Python worker with the state; returns the batch function."""
    c, k = state["centroids"], state["classes"]

    def run(*cols: pd.Series) -> pd.Series:
        x = np.column_stack(cols)
        return pd.Series(k[((x[:, None, :] - c) ** 2).sum(-1).argmin(1)].astype(float))

    return run
