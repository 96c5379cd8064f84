"""Resolving the ``model`` argument of :func:`dlbridge.trainer.fit` to a Keras model."""
from __future__ import annotations

import logging
import math
import os
import tempfile
from typing import Any

from dlbridge.trainer import sources

logger = logging.getLogger("dlbridge.trainer")

TASKS = ("classification", "regression")


class MLPBuilder:
    """Builds a multilayer perceptron sized from the data.

    Parameters
    ----------
    hidden_layers : list of int
        Units of each hidden ``Dense`` layer (ReLU).
    task : str
        ``"classification"`` (softmax over ``num_outputs`` classes) or
        ``"regression"`` (linear output of ``num_outputs`` values).
    """

    def __init__(self, hidden_layers: list[int], task: str) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}. Received: task={task!r}")
        if not all(isinstance(u, int) and not isinstance(u, bool) and u > 0 for u in hidden_layers):
            raise ValueError(f"hidden_layers must be positive integers. Received: hidden_layers={hidden_layers!r}")
        self.hidden_layers = list(hidden_layers)
        self.task = task

    def __call__(self, input_dim: int, num_outputs: int):
        import keras

        layers: list[Any] = [keras.Input(shape=(input_dim,))]
        layers += [keras.layers.Dense(units, activation="relu") for units in self.hidden_layers]
        activation = "softmax" if self.task == "classification" else None
        layers.append(keras.layers.Dense(num_outputs, activation=activation))
        return keras.Sequential(layers, name="dlbridge_mlp")

    def __repr__(self) -> str:
        return f"mlp_builder(hidden_layers={self.hidden_layers}, task={self.task!r})"


def mlp_builder(hidden_layers: list[int], task: str) -> MLPBuilder:
    """A ``build(input_dim, num_outputs) -> keras.Model`` callable for an MLP.

    Parameters
    ----------
    hidden_layers : list of int
        Units of each hidden ReLU layer, e.g. ``[64, 32]``.
    task : str
        ``"classification"`` gives a softmax output with one unit per class;
        ``"regression"`` a linear output.

    Returns
    -------
    MLPBuilder
        Callable; its ``task`` attribute also tells :func:`fit` how to read the label.

    Examples
    --------
    >>> build = mlp_builder([16], "classification")
    >>> build(4, 3).output_shape
    (None, 3)
    """
    return MLPBuilder(hidden_layers, task)


def check_source(source: Any, model_args: dict[str, Any] | None, df: Any) -> Any:
    """Checks a string model source before any import or Spark job; other sources pass unchanged.

    A JSON config becomes a checked :class:`~dlbridge.trainer.sources.KerasConfig`; a
    factory name a :class:`~dlbridge.trainer.sources.FactorySource`, granted only when
    registered or listed in ``spark.dlbridge.modelFactories.allowed`` of ``df``'s session.

    Raises
    ------
    ValueError
        For a missing ``.keras`` path, an unsafe config, or a factory that is not granted.
    """
    if not isinstance(source, str):
        return source
    text = source.strip()
    if text.startswith("{"):
        return sources.keras_config(text, "model")
    if text.endswith(".keras"):
        if not os.path.isfile(text):
            raise ValueError(f"model path {text!r} does not exist; expected a .keras file saved by model.save().")
        return text
    return sources.resolve_factory(text, model_args or {}, sources.allowed_factories(df), "model", "model_args")


def resolve_model(source: Any, input_dim: int, num_outputs: int | None):
    """Turn a checked model source (see :func:`check_source`) into a fresh, built ``keras.Model``.

    ``num_outputs`` is only needed (and only computed) for builder callables.

    Raises
    ------
    TypeError
        If ``source`` is of no accepted form, or a factory returns no model.
    ValueError
        If a config cannot be deserialised.
    """
    import keras

    if isinstance(source, keras.Model):
        model = _copy(source)
    elif isinstance(source, sources.FactorySource):
        model = source.function(**source.args)
    elif isinstance(source, sources.KerasConfig):
        model = _from_config(source)
    elif isinstance(source, str):
        model = keras.models.load_model(source, compile=False, safe_mode=True)
    elif callable(source):
        model = source(input_dim, num_outputs)
    else:
        raise TypeError(_forms(f"model of type {type(source).__name__}"))
    if not isinstance(model, keras.Model):
        raise TypeError(f"The model source {source!r} produced a {type(model).__name__}, not a keras.Model.")
    if not model.built:
        model.build((None, input_dim))
    return model


def config_json(model) -> str:
    """The model's Keras JSON config, which workers rebuild it from.

    Raises
    ------
    TypeError
        If the model has no serialisable config (e.g. a subclassed model without ``get_config``).
    """
    try:
        return model.to_json()
    except (NotImplementedError, TypeError, ValueError) as e:
        raise TypeError(
            f"The model {model.name!r} cannot be serialised to a Keras config ({e}); executors rebuild "
            "the model from it. Use a Sequential or Functional model, or implement get_config and "
            "register custom classes with keras.saving.register_keras_serializable.") from e


def check_input_size(model: Any, input_dim: int) -> None:
    """Raise ``ValueError`` if the model's input does not take ``input_dim`` features per row.

    Workers feed ``(batch, input_dim)`` float32 arrays; a model whose input
    shape is fully known and holds another number of values would only fail
    inside the first training step on an executor.
    """
    inputs = getattr(model, "inputs", None) or []
    shape = tuple(inputs[0].shape[1:]) if len(inputs) == 1 else ()
    if not shape or any(d is None for d in shape) or math.prod(shape) == input_dim:
        return
    raise ValueError(f"The features hold {input_dim} values per row but the model {model.name!r} takes input of "
                     f"shape {list(shape)}. Fix: build the model with keras.Input(({input_dim},)), or select the "
                     "feature columns the model was built for.")


def note_compile_state(source: Any, options: Any) -> None:
    """Log (WARNING) that a compiled model's own loss is not what training uses, when it differs."""
    compiled_loss = getattr(source, "loss", None) if getattr(source, "compiled", False) else None
    if compiled_loss is None or compiled_loss is options.loss or compiled_loss == options.loss:
        return
    logger.warning("the model %r is compiled with loss %r; dlbridge.trainer ignores compile state and trains with "
                   "options.loss=%r and options.optimizer=%r (pass loss=... in TrainingOptions to use yours)",
                   getattr(source, "name", "?"), compiled_loss, options.loss or "(chosen from the label)",
                   options.optimizer)


def to_keras_bytes(model: Any) -> bytes:
    """The bytes of ``model.save("<tmp>.keras")`` (a Keras v3 archive), from a temporary file that is removed."""
    fd, path = tempfile.mkstemp(prefix="dlbridge-model-", suffix=".keras")
    os.close(fd)
    try:
        model.save(path)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.remove(path)


def is_builder(source: Any) -> bool:
    """Whether ``source`` is a ``build(input_dim, num_outputs)`` callable."""
    import keras

    return callable(source) and not isinstance(source, (str, keras.Model))


def factory_module(source: Any) -> str | None:
    """The module executors import for a granted factory's custom objects (its own module), else None."""
    return source.module if isinstance(source, sources.FactorySource) else None


def _copy(model):
    import keras

    try:
        clone = keras.models.clone_model(model)
    except (ValueError, TypeError, NotImplementedError) as e:
        logger.warning("could not clone the given model (%s); training it in place", e)
        return model
    clone.set_weights(model.get_weights())
    return clone


def _from_config(source: "sources.KerasConfig"):
    try:
        return sources.model_from_config(source)
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"model looks like a Keras JSON config but cannot be read: {e}") from e


def _forms(received: str) -> str:
    return ("model must be a keras.Model, a path to a .keras file, a Keras JSON config string, the name "
            "of a registered model factory or an allowed 'module:function', or a callable "
            "build(input_dim, num_outputs). "
            f"Received: {received}")
