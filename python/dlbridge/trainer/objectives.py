"""What is learnt: task, loss and optimizer, chosen from the label, the model and the options."""
from __future__ import annotations

import dataclasses
from typing import Any

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
    column : str
        Name of the label column.
    dim : int
        0 for a scalar label, otherwise the length of the label array.
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

    column: str
    dim: int
    integral: bool
    num_classes: int | None
    nominal: bool
    not_class_count: int = 0
    not_class_example: float | None = None


@dataclasses.dataclass(frozen=True)
class Objective:
    """The chosen task, model output size and loss (by Keras name)."""

    task: str
    num_outputs: int
    loss: str
    from_logits: bool

    @property
    def sparse(self) -> bool:
        """Labels are class indices (fed as int32)."""
        return self.loss.startswith("sparse_")


def infer_task(label: LabelInfo, options: TrainingOptions, source: Any, model=None,
               task: str | None = None) -> str:
    """``"classification"`` or ``"regression"``, from the most explicit hint available."""
    if task:
        return task
    if getattr(source, "task", None) in ("classification", "regression"):
        return source.task
    if options.loss:
        return "classification" if options.loss in CLASSIFICATION_LOSSES else "regression"
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
    """The loss for ``options.loss`` or, when empty, the default for label and model."""
    outputs = int(model.outputs[0].shape[-1]) if getattr(model, "outputs", None) else 1
    activation = output_activation(model)
    from_logits = False
    if options.loss:
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
    if label.dim and label.dim != outputs:
        raise ValueError(f"Label column {label.column!r} holds arrays of {label.dim} values but the "
                         f"model outputs {outputs}; make them match.")
    if not label.dim and task == "regression" and outputs != 1:
        raise ValueError(f"Label column {label.column!r} holds one value per row but the model outputs "
                         f"{outputs}; a regression on a scalar label needs a single output unit.")
    return Objective(task=task, num_outputs=outputs, loss=loss, from_logits=from_logits)


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
    """A fresh Keras optimizer from ``optimizer`` and ``optimizerOptions``."""
    import keras

    try:
        cls = type(keras.optimizers.get(options.optimizer))
    except (ValueError, TypeError) as e:
        raise ValueError(f"Option optimizer must be a Keras optimizer name such as 'adam', 'sgd' "
                         f"or 'rmsprop'. Received: optimizer={options.optimizer!r}") from e
    kwargs = options.optimizer_kwargs()
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
