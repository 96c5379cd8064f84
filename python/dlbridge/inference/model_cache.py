"""Per-process model cache: safe loading from bytes, a bounded LRU of models, compiled forward pass."""
from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from dlbridge import tensorflow_threads, worker_cache
from dlbridge.graph_functions import concrete_function
from dlbridge.inference.tensor_input import float32_tensor

logger = logging.getLogger("dlbridge.inference")

_PROBABILITY_ACTIVATIONS = ("softmax", "sigmoid")


@dataclass
class Loaded:
    """A cached model with its compiled forward pass."""

    model: Any
    forward: Callable[[np.ndarray], np.ndarray]
    input_shape: tuple[int | None, ...]
    num_outputs: int
    outputs_probabilities: bool


# The cache and its conf key live in dlbridge.worker_cache, shared with every Python stage.
CACHE_SIZE_KEY = worker_cache.CACHE_SIZE_KEY
DEFAULT_CACHE_SIZE = worker_cache.DEFAULT_CACHE_SIZE
configured_cache_size = worker_cache.configured_size


def load_model_bytes(model_bytes: bytes, source: str | None = None) -> Any:
    """Deserialize a ``.keras`` archive from bytes with ``safe_mode=True`` (uncached).

    Parameters
    ----------
    model_bytes : bytes
        Contents of a Keras v3 ``.keras`` file (``model.save("m.keras")``).
    source : str, optional
        Where the bytes came from, e.g. ``"modelFile '/data/m.keras'"``; errors
        name it instead of the temporary file the bytes are loaded from.
        Defaults to ``None`` ("the model bytes").

    Returns
    -------
    keras.Model
        The model, not compiled.

    Raises
    ------
    TypeError
        If ``model_bytes`` is not bytes.
    ValueError
        If the bytes are not a loadable ``.keras`` archive, or the archive needs
        code execution to load (e.g. a ``Lambda`` layer), which is refused.
    """
    if not isinstance(model_bytes, (bytes, bytearray, memoryview)):
        raise TypeError(f"model_bytes must be the bytes of a .keras file. Received: {type(model_bytes).__name__}")
    import keras

    what = source or "The model bytes"
    fd, path = tempfile.mkstemp(prefix="dlbridge-model-", suffix=".keras")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(model_bytes)
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except ValueError as e:
        if "safe_mode" in str(e) or "Lambda" in str(e):
            raise ValueError(
                f"{what}: the model cannot be loaded safely: it needs Python code from the file to be executed "
                f"(safe_mode=True refused it: {_named(e, path, source)}). dlbridge never loads models with "
                "safe_mode=False; replace Lambda layers by registered custom layers "
                "(keras.saving.register_keras_serializable) importable on the executors, or by built-in layers."
            ) from e
        # The cause's text is in the message, with the temporary file's path replaced by the
        # user's: chaining it would show that path (and Keras' "File not found") again.
        raise _not_keras_archive(what, model_bytes, e, path, source) from None
    except (OSError, KeyError, TypeError) as e:
        raise _not_keras_archive(what, model_bytes, e, path, source) from None
    finally:
        os.remove(path)


def _not_keras_archive(what: str, model_bytes: bytes, error: BaseException, path: str,
                       source: str | None) -> ValueError:
    return ValueError(
        f"{what} ({len(model_bytes)} bytes) is not a loadable Keras v3 .keras archive "
        f"({type(error).__name__}: {_named(error, path, source)}). Fix: pass a file written by "
        "model.save('model.keras') with Keras 3; convert an .h5 file or a SavedModel by loading it and "
        "saving it again as .keras.")


def _named(error: BaseException, path: str, source: str | None) -> str:
    """The error's text, naming the user's file instead of the temporary one."""
    text = str(error)
    if "File not found" in text:  # Keras says so for any file that is not a zip archive
        text = "not a zip archive"
    return text.replace(path, source or "the model bytes")


def describe_model(model_bytes: bytes, source: str | None = None) -> dict[str, Any]:
    """Input and output sizes of a ``.keras`` model, without the batch dimension.

    Parameters
    ----------
    model_bytes : bytes
        Contents of a Keras v3 ``.keras`` file. Loaded with ``safe_mode=True``
        from a temporary file that is removed afterwards.
    source : str, optional
        Where the bytes came from, named in errors. Defaults to ``None``.

    Returns
    -------
    dict
        ``{"inputShape": [...], "outputShape": [...], "numInputs": int, "numOutputs": int}``;
        a dimension the model leaves open is ``None``, and so is the matching count.

    Raises
    ------
    ValueError
        If the bytes cannot be loaded safely, or the model has several inputs or outputs.

    Examples
    --------
    >>> import io, keras, tempfile, os
    >>> m = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation="softmax")])
    >>> path = os.path.join(tempfile.mkdtemp(), "m.keras"); m.save(path)
    >>> describe_model(open(path, "rb").read())
    {'inputShape': [784], 'outputShape': [10], 'numInputs': 784, 'numOutputs': 10}
    """
    model = load_model_bytes(model_bytes, source)
    in_shape, out_shape = _io_shapes(model)
    return {"inputShape": list(in_shape), "outputShape": list(out_shape),
            "numInputs": size(in_shape), "numOutputs": size(out_shape)}


def cached(model_bytes: bytes, digest: str, threads: int | None, capacity: int) -> Loaded:
    """The model for ``digest``, loaded at most once per process while cached (thread-safe).

    The model lives in the worker's cache (:mod:`dlbridge.worker_cache`), which
    keeps the ``capacity`` most recently used entries and drops the least
    recently used beyond that.
    """
    return worker_cache.get(("keras-model", digest), lambda: load_prepared(model_bytes, threads), capacity,
                            f"Keras model {digest[:12]}")


def load_prepared(model_bytes: bytes, threads: int | None = None) -> Loaded:
    """The model of a ``.keras`` archive (``safe_mode=True``) with its compiled forward pass, uncached.

    Sizes TensorFlow's threads first (``threads`` intra-op threads, or the task's
    ``spark.task.cpus`` when None; see :mod:`dlbridge.tensorflow_threads`).
    """
    intra = tensorflow_threads.configure(threads)
    loaded = _prepare(load_model_bytes(model_bytes))
    logger.info("loaded Keras model (%d bytes) in pid %d; intra-op threads %s", len(model_bytes), os.getpid(), intra)
    return loaded


def _prepare(model: Any) -> Loaded:
    import tensorflow as tf

    in_shape, out_shape = _io_shapes(model)
    num_outputs = size(out_shape)
    if num_outputs is None:
        raise ValueError(f"The model's output shape {list(out_shape)} is not fully known; "
                         "dlbridge needs a fixed number of outputs per row.")
    spec = tf.TensorSpec([None, *in_shape], tf.float32)
    forward = compiled_forward(lambda x: model(x, training=False), spec)
    return Loaded(model, forward, tuple(in_shape), num_outputs, _ends_in_probabilities(model))


def compiled_forward(call: Callable[[Any], Any], spec: Any) -> Callable[[np.ndarray], np.ndarray]:
    """``call`` traced once as a graph for ``spec`` (any batch size), as a numpy-to-numpy function.

    It is called as its concrete function (:mod:`dlbridge.graph_functions`), which skips
    ``tf.function``'s per-call argument dispatch: 0.4-1.0 ms less CPU per 1,024-row forward
    pass of a 784-256-256-10 MLP on one thread (8.5-8.8 against 9.3-9.5 ms, BENCHMARKS.md).
    Its input reaches TensorFlow with one copy at most (:mod:`dlbridge.inference.tensor_input`).
    """
    concrete = concrete_function(call, [spec])

    def forward(x: np.ndarray) -> np.ndarray:
        return concrete(float32_tensor(x)).numpy()

    return forward


def _io_shapes(model: Any) -> tuple[tuple[int | None, ...], tuple[int | None, ...]]:
    inputs, outputs = list(model.inputs or []), list(model.outputs or [])
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"dlbridge runs models with one input and one output tensor. Received a model "
                         f"with {len(inputs)} inputs and {len(outputs)} outputs; wrap it in a model that "
                         "concatenates its inputs or selects one output.")
    return tuple(inputs[0].shape[1:]), tuple(outputs[0].shape[1:])


def _ends_in_probabilities(model: Any) -> bool:
    """Whether the output layer already applies softmax or sigmoid (else: logits)."""
    layer = model.layers[-1] if model.layers else None
    if type(layer).__name__ == "Softmax":
        return True
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", "") in _PROBABILITY_ACTIVATIONS


def model_digest(model_bytes: bytes) -> str:
    """The cache key of a model: the sha256 hex digest of its bytes."""
    return hashlib.sha256(model_bytes).hexdigest()


def size(shape: Sequence[int | None]) -> int | None:
    return None if any(d is None for d in shape) else int(math.prod(shape))
