"""Keras layers the test suites use to observe model loads on the executors (on PYTHONPATH everywhere)."""
from __future__ import annotations

import os
import weakref
from typing import Any

import keras


@keras.saving.register_keras_serializable(package="dlbridge_test")
class LoadRecorder(keras.layers.Layer):
    """An identity layer that appends the loading process's pid to ``log_path`` whenever a saved model is loaded.

    Parameters
    ----------
    log_path : str
        File that each load (``from_config``) appends one line ``<pid>`` to. Defaults to `""`: no record.

    ``LoadRecorder.alive`` holds weak references to the instances of this process that
    have not been reclaimed yet.
    """

    alive: "weakref.WeakSet[LoadRecorder]" = weakref.WeakSet()

    def __init__(self, log_path: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.log_path = log_path
        LoadRecorder.alive.add(self)

    def call(self, inputs: Any) -> Any:
        return inputs

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "log_path": self.log_path}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "LoadRecorder":
        if config.get("log_path"):
            with open(config["log_path"], "a") as f:
                f.write(f"{os.getpid()}\n")
        return cls(**config)
