"""Keras model factories the tests name as ``modelFactory`` ("keras_factories:small_mlp")."""
from __future__ import annotations


def small_mlp(inputs: int = 64, classes: int = 10, hidden: int = 32):  # type: ignore[no-untyped-def]
    """A one-hidden-layer softmax classifier."""
    import keras

    x = keras.Input(shape=(inputs,))
    h = keras.layers.Dense(hidden, activation="relu")(x)
    return keras.Model(x, keras.layers.Dense(classes, activation="softmax")(h))
