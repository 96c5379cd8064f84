"""Loss functions as a user would write them, in a module importable on the executors.

The trainer tests pass them to ``TrainingOptions(loss=...)``: they reach the
executors pickled by reference, so the executors import this module (it is on
their PYTHONPATH, set in conftest.py).
"""
from __future__ import annotations

from typing import Any


def reconstruction_error(y_true: Any, y_pred: Any) -> Any:
    """Per-row mean squared error between the targets and the model's output."""
    import keras

    return keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)

