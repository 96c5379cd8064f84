"""A module that leaves a marker file when imported: tests prove it was (or was not) imported.

The marker path comes from ``DLBRIDGE_IMPORT_MARKER`` (unset on executors: nothing is written there).
"""
from __future__ import annotations

import os

_MARKER = os.environ.get("DLBRIDGE_IMPORT_MARKER")
if _MARKER:
    open(_MARKER, "a").close()


def build(inputs: int = 4, classes: int = 2):  # type: ignore[no-untyped-def]
    """A softmax regression model; reachable only as an allow-listed ``marker_on_import:build``."""
    import keras

    x = keras.Input(shape=(inputs,))
    return keras.Model(x, keras.layers.Dense(classes, activation="softmax")(x))
