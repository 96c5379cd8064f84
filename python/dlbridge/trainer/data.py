"""Input data: Spark columns to one float32 feature array and a label, then Arrow to numpy.

On the driver, :func:`prepare` turns any accepted feature form (ML ``Vector``,
``array<numeric>``, a number, or several such columns concatenated in order)
into one ``array<float>`` column, selects the sample weights when
``weightCol`` is set, validates them, splits off validation rows and caches
the repartitioned input.
Without a label column (``label_col=None``) the targets are the features: only
the feature column is cached, and each mini-batch's targets are its inputs.
On the workers, :func:`minibatches` streams Arrow record batches as numpy
mini-batches without any per-row Python work.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Iterator, Sequence

import numpy as np

from dlbridge.trainer import input_cache
from dlbridge.trainer.objectives import LabelInfo
from dlbridge.trainer.options import TrainingOptions
from dlbridge.trainer.weights import W, invalid_weight, weight_column

X, Y = "__dlbridge_x", "__dlbridge_y"
#: The cached input's column of per-row draws in [0, 1) (a hash of the row and the seed) that splits off the
#: validation rows.
SPLIT = "__dlbridge_split"
logger = logging.getLogger("dlbridge.trainer")


@dataclasses.dataclass
class PreparedData:
    """Cached training (and validation) input with columns ``X`` and ``Y`` (only ``X`` when the targets are the
    features), then ``W`` (the sample weights) when ``options.weightCol`` is set."""

    train: object
    validation: object | None
    input_dim: int
    label: LabelInfo
    cached: list = dataclasses.field(default_factory=list)
    #: Rows of the cached validation split, invalid ones included (0 without one).
    validation_rows: int = 0
    #: The validation split's Arrow batches, when the driver evaluates it (:mod:`dlbridge.trainer.driver_validation`).
    validation_batches: list | None = None

    def partitions_only(self):
        """The training input's partitions (and locality) without its rows: the input of jobs that replay
        the workers' input files (:mod:`dlbridge.trainer.partition_cache`) or remove them.

        The rows are dropped in the JVM (by a filter no optimizer can fold away, which
        would lose the partitions), so no task streams its partition to Python only for
        the worker to discard it.
        """
        from pyspark.sql import functions as F

        frame = self.cached[0] if self.cached else self.train
        return frame.where(F.spark_partition_id() < 0).select(F.lit(None).cast("boolean").alias("_"))

    def unpersist(self) -> None:
        """Release the cached input (``train`` and ``validation`` may be filtered views of it)."""
        for frame in self.cached or [f for f in (self.train, self.validation) if f is not None]:
            frame.unpersist()


def prepare(df, features_col: str | Sequence[str], label_col: str | None, options: TrainingOptions) -> PreparedData:
    """Select, convert, split and cache the training input, checking it as the cache fills.

    ``label_col=None`` makes the targets the features (an autoencoder's):
    there is no label to read or check, and the label info describes the
    features (``dim`` = the number of features, ``column`` = ``None``).

    The check runs as one aggregation over each cached frame, so the input is read
    once and fully materialised before training starts: epoch 1 then trains at the
    same pace as the others, and its samples/s are those of training alone. Rows
    whose features or label are null or hold NaN, +/-inf or null elements fail
    the fit (``options.handleInvalid == "error"``) or are filtered out of the
    cached frames, lazily (``"skip"``).

    Raises
    ------
    ValueError
        For a missing column, invalid rows (with ``"error"``), arrays of varying
        length, or no (valid) rows.
    TypeError
        For a column of a type that cannot be used.
    """
    columns = [_feature_column(df, features_col).alias(X)]
    label_dim = None
    if label_col is not None:
        label, label_dim = _label_column(df, label_col)
        columns.append(label.alias(Y))
    if options.weightCol:
        columns.append(weight_column(df, options.weightCol).alias(W))
    cached, frames = _cache_and_split(df.select(*columns), options)
    try:
        info, input_dim, skipped, counts = _inspect(frames, df, label_col, label_dim, features_col, options)
    except BaseException:
        cached.unpersist()
        raise
    usable = [f.filter(~_invalid_row(label_dim, bool(options.weightCol))) for f in frames] if skipped else frames
    split = len(frames) == 2
    return PreparedData(train=usable[0], validation=usable[1] if split else None, input_dim=input_dim,
                        label=info, cached=[cached], validation_rows=counts[1] if split else 0)


def _cache_and_split(data, options: TrainingOptions) -> tuple[object, list]:
    """``data`` repartitioned and cached once; returns the cached frame and the training split, then the
    validation split when ``options.validationFraction`` is set.

    Each row's side is a function of its content and ``options.seed`` alone: a uniform number in [0, 1) made
    from a 64-bit hash (Spark's ``xxhash64``) of the seed and every column of the row, cached with the row.
    The two splits are filters of that one cached frame, so they are disjoint and together hold every row.
    The same rows go to validation whatever the source's partitioning or order, ``numWorkers``, or whether
    Spark recomputes a lost cached block. Identical rows (same features, label and weight) share a side.
    Spark's ``randomSplit`` would instead sort each input partition by every column (the feature arrays
    included) to make its split deterministic, and cache each split apart: with 784-float rows from
    Parquet, that sort ran a fit out of the driver's 1 GiB default heap (BENCHMARKS.md, "Validation on
    the driver").
    """
    from pyspark.sql import functions as F

    if options.validationFraction <= 0:
        cached = input_cache.persist(data.repartition(options.numWorkers))
        return cached, [cached]
    draw = F.col(SPLIT)
    cached = input_cache.persist(data.withColumn(SPLIT, _uniform_draw(data.columns, options.seed))
                                 .repartition(options.numWorkers))
    return cached, [cached.filter(draw >= options.validationFraction).drop(SPLIT),
                    cached.filter(draw < options.validationFraction).drop(SPLIT)]


def _uniform_draw(columns: Sequence[str], seed: int):
    """A number in [0, 1) per row from the top 53 bits of ``xxhash64(seed, *columns)``: as uniform as the
    hash, and the same for the same row content and seed in any partition, order or recomputation."""
    from pyspark.sql import functions as F

    hashed = F.xxhash64(F.lit(int(seed)).cast("long"), *[F.col(c) for c in columns])
    return F.shiftrightunsigned(hashed, 11).cast("double") / float(1 << 53)


def _feature_column(df, features_col: str | Sequence[str]):
    from pyspark.sql import functions as F

    if not isinstance(features_col, str):  # featuresCols: each part null when invalid, so the concatenation is too
        names = list(features_col)
        if not names:
            raise ValueError("features_col is an empty list; give a column name or a list of column names.")
        return F.concat(*[_float_array(df, n, "featuresCols", allow_scalar=True) for n in names])
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
    if isinstance(dtype, VectorUDT):  # vector_to_array fails on a null vector: keep it null instead
        return F.when(F.col(name).isNotNull(), vector_to_array(F.col(name), "float32"))
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


def _invalid(column, is_array: bool):
    """True where ``column`` is null or holds NaN, +/-inf or (in an array) a null element."""
    from pyspark.sql import functions as F

    if is_array:
        bad = F.array(*[F.lit(v).cast("float") for v in ("NaN", "Infinity", "-Infinity")])
        return F.coalesce(F.arrays_overlap(column, bad), F.lit(True))
    return column.isNull() | F.isnan(column) | (F.abs(column) == F.lit(float("inf")))


def _invalid_label(label_dim: int | None):
    """True where the label is invalid; never, when there is no label (``label_dim`` is ``None``)."""
    from pyspark.sql import functions as F

    return F.lit(False) if label_dim is None else _invalid(F.col(Y), bool(label_dim))


def _invalid_row(label_dim: int | None, weighted: bool):
    from pyspark.sql import functions as F

    return _invalid(F.col(X), True) | _invalid_label(label_dim) | invalid_weight(weighted)


def _aggregations(label_dim: int | None, weighted: bool) -> list:
    """Row count, invalid rows, and array sizes and the label range over valid rows."""
    from pyspark.sql import functions as F

    bad_x, bad_y, bad_w = _invalid(F.col(X), True), _invalid_label(label_dim), invalid_weight(weighted)
    ok = ~(bad_x | bad_y | bad_w)
    aggs = [F.count(F.lit(1)).alias("n"), F.count(F.when(bad_x, 1)).alias("bad_x"),
            F.count(F.when(bad_y, 1)).alias("bad_y"), F.count(F.when(bad_w, 1)).alias("bad_w"),
            F.count(F.when(bad_x | bad_y | bad_w, 1)).alias("bad"),
            F.min(F.when(ok, F.size(X))).alias("dmin"), F.max(F.when(ok, F.size(X))).alias("dmax")]
    if label_dim is None:
        return aggs
    if label_dim:
        return aggs + [F.min(F.when(ok, F.size(Y))).alias("lmin"), F.max(F.when(ok, F.size(Y))).alias("lmax")]
    not_class = ok & ((F.col(Y) < 0) | (F.col(Y) != F.floor(Y)))
    return aggs + [F.min(F.when(ok, F.col(Y))).alias("lmin"), F.max(F.when(ok, F.col(Y))).alias("lmax"),
                   F.count(F.when(not_class, 1)).alias("not_class"),
                   F.min(F.when(not_class, F.col(Y))).alias("not_class_example")]


def _inspect(frames: list, df, label_col: str | None, label_dim: int | None, features_col,
             options: TrainingOptions) -> tuple[LabelInfo, int, int, list[int]]:
    """One aggregation job per cached frame; returns the label info, the input size, the rows to skip and
    each frame's row count."""
    from pyspark.sql import types as T

    rows = [frame.agg(*_aggregations(label_dim, bool(options.weightCol))).first().asDict() for frame in frames]
    counts = [int(r["n"] or 0) for r in rows]
    row = _combine(rows)
    if not row["n"]:
        raise ValueError(f"The training DataFrame has no rows (featuresCol={features_col!r}, "
                         f"labelCol={label_col!r}). Fix: check the filters and the source of the data.")
    skipped = _check_invalid(row, features_col, label_col, options)
    if row["dmin"] != row["dmax"]:
        raise ValueError(f"Feature arrays of features_col={features_col!r} vary in length "
                         f"({row['dmin']}..{row['dmax']}); every row needs the same number of features.")
    if label_col is None:
        dim = int(row["dmax"])
        info = LabelInfo(column=None, dim=dim, integral=False, num_classes=None, nominal=False)
        return info, dim, skipped, counts
    if label_dim and row["lmin"] != row["lmax"]:
        raise ValueError(f"Label arrays of label_col={label_col!r} vary in length ({row['lmin']}..{row['lmax']}).")
    meta = df.schema[label_col].metadata.get("ml_attr", {})
    nominal = meta.get("type") == "nominal"
    num_classes = len(meta.get("vals", [])) or meta.get("num_vals") if nominal else None
    if not label_dim and not num_classes and row["lmin"] >= 0 and float(row["lmax"]).is_integer():
        num_classes = int(row["lmax"]) + 1
    integral = isinstance(df.schema[label_col].dataType, T.IntegralType)
    info = LabelInfo(column=label_col, dim=int(row["lmax"]) if label_dim else 0, integral=integral,
                     num_classes=num_classes, nominal=nominal, not_class_count=row.get("not_class") or 0,
                     not_class_example=row.get("not_class_example"))
    return info, int(row["dmax"]), skipped, counts


def _check_invalid(row: dict, features_col, label_col: str, options: TrainingOptions) -> int:
    """The number of invalid rows to skip; raises ``ValueError`` if they are an error (or all rows)."""
    if not row["bad"]:
        return 0
    what = "are null or hold NaN, +/-inf or null elements"
    found = "; ".join(f"{param}={column!r}: {count} of {row['n']} row(s) {problem}" for param, column, count, problem in (
        ("featuresCol" if isinstance(features_col, str) else "featuresCols", features_col, row["bad_x"], what),
        ("labelCol", label_col, row["bad_y"], what),
        ("weightCol", options.weightCol, row["bad_w"], "are null, NaN, +/-inf or negative")) if count)
    if options.handleInvalid == "error":
        raise ValueError(f"{found} (handleInvalid='error'). Fix: set handleInvalid='skip' to train on the valid "
                         "rows only, or clean the data first (e.g. df.na.drop(), an Imputer, or a filter).")
    if row["bad"] == row["n"]:
        raise ValueError(f"{found}: no valid row is left to train on (handleInvalid='skip'). Fix: clean the "
                         "data (e.g. an Imputer), or check featuresCol and labelCol.")
    logger.info("dlbridge trainer: skipping %d of %d input rows (handleInvalid='skip'): %s",
                row["bad"], row["n"], found)
    return row["bad"]


def _combine(rows: list[dict]) -> dict:
    """Merge the per-frame aggregates (an empty frame has ``None`` minima and maxima)."""
    def pick(key: str, choose):
        values = [r[key] for r in rows if r.get(key) is not None]
        return choose(values) if values else None

    merged = {key: sum(r.get(key) or 0 for r in rows) for key in ("n", "bad_x", "bad_y", "bad_w", "bad", "not_class")}
    merged.update({key: pick(key, min) for key in ("dmin", "lmin", "not_class_example")})
    merged.update({key: pick(key, max) for key in ("dmax", "lmax")})
    return merged


def to_numpy(batch, input_dim: int, label_dim: int, sparse: bool,
             targets_are_features: bool = False, weighted: bool = False) -> tuple[np.ndarray, ...]:
    """Features ``(n, input_dim)`` float32 and labels of one Arrow record batch, vectorised.

    Labels are int32 ``(n,)`` class indices when ``sparse``, float32 ``(n, 1)``
    for other scalar labels, float32 ``(n, label_dim)`` for arrays, and the
    features array itself when ``targets_are_features`` (the batch then has
    only the feature column). With ``weighted`` the batch's last column holds
    the sample weights, returned third as float32 ``(n,)``.
    """
    n = batch.num_rows
    x = _flat_floats(batch.column(0)).reshape(n, input_dim)
    if weighted:
        w = batch.column(batch.num_columns - 1).to_numpy(zero_copy_only=False).astype(np.float32)
        x_y = to_numpy(batch, input_dim, label_dim, sparse, targets_are_features)
        return x_y + (w,)
    if targets_are_features:
        return x, x
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
                rng: np.random.Generator | None, targets_are_features: bool = False,
                weighted: bool = False) -> Iterator[tuple[np.ndarray, ...]]:
    """Stream mini-batches ``(x, y)``, or ``(x, y, w)`` with ``weighted``; with ``rng``, rows are shuffled
    within each Arrow batch window.

    Memory stays bounded by one Arrow batch (``spark.sql.execution.arrow.maxRecordsPerBatch``)
    plus one mini-batch carried over; the last mini-batch of a partition may be short.
    With ``targets_are_features`` each mini-batch's targets are its features.
    """
    return minibatches_of(windows(batches, input_dim, label_dim, sparse, targets_are_features, weighted),
                          batch_size, rng)


def windows(batches: Iterator, input_dim: int, label_dim: int, sparse: bool, targets_are_features: bool = False,
            weighted: bool = False) -> Iterator[tuple[np.ndarray, ...]]:
    """Each non-empty Arrow record batch as :func:`to_numpy`'s arrays (one shuffling window)."""
    for batch in batches:
        if batch.num_rows:
            yield to_numpy(batch, input_dim, label_dim, sparse, targets_are_features, weighted)


def minibatches_of(windows: Iterator[tuple[np.ndarray, ...]], batch_size: int,
                   rng: np.random.Generator | None) -> Iterator[tuple[np.ndarray, ...]]:
    """Mini-batches of ``batch_size`` rows cut from consecutive windows (the rest carried to the next one).

    With ``rng`` the rows of each window (with the carried rows in front) are
    permuted first. The same windows and generator give the same mini-batches,
    whether the windows come from Arrow or from :mod:`dlbridge.trainer.partition_cache`.
    """
    carry = None
    for arrays in windows:
        if carry is not None:
            arrays = tuple(np.concatenate([c, a]) for c, a in zip(carry, arrays))
        if rng is not None:
            order = rng.permutation(len(arrays[0]))
            arrays = tuple(a[order] for a in arrays)
        full = len(arrays[0]) - len(arrays[0]) % batch_size
        for start in range(0, full, batch_size):
            yield tuple(a[start:start + batch_size] for a in arrays)
        carry = tuple(a[full:] for a in arrays)
    if carry is not None and len(carry[0]):
        yield carry
