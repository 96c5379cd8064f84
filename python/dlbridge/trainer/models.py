"""Resolving the ``model`` argument of :func:`dlbridge.trainer.fit` to a Keras model."""
from __future__ import annotations

import importlib
import logging
import os
import re
from typing import Any, Callable

logger = logging.getLogger("dlbridge.trainer")

_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
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


def resolve_model(source: Any, input_dim: int, num_outputs: int | None,
                  model_args: dict[str, Any] | None = None):
    """Turn any accepted model form into a fresh, built ``keras.Model``.

    ``num_outputs`` is only needed (and only computed) for builder callables.

    Raises
    ------
    TypeError
        If ``source`` is of no accepted form, or a factory returns no model.
    ValueError
        If a path, JSON config or factory string cannot be used.
    """
    import keras

    if isinstance(source, keras.Model):
        model = _copy(source)
    elif isinstance(source, str):
        model = _from_string(source, model_args or {})
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


def is_builder(source: Any) -> bool:
    """Whether ``source`` is a ``build(input_dim, num_outputs)`` callable."""
    import keras

    return callable(source) and not isinstance(source, (str, keras.Model))


def factory_module(source: Any) -> str | None:
    """The module of a ``module:function`` source (workers import it for custom objects)."""
    if isinstance(source, str) and _FACTORY.match(source.strip()):
        return source.strip().split(":")[0]
    return None


def _copy(model):
    import keras

    try:
        clone = keras.models.clone_model(model)
    except (ValueError, TypeError, NotImplementedError) as e:
        logger.warning("could not clone the given model (%s); training it in place", e)
        return model
    clone.set_weights(model.get_weights())
    return clone


def _from_string(source: str, model_args: dict[str, Any]):
    import keras

    text = source.strip()
    if text.startswith("{"):
        try:
            return keras.models.model_from_json(text)
        except (ValueError, TypeError, KeyError) as e:
            raise ValueError(f"model looks like a Keras JSON config but cannot be read: {e}") from e
    if text.endswith(".keras"):
        if not os.path.isfile(text):
            raise ValueError(f"model path {text!r} does not exist; expected a .keras file saved by model.save().")
        return keras.models.load_model(text, compile=False, safe_mode=True)
    if _FACTORY.match(text):
        module_name, func_name = text.split(":")
        try:
            factory: Callable[..., Any] = getattr(importlib.import_module(module_name), func_name)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"model factory {text!r} cannot be imported: {e}. It must be importable "
                             "on the driver and on the executors.") from e
        return factory(**model_args)
    raise ValueError(_forms(f"model={source[:80]!r}"))


def _forms(received: str) -> str:
    return ("model must be a keras.Model, a path to a .keras file, a Keras JSON config string, a "
            "'module:function' factory string, or a callable build(input_dim, num_outputs). "
            f"Received: {received}")
