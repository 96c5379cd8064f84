"""Non-trainable model state (BatchNormalization statistics and the like) across workers.

Workers update their model's non-trainable floating-point variables as they
train (a BatchNormalization layer's moving mean and variance). The parameter
server only serves trainable weights, so each worker reports its state with its
epoch statistics and the driver sets the sample-weighted mean of the reports
into the returned model. Integer state (random seed generators) is left alone.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def state_variables(model: Any) -> list[Any]:
    """The model's non-trainable floating-point variables, in a fixed order."""
    return [v for v in model.non_trainable_variables if "float" in str(v.dtype)]


def flat_state(model: Any) -> np.ndarray:
    """All state variables as one flat float32 array (empty if there are none)."""
    parts = [np.asarray(v.numpy(), dtype=np.float32).ravel() for v in state_variables(model)]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def state_size(model: Any) -> int:
    """Number of float values in :func:`flat_state`."""
    return int(sum(np.prod(v.shape) for v in state_variables(model)))


def merge_reports(reports: Sequence[tuple[bytes, int]], size: int) -> np.ndarray | None:
    """Sample-weighted mean of the workers' ``(state bytes, samples)`` reports; ``None`` if none is usable.

    Reports of a different size (a worker whose model differs) and workers that saw
    no rows are ignored.
    """
    usable = [(np.frombuffer(blob, dtype="<f4"), n) for blob, n in reports if n > 0 and len(blob) == 4 * size]
    if not size or not usable:
        return None
    total = sum(n for _, n in usable)
    return sum(values.astype(np.float64) * (n / total) for values, n in usable).astype(np.float32)


def assign_state(model: Any, flat: np.ndarray) -> None:
    """Set the state variables from a flat array made by :func:`flat_state` or :func:`merge_reports`."""
    offset = 0
    for v in state_variables(model):
        n = int(np.prod(v.shape))
        v.assign(flat[offset:offset + n].reshape(v.shape).astype(str(v.dtype)))
        offset += n
