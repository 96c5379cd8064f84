"""Keras model factories the tests name as ``modelFactory`` (registered names such as "small_mlp").

Importing this module registers them (the Scala suites list it in spark.dlbridge.python.modules).
"""
from __future__ import annotations

from dlbridge import register_model_factory


@register_model_factory("small_mlp")
def small_mlp(inputs: int = 64, classes: int = 10, hidden: int = 32):  # type: ignore[no-untyped-def]
    """A one-hidden-layer softmax classifier."""
    import keras

    x = keras.Input(shape=(inputs,))
    h = keras.layers.Dense(hidden, activation="relu")(x)
    return keras.Model(x, keras.layers.Dense(classes, activation="softmax")(h))


_CALLS = {"count": 0}


@register_model_factory("fail_once_mlp")
def fail_once_mlp(marker: str, inputs: int = 64, classes: int = 10, hidden: int = 64):  # type: ignore[no-untyped-def]
    """A softmax MLP whose first layer fails one training step, once per ``marker`` file.

    The retry tests use it to make one Spark task fail for real in the middle of an
    epoch: the second step a Python process runs raises if ``marker`` does not
    exist, after creating it (so exactly one step fails, whichever process gets there).
    """
    import keras

    x = keras.Input(shape=(inputs,))
    h = keras.layers.Dense(hidden, activation="relu")(FailOnce(marker)(x))
    return keras.Model(x, keras.layers.Dense(classes, activation="softmax")(h))


def _fail_once_check(marker: str) -> None:
    import os

    _CALLS["count"] += 1
    if _CALLS["count"] < 2:
        return
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    raise RuntimeError(f"injected one-shot failure (marker {marker})")


def _register_fail_once():  # type: ignore[no-untyped-def]
    import keras
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="dlbridge_tests")
    class FailOnce(keras.layers.Layer):
        """Identity layer that runs :func:`_fail_once_check` each time its graph executes."""

        def __init__(self, marker: str, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(**kwargs)
            self.marker = marker

        def call(self, inputs):  # type: ignore[no-untyped-def]
            check = tf.py_function(lambda: _fail_once_check(self.marker) or 0.0, [], Tout=tf.float32)
            check.set_shape([])
            return inputs + check

        def compute_output_shape(self, input_shape):  # type: ignore[no-untyped-def]
            return input_shape

        def get_config(self):  # type: ignore[no-untyped-def]
            return {**super().get_config(), "marker": self.marker}

    return FailOnce


FailOnce = _register_fail_once()


@register_model_factory("bn_mlp")
def bn_mlp(inputs: int = 64, classes: int = 10, momentum: float = 0.9):  # type: ignore[no-untyped-def]
    """A softmax MLP that normalises its input with BatchNormalization (non-trainable statistics)."""
    import keras

    x = keras.Input(shape=(inputs,))
    h = keras.layers.BatchNormalization(momentum=momentum, name="input_norm")(x)
    h = keras.layers.Dense(64, activation="relu")(h)
    return keras.Model(x, keras.layers.Dense(classes, activation="softmax")(h))
