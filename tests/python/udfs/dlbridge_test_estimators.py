"""Registered estimators and transformers that the test suites use to observe the registry's contract
(on PYTHONPATH everywhere: driver, companion and Python workers)."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from dlbridge import register_estimator, register_transformer


def _record(log_path: str) -> None:
    if log_path:
        with open(log_path, "a") as f:
            f.write(f"{os.getpid()}\n")


@register_transformer("counted_heavy_state", returns="double")
def counted_heavy_state(log_path: str = "", offset: float = 0.0):
    """Stands for a transformer that loads something heavy: each factory call appends the pid to ``log_path``."""
    _record(log_path)

    def run(x: pd.Series) -> pd.Series:
        return x.astype("float64") + offset

    return run


@register_estimator("column_means", returns="double")
def column_means(df, inputCols: list, payload_floats: int = 0, log_path: str = "", weightCol: str = "") -> dict:
    """Learns the mean of each input column (weighted by ``weightCol`` when set); ``payload_floats`` adds a
    large array to the state (to observe how it reaches the executors)."""
    pdf = df.toPandas()
    weights = pdf[weightCol].to_numpy(dtype=float) if weightCol else np.ones(len(pdf))
    means = np.array([np.average(pdf[c].to_numpy(dtype=float), weights=weights) for c in inputCols])
    return {"means": means, "payload": np.zeros(payload_floats, dtype=np.float32),
            "info": {"rows": len(pdf), "columns": inputCols}, "note.txt": b"plain bytes"}


@column_means.predictor
def column_means_predictor(state: dict, payload_floats: int = 0, log_path: str = ""):
    """Outputs the sum over columns of (value - mean); records each build in ``log_path``."""
    _record(log_path)
    means = state["means"]
    assert state["note.txt"] == b"plain bytes" and state["info"]["rows"] > 0

    def run(*cols: pd.Series) -> pd.Series:
        return pd.Series(sum(c.to_numpy(dtype=float) - m for c, m in zip(cols, means)))

    return run


@register_estimator("bad_state", returns="double")
def bad_state(df, kind: str = "list") -> object:
    """Returns what the state format refuses: a list, an object array, a NaN in JSON, or raises."""
    if kind == "raise":
        raise ZeroDivisionError("the user's fit failed")
    return {"list": [1, 2], "objects": {"a": np.array([{"x": 1}], dtype=object)},
            "nan": {"meta": {"loss": float("nan")}}}[kind]


@bad_state.predictor
def bad_state_predictor(state: dict, kind: str = "list"):
    return lambda x: x


@register_estimator("no_predictor", returns="double")
def no_predictor(df) -> dict:
    """An estimator whose module forgot the predictor."""
    return {}
