"""Keras metrics (``TrainingOptions.metrics``) computed on the validation split each epoch.

Each validation task updates its own copies of the metrics on its partition
(:class:`MetricSet`, inside the runtime's compiled evaluation step) and reports
their state variables as one flat float64 vector. The driver sums the
partitions' vectors into its own copies and reads ``result()``: the state of
Keras metrics is additive (sums and counts, confusion counts per threshold),
so the merged value is what Keras would report on the whole validation split.
Each metric appears in the history as ``val_<name>``, ``<name>`` as given.

``"accuracy"`` / ``"acc"`` and ``"crossentropy"`` / ``"ce"`` are resolved the
way ``model.compile(metrics=[...])`` resolves them: the sparse, categorical or
binary variant for class-index, one-hot and single-output labels. Other
metrics see the model's probabilities (softmax or sigmoid of the logits when
the loss reads logits) and, for class-index labels with several outputs, the
label one-hot encoded (e.g. ``auc`` over all classes).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

EXAMPLES = ("accuracy", "auc", "precision", "recall", "mae", "mse", "rmse", "mape", "r2_score",
            "top_k_categorical_accuracy", "crossentropy")
_ALIASES = {"acc": "accuracy", "ce": "crossentropy", "rmse": "root_mean_squared_error"}
_BY_LABEL = {  # name -> (class-index label, one-hot label, single output)
    "accuracy": ("sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy"),
    "crossentropy": ("sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy"),
}


def check_names(names: Sequence[str]) -> None:
    """Raise ``ValueError`` unless every name is a Keras metric name, listing valid examples."""
    import keras

    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"Option metrics must hold Keras metric names such as {', '.join(EXAMPLES)}. "
                             f"Received: metrics={list(names)!r}")
        if _canonical(name) in _BY_LABEL:
            continue
        try:
            keras.metrics.get(_canonical(name))
        except (ValueError, TypeError) as e:
            raise ValueError(f"Option metrics: {name!r} is not a Keras metric name. Expected names such as "
                             f"{', '.join(EXAMPLES)} (any keras.metrics name). Received: metrics={list(names)!r}"
                             ) from e
    if len(set(names)) != len(names):
        raise ValueError(f"Option metrics names a metric twice. Received: metrics={list(names)!r}")


def _canonical(name: str) -> str:
    return _ALIASES.get(name.lower(), name)


def _build(name: str, sparse: bool, num_outputs: int) -> Any:
    import keras

    canonical = _canonical(name)
    if canonical in _BY_LABEL:
        index = 0 if sparse else (2 if num_outputs == 1 else 1)
        canonical = _BY_LABEL[canonical][index]
    return keras.metrics.get(canonical)


class MetricSet:
    """Fresh Keras metric objects for ``names``, updated batch by batch and merged across partitions.

    Parameters
    ----------
    names : sequence of str
        Keras metric names, as in ``TrainingOptions.metrics``.
    sparse : bool
        Labels are class indices (fed as int32).
    num_outputs : int
        Units of the model's output.
    from_logits : bool
        The model outputs logits: metrics get softmax (or sigmoid) of them.
    label_dim : int
        0 for a scalar label, else the label array's length.

    Raises
    ------
    ValueError
        If a metric does not fit the label and the model: each metric is
        updated once on two rows of zeros (eagerly, so that metrics which
        create their state on first use, such as ``r2_score``, have it before
        any compiled step or merge), then reset.
    """

    def __init__(self, names: Sequence[str], sparse: bool, num_outputs: int, from_logits: bool,
                 label_dim: int) -> None:
        self.names = list(names)
        self.sparse, self.num_outputs, self.from_logits = sparse, num_outputs, from_logits
        self.metrics = [_build(n, sparse, num_outputs) for n in self.names]
        self._sparse_aware = [_canonical(n) in _BY_LABEL or "sparse" in type(m).__name__.lower()
                              for n, m in zip(self.names, self.metrics)]
        self._build_state(label_dim)

    def _build_state(self, label_dim: int) -> None:
        import tensorflow as tf

        y = tf.zeros([2], tf.int32) if self.sparse else tf.zeros([2, label_dim or 1], tf.float32)
        try:
            self.update(y, tf.fill([2, self.num_outputs], 1.0 / self.num_outputs))
        except (ValueError, TypeError, tf.errors.InvalidArgumentError) as e:
            label = "class index" if self.sparse else f"{label_dim or 1} value(s)"
            raise ValueError(f"Option metrics={self.names!r} does not fit this model ({self.num_outputs} outputs) "
                             f"and label ({label}): {e}. Fix: choose metrics for this task, e.g. "
                             f"{', '.join(EXAMPLES)}.") from e
        self.reset()

    def reset(self) -> None:
        """Clear every metric's state (start of a validation task)."""
        for metric in self.metrics:
            metric.reset_state()

    def update(self, y: Any, predictions: Any) -> None:
        """Add one batch (traceable: the runtime calls it inside its compiled evaluation step)."""
        import tensorflow as tf

        if self.from_logits:
            predictions = tf.sigmoid(predictions) if self.num_outputs == 1 else tf.nn.softmax(predictions)
        dense_y = y
        if self.sparse and self.num_outputs > 1:
            dense_y = tf.one_hot(tf.cast(y, tf.int32), self.num_outputs)
        elif len(y.shape) == 1:
            dense_y = tf.reshape(y, [-1, 1])
        for metric, aware in zip(self.metrics, self._sparse_aware):
            metric.update_state(y if aware else dense_y, predictions)

    def state(self) -> bytes:
        """Every metric's state variables as one flat little-endian float64 vector."""
        parts = [np.asarray(v.numpy(), dtype="<f8").ravel() for m in self.metrics for v in m.variables]
        return np.concatenate(parts).tobytes() if parts else b""

    def merge(self, states: Sequence[bytes]) -> dict[str, float]:
        """Set the sum of partitions' :meth:`state` vectors; return ``{"val_<name>": value}``.

        Raises
        ------
        ValueError
            If a metric's result is not a single number (e.g. ``f1_score``,
            one value per class).
        """
        usable = [np.frombuffer(s, dtype="<f8") for s in states if s]
        total = sum(usable) if usable else None
        offset = 0
        for metric in self.metrics:
            for v in metric.variables:
                n = int(np.prod(v.shape))
                part = total[offset:offset + n] if total is not None else np.zeros(n)
                v.assign(part.reshape(v.shape).astype(str(v.dtype)))
                offset += n
        return {f"val_{name}": _scalar(name, metric.result()) for name, metric in zip(self.names, self.metrics)}


def _scalar(name: str, value: Any) -> float:
    array = np.asarray(value)
    if array.size != 1:
        raise ValueError(f"Option metrics: {name!r} gives {array.size} values per epoch (shape {array.shape}); "
                         "only metrics with one value can be reported. Fix: use a metric with a single result, "
                         "such as auc, precision or recall.")
    return float(array.reshape(()))


def check_runs(names: Sequence[str], sparse: bool, num_outputs: int, from_logits: bool,
               label_dim: int) -> MetricSet:
    """The driver's :class:`MetricSet`, once built (which updates each metric on two rows) and read, so a
    metric that does not fit the label or the model, or gives several values, fails before training.

    Raises
    ------
    ValueError
        Naming the metric and the fix.
    """
    metric_set = MetricSet(names, sparse, num_outputs, from_logits, label_dim)
    metric_set.merge([metric_set.state()])
    return metric_set
