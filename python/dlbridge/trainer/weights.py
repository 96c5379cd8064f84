"""Per-row sample weights (``TrainingOptions.weightCol``, Spark's ``HasWeightCol``).

On the driver, :func:`weight_column` selects and checks the weight column and
:func:`invalid_weight` says which rows cannot be trained on (null, NaN,
+/-inf or negative weights; ``handleInvalid`` decides between an error and
skipping them). On the workers each mini-batch carries its float32 weights,
and the loss is Keras' ``sample_weight`` reduction: the weighted sum of the
per-row losses divided by the mini-batch's row count (:func:`weighted_loss`).
"""
from __future__ import annotations

from typing import Any

W = "__dlbridge_w"


def weight_column(df: Any, name: str) -> Any:
    """The weight column of ``df`` as double, for the prepared input's ``W``.

    Raises
    ------
    ValueError
        If ``name`` is not a column of ``df``.
    TypeError
        If the column is not numeric.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if name not in df.columns:
        raise ValueError(f"weightCol={name!r} is not a column of the DataFrame; its columns are {df.columns}. "
                         "Fix: set weightCol to a numeric column, or to '' for weights of 1.")
    dtype = df.schema[name].dataType
    if not isinstance(dtype, T.NumericType):
        raise TypeError(f"weightCol={name!r} must be numeric (one weight per row). Received type "
                        f"{dtype.simpleString()}. Fix: cast it to double.")
    return F.col(name).cast("double")


def invalid_weight(weighted: bool) -> Any:
    """True where the prepared weight is null, NaN, +/-inf or negative; never without weights."""
    from pyspark.sql import functions as F

    if not weighted:
        return F.lit(False)
    w = F.col(W)
    return F.coalesce(F.isnan(w) | (F.abs(w) == F.lit(float("inf"))) | (w < 0), F.lit(True))


def weighted_loss(loss: Any, y_true: Any, y_pred: Any, sample_weight: Any) -> Any:
    """``loss(y_true, y_pred)`` with per-row ``sample_weight`` (a ``(n,)`` float32 tensor), or without when ``None``.

    A Keras ``Loss`` (or a loss passed through
    :func:`dlbridge.trainer.objectives.mean_loss`) takes ``sample_weight``
    itself, reducing as Keras does.
    """
    if sample_weight is None:
        return loss(y_true, y_pred)
    return loss(y_true, y_pred, sample_weight=sample_weight)
