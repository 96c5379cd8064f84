"""Arrow <-> numpy for inference batches, without per-row Python work."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

from dlbridge.inference.feature_ring import shared_rows

#: Output fields the UDF can produce, in struct order, with their Spark SQL types.
OUTPUT_TYPES = {"prediction": "double", "probability": "array<double>", "raw": "array<float>"}
_ARROW_TYPES = {
    "prediction": pa.float64(),
    "probability": pa.list_(pa.float64()),
    "raw": pa.list_(pa.float32()),
}


def features(cols: Sequence[pa.Array], names: Sequence[str], width: int | None, shape) -> np.ndarray:
    """One Arrow batch as a float32 array of shape ``(rows, *shape)``."""
    if len(cols) == 1 and pa.types.is_binary(cols[0].type):
        x = _binary_matrix(cols[0], names[0], width)
    elif len(cols) == 1:
        x = _list_matrix(cols[0], names[0], width)
    else:
        if width is not None and len(cols) != width:
            raise ValueError(f"The model needs {width} features per row but {len(cols)} input columns "
                             f"{list(names)} were given. Pass {width} numeric columns, or one array column.")
        x = np.column_stack([_numeric(c, n) for c, n in zip(cols, names)])
    if None not in shape and x.shape[1:] != tuple(shape):
        x = x.reshape((x.shape[0], *shape))
    return x


def _binary_matrix(col: pa.Array, name: str, width: int | None) -> np.ndarray:
    """A binary column of packed little-endian float32 rows (4 * width bytes each) as (rows, width).

    The cheapest form for the JVM to hand over: one byte copy per row instead of
    one Arrow write per array element.
    """
    if col.null_count:
        raise ValueError(f"Input column {name!r} has {col.null_count} null rows in a batch; "
                         f"drop them first, e.g. df.na.drop(subset=[{name!r}]).")
    rows = len(col)
    offsets = np.frombuffer(col.buffers()[1], np.int32, rows + 1, col.offset * 4)
    lengths = np.diff(offsets)
    shared = shared_rows(col, offsets, lengths)
    if shared is not None:  # the JVM's shared memory holds the rows: each row_bytes long
        row_bytes, values = shared
        lengths = np.full(rows, row_bytes)
    width = int(lengths[0]) // 4 if width is None and rows else width
    bad = np.flatnonzero(lengths != 4 * (width or 0))
    if bad.size:
        raise ValueError(f"Input column {name!r}: every row must hold {width} float32 values ({4 * (width or 0)} "
                         f"bytes), but {bad.size} rows of a batch differ, e.g. one holds {int(lengths[bad[0]])} "
                         "bytes. Check featuresCol, or set inputShape to match the data.")
    if shared is not None:
        return values.view(np.dtype("<f4")).reshape(rows, width)
    data = col.buffers()[2]
    if rows == 0 or data is None:
        return np.zeros((rows, width or 0), np.float32)
    flat = np.frombuffer(data, np.dtype("<f4"), rows * width, int(offsets[0]))
    return flat.reshape(rows, width)


def _list_matrix(col: pa.Array, name: str, width: int | None) -> np.ndarray:
    """A list array (one row of features per element) as a 2-D float32 array, without row loops."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)):
        raise TypeError(f"Input column {name!r} must be array<float> or array<double> (convert ML Vectors "
                        f"with vector_to_array(col, 'float32')). Received Arrow type {col.type}.")
    if col.null_count:
        raise ValueError(f"Input column {name!r} has {col.null_count} null rows in a batch; "
                         f"drop them first, e.g. df.na.drop(subset=[{name!r}]).")
    offsets = col.offsets.to_numpy()
    lengths = np.diff(offsets)
    rows = len(col)
    if width is None:
        width = int(lengths[0]) if rows else 0
    bad = np.flatnonzero(lengths != width)
    if bad.size:
        raise ValueError(
            f"Input column {name!r}: every row must hold {width} values (the model's input size or "
            f"input_shape), but {bad.size} rows of a batch differ, e.g. one holds {int(lengths[bad[0]])} "
            "values. Check featuresCol (and its vector size), or set inputShape to match the data.")
    values = col.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0])) if rows else col.values.slice(0, 0)
    if values.null_count:
        raise ValueError(f"Input column {name!r} holds {values.null_count} null values inside its arrays; "
                         "fill or drop them before inference.")
    if not pa.types.is_floating(values.type) and not pa.types.is_integer(values.type):
        raise TypeError(f"Input column {name!r} must hold float or double values. Received array<{values.type}>.")
    flat = values.to_numpy(zero_copy_only=False)
    return flat.astype(np.float32, copy=False).reshape(rows, width)


def _numeric(col: pa.Array, name: str) -> np.ndarray:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type) or pa.types.is_boolean(col.type)):
        raise TypeError(f"Input column {name!r} must be numeric when several input columns are used. "
                        f"Received Arrow type {col.type}; assemble features into one array column instead.")
    if col.null_count:
        raise ValueError(f"Input column {name!r} has {col.null_count} null values in a batch; "
                         f"drop or fill them first, e.g. df.na.drop(subset=[{name!r}]).")
    return col.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)


def outputs_struct(out: np.ndarray, ends_in_probabilities: bool, task: str,
                   fields: Sequence[str]) -> pa.StructArray:
    """The result struct array for one batch of model outputs ``(rows, k)``.

    ``ends_in_probabilities`` tells whether the model's last layer applies softmax or
    sigmoid; otherwise its outputs are logits and get one applied here.
    """
    rows, k = out.shape
    columns: dict[str, pa.Array] = {}
    if task == "regression":
        if "prediction" in fields:
            if k != 1:
                raise ValueError(f"prediction for regression needs a model with one output; this one has {k}. "
                                 "Request only the raw output (rawOutputCol) and leave predictionCol unused.")
            columns["prediction"] = pa.array(out[:, 0].astype(np.float64))
    elif "prediction" in fields or "probability" in fields:
        probs = _probabilities(out.astype(np.float64), ends_in_probabilities)
        if "prediction" in fields:
            label = probs[:, 1] >= 0.5 if k == 1 else probs.argmax(axis=1)
            columns["prediction"] = pa.array(label.astype(np.float64))
        if "probability" in fields:
            columns["probability"] = _list_array(probs, pa.float64())
    if "raw" in fields:
        columns["raw"] = _list_array(out.astype(np.float32, copy=False), pa.float32())
    return pa.StructArray.from_arrays([columns[f] for f in fields],
                                      fields=[pa.field(f, _ARROW_TYPES[f]) for f in fields])


def _probabilities(out: np.ndarray, already: bool) -> np.ndarray:
    if out.shape[1] == 1:
        p = out[:, 0] if already else 1.0 / (1.0 + np.exp(-out[:, 0]))
        return np.column_stack([1.0 - p, p])
    if already:
        return out
    shifted = np.exp(out - out.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _list_array(matrix: np.ndarray, value_type: pa.DataType) -> pa.ListArray:
    """A (rows, k) matrix as a list array without per-row work."""
    rows, k = matrix.shape
    offsets = pa.array(np.arange(0, (rows + 1) * k, k, dtype=np.int32)[: rows + 1])
    return pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(matrix).ravel(), type=value_type))
