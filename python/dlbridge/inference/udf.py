"""The inference UDF factory: argument checks on the driver, the Arrow UDF run on the executors."""
from __future__ import annotations

import math
from typing import Any, Iterator, Sequence, Tuple

import numpy as np
import pyarrow as pa

from dlbridge.inference.arrow_io import OUTPUT_TYPES, features, outputs_struct
from dlbridge.inference.model_cache import Loaded, cached, configured_cache_size, model_digest, size

TASKS = ("classification", "regression")


def build_keras_udf(
    model_bytes: bytes,
    *,
    task: str,
    batch_size: int = 1024,
    input_shape: Sequence[int] | None = None,
    outputs: Tuple[str, ...] = ("prediction", "probability"),
    num_input_cols: int = 1,
    input_cols: Sequence[str] | None = None,
    intra_op_threads: int | None = None,
    model_cache_size: int | None = None,
) -> Any:
    """A Spark column function running a Keras model over Arrow batches on the executors.

    Call the result with the input column(s); it returns one struct column with
    the requested ``outputs`` fields, in the order ``prediction``,
    ``probability``, ``raw``:

    * ``prediction`` (double): the argmax class index for classification (for a
      single output unit: ``p >= 0.5``); the value for a one-output regressor.
    * ``probability`` (array<double>, classification only): the class
      probabilities (``[1 - p, p]`` for a single output unit). A model ending
      in a linear layer is taken to output logits, and softmax (sigmoid for one
      unit) is applied.
    * ``raw`` (array<float>): the model's output row as is.

    Parameters
    ----------
    model_bytes : bytes
        Contents of a Keras v3 ``.keras`` file. Shipped to the executors in the
        pickled command and loaded there once per Python worker (``safe_mode=True``).
    task : str
        ``"classification"`` or ``"regression"``.
    batch_size : int
        Rows per forward pass, within each Arrow batch. Defaults to `1024`.
    input_shape : list of int, optional
        Shape each flat row is reshaped to, e.g. ``[28, 28, 1]`` for a CNN.
        Defaults to `None`: the model's own input shape.
    outputs : tuple of str
        Fields of the result struct. Defaults to `("prediction", "probability")`.
    num_input_cols : int
        With `1` (the default), one ``array<float>`` or ``array<double>`` column
        holds each row's features (or one ``binary`` column of packed little-endian
        float32 values, ``4 * features`` bytes a row); with more, each of that many
        numeric columns holds one feature, concatenated in order.
    input_cols : list of str, optional
        Names of the input columns, used in error messages only. Defaults to `None`.
    intra_op_threads : int, optional
        TensorFlow intra-op threads per Python worker (set once per process, by
        the first model or training step that runs there; inter-op threads are 1).
        Defaults to `None`: ``spark.task.cpus`` of the first task in that worker.
    model_cache_size : int, optional
        Models each Python worker keeps loaded (least recently used dropped
        first), across all the UDFs it runs. Defaults to `None`:
        ``spark.dlbridge.inference.modelCacheSize`` of the active session, read
        here on the driver (default `4`).

    Returns
    -------
    pyspark.sql.functions.UserDefinedFunction
        An iterator Arrow UDF (``Iterator[pa.Array] -> Iterator[pa.Array]``,
        or ``Iterator[Tuple[pa.Array, ...]]`` for several columns).

    Raises
    ------
    TypeError, ValueError
        If an argument is invalid (checked here, on the driver, before any job).
    """
    spec = _validate(model_bytes, task, batch_size, input_shape, outputs, num_input_cols,
                     input_cols, intra_op_threads)
    if model_cache_size is None:
        model_cache_size = configured_cache_size()
    elif not _positive_int(model_cache_size):
        raise ValueError(f"model_cache_size must be a positive integer or None. Received: {model_cache_size!r}")
    return _make_udf(bytes(model_bytes), model_digest(bytes(model_bytes)), capacity=int(model_cache_size), **spec)


def _validate(model_bytes, task, batch_size, input_shape, outputs, num_input_cols,
              input_cols, intra_op_threads) -> dict[str, Any]:
    if not isinstance(model_bytes, (bytes, bytearray)) or not model_bytes:
        raise TypeError(f"model_bytes must be the non-empty bytes of a .keras file. "
                        f"Received: {type(model_bytes).__name__} of length {len(model_bytes or b'')}")
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}. Received: task={task!r}")
    for name, value in (("batch_size", batch_size), ("num_input_cols", num_input_cols)):
        if not _positive_int(value):
            raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
    if intra_op_threads is not None and not _positive_int(intra_op_threads):
        raise ValueError(f"intra_op_threads must be a positive integer or None. Received: {intra_op_threads!r}")
    shape = None
    if input_shape is not None:
        shape = tuple(input_shape)
        if not shape or not all(_positive_int(d) for d in shape):
            raise ValueError(f"input_shape must be a non-empty list of positive integers, e.g. [28, 28, 1]. "
                             f"Received: input_shape={input_shape!r}")
    if isinstance(outputs, str) or not outputs or any(o not in OUTPUT_TYPES for o in outputs):
        raise ValueError(f"outputs must be a non-empty tuple of fields among {tuple(OUTPUT_TYPES)}. "
                         f"Received: outputs={outputs!r}")
    if "probability" in outputs and task != "classification":
        raise ValueError("outputs contains 'probability', which only classification models have. "
                         f"Received: task={task!r}; drop 'probability' (empty probabilityCol) or set task.")
    names = list(input_cols) if input_cols is not None else (
        ["features"] if num_input_cols == 1 else [f"input column {i + 1}" for i in range(num_input_cols)])
    if len(names) != num_input_cols:
        raise ValueError(f"input_cols names {len(names)} columns but num_input_cols={num_input_cols}. "
                         f"Received: input_cols={input_cols!r}")
    fields = tuple(o for o in OUTPUT_TYPES if o in outputs)
    return {"task": task, "batch_size": int(batch_size), "shape": shape, "fields": fields,
            "names": tuple(names), "threads": intra_op_threads}


def _make_udf(model_bytes: bytes, digest: str, *, task: str, batch_size: int, shape, fields,
              names, threads, capacity: int) -> Any:
    """The UDF; its closures capture only the locals of this function."""
    from pyspark.sql.functions import arrow_udf

    return_type = ", ".join(f"{f} {OUTPUT_TYPES[f]}" for f in fields)

    def run(batches: Iterator[Tuple[pa.Array, ...]]) -> Iterator[pa.Array]:
        predict = BatchPredictor(cached(model_bytes, digest, threads, capacity), task=task, batch_size=batch_size,
                                 shape=shape, fields=fields, names=names)
        for cols in batches:
            yield predict(*cols)

    if len(names) == 1:
        def run_one(batches: Iterator[pa.Array]) -> Iterator[pa.Array]:
            return run((b,) for b in batches)

        run_one.__name__ = "keras_predict"
        return arrow_udf(run_one, return_type)
    run.__name__ = "keras_predict"
    return arrow_udf(run, return_type)


class BatchPredictor:
    """A loaded model as a batch function: Arrow feature column(s) in, the outputs struct out.

    Parameters
    ----------
    loaded : Loaded
        The model and its compiled forward pass.
    task, batch_size, shape, fields, names
        As validated by :func:`build_keras_udf`: the task, rows per forward
        pass, the input shape (None: the model's), the output struct's fields
        and the input column names (for messages).
    """

    def __init__(self, loaded: Loaded, *, task: str, batch_size: int, shape: Sequence[int] | None,
                 fields: Sequence[str], names: Sequence[str]) -> None:
        self.loaded, self.task, self.batch_size = loaded, task, batch_size
        self.shape, self.fields, self.names = (tuple(shape) if shape else None), tuple(fields), tuple(names)
        self.width = _expected_width(loaded, self.shape, self.names)

    def __call__(self, *cols: pa.Array) -> pa.Array:
        x = features(cols, self.names, self.width, self.shape or self.loaded.input_shape)
        return outputs_struct(_forward(self.loaded, x, self.batch_size), self.loaded.outputs_probabilities,
                              self.task, self.fields)


def _expected_width(loaded: Loaded, shape, names) -> int | None:
    """Values per row: from ``input_shape`` if given, else from the model."""
    model_size = size(loaded.input_shape)
    if shape is None:
        return model_size
    width = math.prod(shape)
    if model_size is not None and width != model_size:
        raise ValueError(f"input_shape {list(shape)} holds {width} values but the model's input "
                         f"{list(loaded.input_shape)} needs {model_size}. Set input_shape to the model's input "
                         f"shape or leave it unset (column {names[0]!r}).")
    return width


def _forward(loaded: Loaded, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Model outputs for every row of ``x``, ``batch_size`` rows per call, as (rows, num_outputs)."""
    rows = x.shape[0]
    if rows == 0:
        return np.zeros((0, loaded.num_outputs), np.float32)
    if rows <= batch_size:
        return loaded.forward(x).reshape(rows, -1)
    parts = [loaded.forward(x[i:i + batch_size]) for i in range(0, rows, batch_size)]
    return np.concatenate(parts).reshape(rows, -1)


def _positive_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0
