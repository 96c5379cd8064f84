"""Python transformers the test suites register (on PYTHONPATH of driver and executors)."""
from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd

from dlbridge import register_estimator, register_transformer


@register_transformer("plus_k", returns="double")
def plus_k(k: float = 1.0):
    """Adds ``k`` to a numeric column."""

    def run(batch: pd.Series) -> pd.Series:
        return batch.astype("float64") + k

    return run


@register_transformer("weighted_sum", returns="double")
def weighted_sum(weights: list = [1.0, 1.0], bias: float = 0.0):  # noqa: B006 (read-only default)
    """A weighted sum of several numeric columns."""
    w = np.asarray(weights, dtype="float64")

    def run(*columns: pd.Series) -> pd.Series:
        if len(columns) != len(w):
            raise ValueError(f"weighted_sum got {len(columns)} columns but {len(w)} weights")
        return pd.Series(np.column_stack([c.to_numpy("float64") for c in columns]) @ w + bias)

    return run


@register_transformer("explode_on_value", returns="double")
def explode_on_value(bad: float = -1.0):
    """Raises a ZeroDivisionError when it meets ``bad``: for error-reporting tests."""

    def run(batch: pd.Series) -> pd.Series:
        if (batch == bad).any():
            raise ZeroDivisionError(f"dlbridge test failure: met the bad value {bad}")
        return batch.astype("float64")

    return run


@register_transformer("worker_pid", returns="long")
def worker_pid():
    """The process id of the Python worker that ran the batch."""

    def run(batch: pd.Series) -> pd.Series:
        return pd.Series(np.full(len(batch), os.getpid(), dtype="int64"))

    return run


@register_estimator("sleep_then_fit", returns="double")
def sleep_then_fit(df, seconds: float = 1.0) -> dict:
    """A fit that answers after ``seconds``: a long call on a responsive backend."""
    time.sleep(float(seconds))
    return {"slept": float(seconds)}


@sleep_then_fit.predictor
def sleep_then_fit_predictor(state: dict, seconds: float = 1.0):
    """Outputs the seconds the fit slept."""

    def run(*cols: pd.Series) -> pd.Series:
        return pd.Series(np.full(len(cols[0]), state["slept"], dtype="float64"))

    return run
