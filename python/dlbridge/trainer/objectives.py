"""What is learnt: task, loss and optimizer, chosen from the label, the model and the options.

The loss is a Keras loss name, or (from Python) the user's own ``keras.losses.Loss``
instance or function ``loss(y_true, y_pred)``. Such an object is pickled on the
driver with Spark's cloudpickle (:func:`pack_loss`), travels inside the task
closure like a UDF, and is unpickled once per worker runtime (:func:`unpack_loss`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import types
from typing import Any, Callable

from dlbridge.trainer import schedules
from dlbridge.trainer.options import TrainingOptions

CLASSIFICATION_LOSSES = {
    "sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy",
    "categorical_hinge", "hinge", "squared_hinge", "binary_focal_crossentropy",
    "categorical_focal_crossentropy", "kl_divergence", "kld",
}


@dataclasses.dataclass(frozen=True)
class LabelInfo:
    """What the label column holds.

    Attributes
    ----------
    column : str or None
        Name of the label column; ``None`` when the targets are the features
        (``label_col=None``, e.g. an autoencoder).
    dim : int
        0 for a scalar label, otherwise the length of the label array (the
        number of features when the targets are the features).
    integral : bool
        The column has an integer type.
    num_classes : int or None
        From nominal ML attribute metadata or ``max(label) + 1``, when scalar.
    nominal : bool
        The column carries nominal (categorical) ML attribute metadata.
    not_class_count : int
        Scalar labels that cannot be class indices (negative or fractional).
    not_class_example : float or None
        The smallest such label, when there is one.
    """

    column: str | None
    dim: int
    integral: bool
    num_classes: int | None
    nominal: bool
    not_class_count: int = 0
    not_class_example: float | None = None

    @property
    def from_features(self) -> bool:
        """The targets are the features themselves (no label column)."""
        return self.column is None

    def describe(self) -> str:
        """How errors name the targets: ``label_col='y'`` or ``label_col=None (targets = features)``."""
        return "label_col=None (the targets are the features)" if self.column is None else f"label_col={self.column!r}"


@dataclasses.dataclass(frozen=True)
class Objective:
    """The chosen task, model output size and loss.

    Attributes
    ----------
    task : str
        ``"classification"`` or ``"regression"``.
    num_outputs : int
        Units of the model's output.
    loss : str
        The loss's name: a Keras loss name, or the name of the user's
        ``Loss`` / function (logged and reported in the training summary).
    from_logits : bool
        A chosen classification loss reads logits (linear output layer).
    custom : keras.losses.Loss, callable or None
        The user's own loss object, or ``None`` when ``loss`` is a Keras name.
    """

    task: str
    num_outputs: int
    loss: str
    from_logits: bool
    custom: Any = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def sparse(self) -> bool:
        """Labels are class indices (fed as int32): a Keras ``sparse_*`` loss, by name or instance."""
        return self.loss.startswith("sparse_") and (self.custom is None or is_keras_loss(self.custom))


def infer_task(label: LabelInfo, options: TrainingOptions, source: Any, model=None,
               task: str | None = None) -> str:
    """``"classification"`` or ``"regression"``, from the most explicit hint available.

    In order: ``task``; the builder's ``task``; a Keras loss (by name or
    built-in instance) in :data:`CLASSIFICATION_LOSSES`; a softmax or sigmoid
    output; a nominal or integer label. Targets that are the features
    (``label.column is None``) are a reconstruction: always ``"regression"``.

    Raises
    ------
    ValueError
        If ``task`` or the builder asks for classification of targets that are the features.
    """
    hinted = task or getattr(source, "task", None)
    if label.from_features:
        if hinted == "classification":
            raise ValueError(
                f"task='classification' does not fit {label.describe()}: reconstructing the features is a "
                "regression. Fix: leave task unset (or 'regression'), or give a label column to classify.")
        return "regression"
    if hinted in ("classification", "regression"):
        return hinted
    if options.loss and (isinstance(options.loss, str) or is_keras_loss(options.loss)):
        return "classification" if loss_name(options.loss) in CLASSIFICATION_LOSSES else "regression"
    if model is not None and output_activation(model) in ("softmax", "sigmoid"):
        return "classification"
    return "classification" if label.nominal or label.integral else "regression"


def num_outputs_for(label: LabelInfo, task: str) -> int:
    """Output units a builder should create for this label and task."""
    if label.dim:
        return label.dim
    if task == "classification":
        check_class_indices(label)
        if not label.num_classes or label.num_classes < 2:
            raise ValueError(
                f"Label column {label.column!r} holds {label.num_classes} class(es); classification "
                "needs class indices 0..k-1 with k >= 2."
            )
        return label.num_classes
    return 1


def check_class_indices(label: LabelInfo) -> None:
    """Raise ``ValueError`` if a scalar classification label is negative or fractional."""
    if label.dim or not label.not_class_count:
        return
    raise ValueError(
        f"labelCol {label.column!r}: classification needs class indices 0..k-1 (whole numbers >= 0); "
        f"received {label.not_class_count} row(s) with other values, e.g. {label.not_class_example!r}. "
        "Fix: index the labels with StringIndexer, or set task='regression' to predict the value."
    )


def choose_objective(label: LabelInfo, task: str, model, options: TrainingOptions) -> Objective:
    """The loss for ``options.loss`` or, when empty, the default for label and model.

    Raises
    ------
    ValueError
        For an unknown loss name, class indices a classification loss cannot
        read, or a label (or, with ``label_col=None``, feature) size that does
        not match the model's output.
    """
    outputs = int(model.outputs[0].shape[-1]) if getattr(model, "outputs", None) else 1
    activation = output_activation(model)
    from_logits = False
    custom = None if isinstance(options.loss, str) else options.loss
    if custom is not None:
        loss = loss_name(custom)
    elif options.loss:
        loss = options.loss
        make_loss(loss, False)  # fail now, on the driver, for an unknown name
    elif task == "regression":
        loss = "mse"
    else:
        from_logits = activation in (None, "linear")
        if outputs == 1:
            loss = "binary_crossentropy"
        else:
            loss = "categorical_crossentropy" if label.dim else "sparse_categorical_crossentropy"
    if task == "classification" and (loss.startswith("sparse_") or loss == "binary_crossentropy"):
        check_class_indices(label)
    if label.from_features and label.dim != outputs:
        raise ValueError(f"With {label.describe()} the model must output as many values as it reads: the "
                         f"features hold {label.dim} values per row but the model outputs {outputs}. Fix: give "
                         f"the model's last layer {label.dim} units (an autoencoder), or pass a label column.")
    if label.dim and label.dim != outputs:
        raise ValueError(f"Label column {label.column!r} holds arrays of {label.dim} values but the "
                         f"model outputs {outputs}; make them match.")
    if not label.dim and task == "regression" and outputs != 1:
        raise ValueError(f"Label column {label.column!r} holds one value per row but the model outputs "
                         f"{outputs}; a regression on a scalar label needs a single output unit.")
    return Objective(task=task, num_outputs=outputs, loss=loss, from_logits=from_logits, custom=custom)


def loss_name(loss: Any) -> str:
    """The name a loss is logged and reported under.

    A string is its own name; a ``keras.losses.Loss`` has its ``name``
    (``"huber"``, ``"mean_squared_error"``...); a function its
    ``module.qualname``, or its bare name when it is a Keras function.
    """
    if isinstance(loss, str):
        return loss
    name = getattr(loss, "name", None)
    if isinstance(name, str) and name:
        return name
    qualname = getattr(loss, "__qualname__", None) or type(loss).__name__
    module = getattr(loss, "__module__", None)
    return qualname if not module or is_keras_loss(loss) else f"{module}.{qualname}"


def is_keras_loss(loss: Any) -> bool:
    """Whether a loss object (instance or function) comes from Keras itself, not the user."""
    owner = loss if isinstance(loss, types.FunctionType) else type(loss)
    return str(getattr(owner, "__module__", "")).split(".")[0] == "keras"


def mean_loss(loss: Any) -> Callable[[Any, Any], Any]:
    """``loss`` as a function ``(y_true, y_pred) -> scalar``.

    A ``keras.losses.Loss`` instance already reduces (with its own
    ``reduction``); a plain function's per-row values are averaged over the
    mini-batch, as ``model.compile(loss=fn)`` does in Keras. Both take an
    optional ``sample_weight`` (one weight per row): the weighted sum is then
    divided by the row count, as Keras' default reduction does.
    """
    import keras

    if isinstance(loss, keras.losses.Loss):
        return loss

    def reduced(y_true, y_pred, sample_weight=None):
        values = loss(y_true, y_pred)
        if sample_weight is None:
            return keras.ops.mean(values)
        if len(values.shape) != 1:
            raise ValueError(f"The loss {loss_name(loss)!r} returned values of shape {tuple(values.shape)}, but "
                             "sample weights (weightCol) need one loss per row, shape (batch,). Fix: return one "
                             "loss per row (reduce over the other axes only), or clear weightCol.")
        return keras.ops.sum(values * keras.ops.cast(sample_weight, values.dtype)) / keras.ops.cast(
            keras.ops.shape(values)[0], values.dtype)

    return reduced


def pack_loss(loss: Any) -> bytes:
    """The user's loss object pickled with Spark's cloudpickle, for the task closure.

    Raises
    ------
    TypeError
        If it cannot be pickled (e.g. it holds a lock or an open file).
    """
    from pyspark import cloudpickle

    try:
        return cloudpickle.dumps(loss)
    except Exception as e:  # noqa: BLE001 - pickling can fail with any type; reported with its cause
        raise TypeError(
            f"Option loss={loss_name(loss)!r} cannot be pickled to reach the executors ({type(e).__name__}: {e}). "
            "Fix: use a function or keras.losses.Loss defined at module level that holds only plain values."
        ) from e


def unpack_loss(blob: bytes, name: str) -> Any:
    """The loss object :func:`pack_loss` pickled (on an executor, once per worker runtime).

    The bytes come from this fit's own task closure (which Spark itself pickles),
    never from the network connection to the parameter server.

    Raises
    ------
    RuntimeError
        If the loss's module cannot be imported here, naming the module and the fix.
    """
    import pickle

    try:
        return pickle.loads(blob)  # noqa: S301 - the driver's own closure data, as Spark's UDFs
    except ImportError as e:
        raise RuntimeError(
            f"The loss {name!r} cannot be loaded on this executor: {e}. It was pickled by reference, so its module "
            "must be importable here. Fix: ship the module with --py-files (or spark.submit.pyFiles / "
            "SparkContext.addPyFile) and list it in spark.dlbridge.python.modules, install it on the executors, "
            "or define the loss in the driver script so that it travels by value.") from e


def loss_for(name: str, from_logits: bool, packed: bytes | None) -> Callable[[Any, Any], Any]:
    """The loss a worker differentiates: the user's :func:`pack_loss` bytes when given, else the Keras ``name``."""
    if packed is not None:
        return mean_loss(_autograph_converted(unpack_loss(packed, name)))
    return make_loss(name, from_logits)


def _autograph_converted(loss: Callable[..., Any]) -> Callable[..., Any]:
    """The user's loss converted by AutoGraph once, as ``model.fit`` would (it may branch on tensors).

    The workers' own ``tf.function`` steps run without AutoGraph; this converts
    only the user's code. AutoGraph writes the converted source to a temp file
    that it removes only at interpreter exit, which Spark's Python workers skip
    (they leave through ``os._exit``); the module is loaded by then, so the file
    is removed here. A loss AutoGraph cannot convert is used as it is, and the
    file of a conversion that failed after writing it is removed too (a loss
    unpickled by value keeps only the globals its body uses, so annotations that
    name others, such as ``typing.Any``, fail when the converted module runs).
    """
    import tensorflow as tf

    try:
        converted = tf.autograph.to_graph(loss)
    except Exception as e:  # noqa: BLE001 - e.g. a callable object; graph mode still runs it unconverted
        _remove_generated_sources(_files_in_tracebacks(e))
        return loss
    _remove_generated_sources([getattr(getattr(converted, "__code__", None), "co_filename", "")])
    return converted


def _files_in_tracebacks(error: BaseException) -> list[str]:
    """The source files of every frame in ``error``'s traceback and in those of its causes and contexts."""
    files: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        files.append(str(getattr(current, "filename", "") or ""))  # a SyntaxError names its file
        frame = current.__traceback__
        while frame is not None:
            files.append(frame.tb_frame.f_code.co_filename)
            frame = frame.tb_next
        current = current.__cause__ or current.__context__
    return files


def _remove_generated_sources(paths: list[str]) -> None:
    """Remove the AutoGraph-generated source files among ``paths`` (in the temp directory, by AutoGraph's prefix)."""
    import os
    import tempfile

    for path in set(paths):
        if os.path.basename(path).startswith("__autograph_generated_file") and \
                os.path.dirname(path) == tempfile.gettempdir():
            with contextlib.suppress(OSError):
                os.remove(path)


def check_loss_runs(objective: Objective, model: Any, input_dim: int, label: LabelInfo) -> None:
    """Call the user's loss on two rows of zeros on the driver, so that a broken loss fails before any job.

    Raises
    ------
    ValueError
        If the loss raises, or does not return a finite number.
    """
    if objective.custom is None:
        return
    import numpy as np

    x = np.zeros((2, input_dim), np.float32)
    if objective.sparse:
        y = np.zeros((2,), np.int32)
    else:
        y = np.zeros((2, label.dim or 1), np.float32)
    try:
        value = float(np.asarray(mean_loss(objective.custom)(y, model(x, training=False))))
    except Exception as e:  # noqa: BLE001 - the user's code can raise anything; reported with its cause
        raise ValueError(
            f"Option loss={objective.loss!r} failed on the driver on a trial batch of 2 rows (y_true of shape "
            f"{y.shape}, y_pred of shape {(2, objective.num_outputs)}): {type(e).__name__}: {e}. Fix: make it "
            "accept (y_true, y_pred) tensors and return one loss per row or a scalar.") from e
    if not np.isfinite(value):
        raise ValueError(f"Option loss={objective.loss!r} returned {value} on a trial batch of zeros; expected a "
                         "finite number.")


def make_loss(name: str, from_logits: bool):
    """A Keras ``Loss`` object (mean over the batch) for a loss name such as ``"mse"``."""
    import inspect

    import keras

    try:
        obj = keras.losses.get(name)
    except (ValueError, TypeError) as e:
        raise ValueError(f"Option loss must be a Keras loss name such as 'mse' or "
                         f"'sparse_categorical_crossentropy'. Received: loss={name!r}") from e
    if isinstance(obj, keras.losses.Loss):
        return obj
    classes = {n.lower(): c for n, c in vars(keras.losses).items()
               if inspect.isclass(c) and issubclass(c, keras.losses.Loss)}
    cls = classes.get(getattr(obj, "__name__", "").replace("_", "").lower())
    if cls is None:
        raise ValueError(f"Option loss={name!r} names a Keras loss function without a Loss class; "
                         "use the name of a keras.losses class such as 'MeanSquaredError'.")
    return cls(from_logits=True) if from_logits else cls()


def make_optimizer(options: TrainingOptions):
    """A fresh Keras optimizer from ``optimizer`` and ``optimizerOptions`` (its ``learning_rate`` may be a
    Keras schedule: see :mod:`dlbridge.trainer.schedules`)."""
    import keras

    try:
        cls = type(keras.optimizers.get(options.optimizer))
    except (ValueError, TypeError) as e:
        raise ValueError(f"Option optimizer must be a Keras optimizer name such as 'adam', 'sgd' "
                         f"or 'rmsprop'. Received: optimizer={options.optimizer!r}") from e
    kwargs = schedules.resolve(options.optimizer_kwargs(), options.optimizerOptions)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"Option optimizerOptions does not fit {cls.__name__}: {e}. "
                         f"Received: optimizerOptions={options.optimizerOptions!r}") from e


def output_activation(model) -> str | None:
    """Name of the last layer's activation, if it has one."""
    layers = getattr(model, "layers", None)
    activation = getattr(layers[-1], "activation", None) if layers else None
    return getattr(activation, "__name__", None)
