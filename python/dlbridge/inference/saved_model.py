"""TensorFlow SavedModels as Keras stages: loaded through ``keras.layers.TFSMLayer``.

``KerasModel.fromSavedModel(path, endpoint)`` (Scala, Java, PySpark) packs the
SavedModel directory into one zip archive on the JVM driver (read through the
Hadoop FS API) and keeps it as the stage's ``saved_model.zip`` state file: it
is saved in the stage's ``data/`` directory and broadcast to the executors like
a ``.keras`` archive. Here, on the driver (:func:`describe`) and once per Python
worker (:func:`load_prepared`, cached by :mod:`dlbridge.worker_cache`), the
archive is unpacked into a fresh temporary directory, loaded with
``keras.layers.TFSMLayer(dir, call_endpoint=endpoint)`` (which reads every
variable into memory) and the directory is removed.

A SavedModel is trusted like a model file: its graph runs TensorFlow ops only,
and nothing here imports or executes Python code named by the archive. The
endpoint must take one input tensor and return one output tensor (alone or as
the only entry of a dict, as signatures return).
"""
from __future__ import annotations

import io
import logging
import os
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from typing import Any, Iterator, List, Tuple

import numpy as np

from dlbridge import tensorflow_threads
from dlbridge.inference.model_cache import Loaded, compiled_forward, size

__all__ = ["ARCHIVE", "describe", "load_layer", "load_prepared"]

logger = logging.getLogger("dlbridge.inference")

ARCHIVE = "saved_model.zip"
"""The state file (and saved ``data/`` file) holding the SavedModel directory as a zip archive
(Scala's ``KerasSavedModel.Archive``, which names the file the JVM sends)."""

# Ops between a graph's output and the op that computes it, looked through when deciding
# whether a classifier's output already holds probabilities.
_PASS_THROUGH = ("Identity", "IdentityN")
_CALLS = ("PartitionedCall", "StatefulPartitionedCall")
_PROBABILITY_OPS = ("Softmax", "Sigmoid")


@contextmanager
def unpacked(archive: bytes, source: str) -> Iterator[str]:
    """A temporary directory holding the SavedModel of ``archive``, removed on exit.

    ``zipfile`` keeps every member inside the directory (absolute names and
    ``..`` parts are dropped). ``source`` names the SavedModel in errors.
    """
    directory = tempfile.mkdtemp(prefix="dlbridge-savedmodel-")
    try:
        try:
            with zipfile.ZipFile(io.BytesIO(bytes(archive))) as zf:
                zf.extractall(directory)
        except zipfile.BadZipFile as e:
            raise ValueError(f"{source}: the stage's {ARCHIVE} ({len(archive)} bytes) is not a zip archive ({e}). "
                             "Fix: make the stage again with KerasModel.fromSavedModel(path).") from None
        if not os.path.isfile(os.path.join(directory, "saved_model.pb")):
            raise ValueError(f"{source} is not a TensorFlow SavedModel: it holds no saved_model.pb. Fix: pass the "
                             "directory written by tf.saved_model.save(obj, dir) or model.export(dir).")
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def endpoints(loaded: Any) -> List[str]:
    """The endpoints of a loaded SavedModel: its signatures and its restored ``tf.function`` attributes."""
    import tensorflow as tf

    functions = [name for name in dir(loaded) if not name.startswith("_")
                 and isinstance(getattr(loaded, name, None), tf.types.experimental.GenericFunction)]
    return sorted(set(loaded.signatures) | set(functions))


def load_layer(archive: bytes, endpoint: str, source: str = "The SavedModel") -> Any:
    """``keras.layers.TFSMLayer`` of the SavedModel in ``archive`` calling ``endpoint`` (uncached).

    Raises
    ------
    ValueError
        If the archive holds no SavedModel, TensorFlow cannot load it, or it has
        no endpoint ``endpoint`` (the message lists the endpoints it has).
    """
    import keras
    import tensorflow as tf

    with unpacked(archive, source) as directory:
        try:
            return keras.layers.TFSMLayer(directory, call_endpoint=endpoint)
        except (OSError, ValueError, TypeError, AttributeError, tf.errors.OpError) as e:
            raise _diagnosed(directory, endpoint, source, e) from None


def _diagnosed(directory: str, endpoint: str, source: str, error: BaseException) -> ValueError:
    """Why TFSMLayer failed: the SavedModel does not load, lacks the endpoint (listing those it has), or else."""
    import tensorflow as tf

    text = str(error).replace(directory, source)[:500]
    try:
        found = endpoints(tf.saved_model.load(directory))
    except (OSError, ValueError, tf.errors.OpError) as e:
        return ValueError(f"{source} cannot be loaded as a TensorFlow SavedModel ({type(e).__name__}: "
                          f"{str(e).replace(directory, source)[:500]}). Fix: pass the directory written by "
                          "tf.saved_model.save(obj, dir) or model.export(dir).")
    if endpoint not in found:
        return ValueError(f"{source} has no endpoint '{endpoint}'; its endpoints: {', '.join(found) or 'none'}. "
                          "Fix: pass one of them as the endpoint (model.export writes 'serve' and "
                          "'serving_default'; tf.saved_model.save writes the signatures it is given).")
    return ValueError(f"{source}: keras.layers.TFSMLayer cannot call endpoint '{endpoint}' "
                      f"({type(error).__name__}: {text}). Fix: export a function of one input tensor.")


def _io_specs(layer: Any, endpoint: str, source: str) -> Tuple[Any, Any, Any]:
    """The endpoint's one input spec, one output spec and its concrete function."""
    import tensorflow as tf

    function = layer.call_endpoint_fn
    if not isinstance(function, tf.types.experimental.ConcreteFunction):
        concrete = list(getattr(function, "concrete_functions", []) or [])
        if len(concrete) != 1:
            raise ValueError(f"{source}: endpoint '{endpoint}' has {len(concrete)} traced input signatures; dlbridge "
                             "needs exactly one. Fix: export the function with one input_signature.")
        function = concrete[0]
    inputs = tf.nest.flatten(function.structured_input_signature)
    outputs = tf.nest.flatten(function.structured_outputs)
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"{source}: endpoint '{endpoint}' takes {len(inputs)} input tensor(s) and returns "
                         f"{len(outputs)} output tensor(s) ({function.structured_outputs}); dlbridge runs "
                         "endpoints of one input and one output tensor. Fix: export a function that "
                         "concatenates its inputs and returns one tensor.")
    return inputs[0], outputs[0], function


def describe(archive: bytes, endpoint: str, source: str = "The SavedModel") -> dict:
    """Input and output shapes (no batch dimension) of ``endpoint``, as ``describe_model`` gives for ``.keras``.

    Raises
    ------
    ValueError
        As :func:`load_layer`, or if the endpoint's shapes are not fully known
        (besides the batch dimension) or its input is not a number.
    """
    return _shapes(*_io_specs(load_layer(archive, endpoint, source), endpoint, source)[:2], endpoint, source)


def _shapes(input_spec: Any, output_spec: Any, endpoint: str, source: str) -> dict:
    known = input_spec.shape.rank and output_spec.shape.rank  # rank >= 1 (a batch dimension) and known
    in_shape = list(input_spec.shape)[1:] if known else [None]
    out_shape = list(output_spec.shape)[1:] if known else [None]
    if size(in_shape) is None or size(out_shape) is None:
        raise ValueError(f"{source}: endpoint '{endpoint}' has input shape {input_spec.shape} and output "
                         f"shape {output_spec.shape}; dlbridge needs both fully known besides the batch "
                         "dimension. Fix: export with a fixed input_signature, e.g. tf.TensorSpec([None, 4]).")
    if not (input_spec.dtype.is_floating or input_spec.dtype.is_integer):
        raise ValueError(f"{source}: endpoint '{endpoint}' takes {input_spec.dtype.name} input; dlbridge feeds "
                         "numbers. Fix: export a function with a numeric input_signature.")
    return {"inputShape": [int(d) for d in in_shape], "outputShape": [int(d) for d in out_shape]}


def load_prepared(archive: bytes, endpoint: str, threads: int | None = None) -> Loaded:
    """The SavedModel's endpoint with its compiled forward pass (float32 rows in, one output matrix out).

    Sizes TensorFlow's threads first, as ``model_cache.load_prepared`` does. A
    classifier's output is taken as probabilities when the endpoint's graph
    computes it with Softmax or Sigmoid, else as logits (the rule ``.keras``
    models follow by their last layer's activation).
    """
    import tensorflow as tf

    intra = tensorflow_threads.configure(threads)
    source = f"SavedModel (endpoint '{endpoint}')"
    layer = load_layer(archive, endpoint, source)
    input_spec, output_spec, function = _io_specs(layer, endpoint, source)
    shapes = _shapes(input_spec, output_spec, endpoint, source)
    dtype = input_spec.dtype
    spec = tf.TensorSpec([None, *shapes["inputShape"]], tf.float32)
    forward = compiled_forward(lambda x: tf.nest.flatten(layer(tf.cast(x, dtype)))[0], spec)

    logger.info("loaded SavedModel (%d bytes, endpoint %s) in pid %d; intra-op threads %s", len(archive), endpoint,
                os.getpid(), intra)
    return Loaded(layer, forward, tuple(shapes["inputShape"]), int(np.prod(shapes["outputShape"])),
                  ends_in_probabilities(function))


def ends_in_probabilities(function: Any) -> bool:
    """Whether the concrete function's output is computed by Softmax or Sigmoid.

    Follows the output back through Identity ops and into called functions
    (``PartitionedCall``/``StatefulPartitionedCall``) of the graph's library.
    """
    graph = function.graph.as_graph_def()
    library = {f.signature.name: f for f in graph.library.function}
    nodes = {n.name: n for n in graph.node}
    top_level = True  # the graph's inputs read "node:index"; a function's read "node:arg:index"
    name, index = _split(function.outputs[0].name, top_level)
    for _ in range(100):  # a bound against malformed graphs
        node = nodes.get(name)
        if node is None:  # a function argument: the output is an input
            return False
        if node.op in _PASS_THROUGH:
            name, index = _split(node.input[index if node.op == "IdentityN" else 0], top_level)
        elif node.op in _CALLS and node.attr["f"].func.name in library:
            called = library[node.attr["f"].func.name]
            nodes, top_level = {n.name: n for n in called.node_def}, False
            name, index = _split(called.ret[called.signature.output_arg[index].name], top_level)
        else:
            return node.op in _PROBABILITY_OPS
    return False


def _split(reference: str, top_level: bool) -> Tuple[str, int]:
    """(node name, output index) of a tensor reference: ``node:index`` at top level, ``node:arg:index`` in a function."""
    parts = reference.lstrip("^").split(":")
    if top_level or len(parts) < 3:
        return parts[0], int(parts[1]) if len(parts) == 2 and parts[1].isdigit() else 0
    return parts[0], int(parts[2])
