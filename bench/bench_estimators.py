"""An estimator for bench_estimator.py that does no work of its own, so that timing its fit from
the JVM measures only what dlbridge adds (params, bridge calls, the state's encoding and return)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from dlbridge import register_estimator


@register_estimator("bench_constant", returns="double")
def bench_constant(df, inputCols: list) -> dict:
    """Returns a fixed one-value state without reading ``df``."""
    return {"value": np.zeros(1)}


@bench_constant.predictor
def bench_constant_predictor(state: dict):
    value = float(state["value"][0])
    return lambda *cols: pd.Series(np.full(len(cols[0]), value))
