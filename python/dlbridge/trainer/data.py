"""Input data: Spark columns to one float32 feature array and a label, then Arrow to numpy.

On the driver, :func:`prepare` turns any accepted feature form (ML ``Vector``,
``array<numeric>``, several numeric columns) into one ``array<float>`` column,
validates it, splits off validation rows and caches the repartitioned input.
On the workers, :func:`minibatches` streams Arrow record batches as numpy
mini-batches without any per-row Python work.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator, Sequence

import numpy as np

from dlbridge.trainer import input_cache
from dlbridge.trainer.objectives import LabelInfo
from dlbridge.trainer.options import TrainingOptions

X, Y = "__dlbridge_x", "__dlbridge_y"


@dataclasses.dataclass
class PreparedData:
    """Cached training (and validation) input with columns ``X`` and ``Y``."""

    train: object
    validation: object | None
    input_dim: int
    label: LabelInfo

    def unpersist(self) -> None:
        """Release the cached input."""
        for frame in (self.train, self.validation):
            if frame is not None:
                frame.unpersist()


def prepare(df, features_col: str | Sequence[str], label_col: str, options: TrainingOptions) -> PreparedData:
    """Select, convert, split and cache the training input, checking it as the cache fills.

    The check runs as one aggregation over each cached frame, so the input is read
    once and fully materialised before training starts: epoch 1 then trains at the
    same pace as the others, and its samples/s are those of training alone.

    Raises
    ------
    ValueError
        For a missing column, nulls, arrays of varying length, or no rows.
    TypeError
        For a column of a type that cannot be used.
    """
    features = _feature_column(df, features_col)
    label, label_dim = _label_column(df, label_col)
    data = df.select(features.alias(X), label.alias(Y))
    train, validation = data, None
    if options.validationFraction > 0:
        train, validation = data.randomSplit([1 - options.validationFraction, options.validationFraction],
                                             seed=options.seed)
    frames = [input_cache.persist(f.repartition(options.numWorkers)) for f in (train, validation) if f is not None]
    try:
        info, input_dim = _inspect(frames, df, label_col, label_dim, features_col)
    except BaseException:
        for frame in frames:
            frame.unpersist()
        raise
    return PreparedData(train=frames[0], validation=frames[1] if validation is not None else None,
                        input_dim=input_dim, label=info)


def _feature_column(df, features_col: str | Sequence[str]):
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if not isinstance(features_col, str):
        names = list(features_col)
        if not names:
            raise ValueError("features_col is an empty list; give a column name or numeric column names.")
        for name in names:
            if not isinstance(_dtype(df, name, "features_col"), T.NumericType):
                raise TypeError(f"Feature column {name!r} must be numeric when features_col is a list. "
                                f"Received type {_dtype(df, name, 'features_col').simpleString()}.")
        return F.array(*[F.col(n).cast("float") for n in names])
    return _float_array(df, features_col, "features_col", allow_scalar=True)


def _label_column(df, label_col: str):
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if isinstance(_dtype(df, label_col, "label_col"), T.NumericType):
        return F.col(label_col).cast("double"), 0
    return _float_array(df, label_col, "label_col", allow_scalar=False), -1


def _float_array(df, name: str, role: str, allow_scalar: bool):
    from pyspark.ml.functions import vector_to_array
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    dtype = _dtype(df, name, role)
    if isinstance(dtype, VectorUDT):
        return vector_to_array(F.col(name), "float32")
    if isinstance(dtype, T.ArrayType) and isinstance(dtype.elementType, T.NumericType):
        return F.col(name).cast("array<float>")
    if allow_scalar and isinstance(dtype, T.NumericType):
        return F.array(F.col(name).cast("float"))
    raise TypeError(f"Column {name!r} ({role}) must be an ML Vector, an array of numbers or a number. "
                    f"Received type {dtype.simpleString()}.")


def _dtype(df, name: str, role: str):
    if name not in df.columns:
        raise ValueError(f"{role}={name!r} is not a column of the DataFrame; its columns are {df.columns}.")
    return df.schema[name].dataType


def _inspect(frames: list, df, label_col: str, label_dim: int, features_col) -> tuple[LabelInfo, int]:
    """One aggregation job per cached frame: row count, nulls, array sizes and the label range."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    aggs = [F.count(F.lit(1)).alias("n"), F.min(F.size(X)).alias("dmin"), F.max(F.size(X)).alias("dmax"),
            F.sum(F.when(F.col(X).isNull() | F.col(Y).isNull(), 1).otherwise(0)).alias("nulls")]
    aggs += [F.min(F.size(Y)).alias("lmin"), F.max(F.size(Y)).alias("lmax")] if label_dim else \
            [F.min(Y).alias("lmin"), F.max(Y).alias("lmax")]
    row = _combine([frame.agg(*aggs).first().asDict() for frame in frames])
    if not row["n"]:
        raise ValueError("The training DataFrame has no rows.")
    if row["nulls"]:
        raise ValueError(f"{row['nulls']} row(s) have a null feature or label (features_col={features_col!r}, "
                         f"label_col={label_col!r}); drop or impute them first.")
    if row["dmin"] != row["dmax"]:
        raise ValueError(f"Feature arrays of features_col={features_col!r} vary in length "
                         f"({row['dmin']}..{row['dmax']}); every row needs the same number of features.")
    if label_dim and row["lmin"] != row["lmax"]:
        raise ValueError(f"Label arrays of label_col={label_col!r} vary in length ({row['lmin']}..{row['lmax']}).")
    meta = df.schema[label_col].metadata.get("ml_attr", {})
    nominal = meta.get("type") == "nominal"
    num_classes = len(meta.get("vals", [])) or meta.get("num_vals") if nominal else None
    if not label_dim and not num_classes and row["lmin"] >= 0 and float(row["lmax"]).is_integer():
        num_classes = int(row["lmax"]) + 1
    integral = isinstance(df.schema[label_col].dataType, T.IntegralType)
    info = LabelInfo(column=label_col, dim=int(row["lmax"]) if label_dim else 0, integral=integral,
                     num_classes=num_classes, nominal=nominal)
    return info, int(row["dmax"])


def _combine(rows: list[dict]) -> dict:
    """Merge the per-frame aggregates (an empty frame has ``None`` minima and maxima)."""
    def pick(key: str, choose):
        values = [r[key] for r in rows if r[key] is not None]
        return choose(values) if values else None

    return {"n": sum(r["n"] for r in rows), "nulls": sum(r["nulls"] or 0 for r in rows),
            "dmin": pick("dmin", min), "dmax": pick("dmax", max),
            "lmin": pick("lmin", min), "lmax": pick("lmax", max)}


def to_numpy(batch, input_dim: int, label_dim: int, sparse: bool) -> tuple[np.ndarray, np.ndarray]:
    """Features ``(n, input_dim)`` float32 and labels of one Arrow record batch, vectorised.

    Labels are int32 ``(n,)`` class indices when ``sparse``, float32 ``(n, 1)``
    for other scalar labels, float32 ``(n, label_dim)`` for arrays.
    """
    n = batch.num_rows
    x = _flat_floats(batch.column(0)).reshape(n, input_dim)
    column = batch.column(1)
    if label_dim:
        y = _flat_floats(column).reshape(n, label_dim)
    elif sparse:
        y = column.to_numpy(zero_copy_only=False).astype(np.int32)
    else:
        y = column.to_numpy(zero_copy_only=False).astype(np.float32).reshape(n, 1)
    return x, y


def _flat_floats(column) -> np.ndarray:
    return column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)


def minibatches(batches: Iterator, batch_size: int, input_dim: int, label_dim: int, sparse: bool,
                rng: np.random.Generator | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream mini-batches; with ``rng``, rows are shuffled within each Arrow batch window.

    Memory stays bounded by one Arrow batch (``spark.sql.execution.arrow.maxRecordsPerBatch``)
    plus one mini-batch carried over; the last mini-batch of a partition may be short.
    """
    carry_x = carry_y = None
    for batch in batches:
        if batch.num_rows == 0:
            continue
        x, y = to_numpy(batch, input_dim, label_dim, sparse)
        if carry_x is not None:
            x, y = np.concatenate([carry_x, x]), np.concatenate([carry_y, y])
        if rng is not None:
            order = rng.permutation(len(x))
            x, y = x[order], y[order]
        full = len(x) - len(x) % batch_size
        for start in range(0, full, batch_size):
            yield x[start:start + batch_size], y[start:start + batch_size]
        carry_x, carry_y = x[full:], y[full:]
    if carry_x is not None and len(carry_x):
        yield carry_x, carry_y
