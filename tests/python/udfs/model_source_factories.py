"""Model factories of the model-source safety tests: one registered, one only reachable by allow-list."""
from __future__ import annotations

from dlbridge import register_model_factory


@register_model_factory("tiny_mlp")
def tiny_mlp(inputs: int = 4, classes: int = 2, hidden: int = 4):  # type: ignore[no-untyped-def]
    """A one-hidden-layer softmax classifier (registered as ``tiny_mlp``)."""
    import keras

    x = keras.Input(shape=(inputs,))
    h = keras.layers.Dense(hidden, activation="relu")(x)
    return keras.Model(x, keras.layers.Dense(classes, activation="softmax")(h))
