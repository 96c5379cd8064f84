"""Executor-side Keras inference: an Arrow UDF factory with a per-worker model cache.

:func:`build_keras_udf` returns a Spark column function (an iterator Arrow UDF)
that runs a Keras model, given as the bytes of a ``.keras`` archive, over
Arrow batches on the executors. :func:`describe_model` reads a model's input
and output sizes, for schema validation before any job runs.

Design (DESIGN.md, "Inference"):

* The model is loaded once per Python worker process and cached under the
  sha256 of its bytes, in a least-recently-used cache of
  ``spark.dlbridge.inference.modelCacheSize`` models (default 4, read on the
  driver when the UDF is built); it is always loaded with ``safe_mode=True``,
  so loading never executes code from the file.
* Arrow list arrays go to a 2-D float32 numpy array without per-row Python
  work: the list's flat ``values`` buffer is reshaped (zero-copy for
  ``array<float>``).
* Rows go through a ``tf.function``-compiled forward pass in slices of
  ``batch_size`` rows; TensorFlow's intra-op threads are sized once per worker
  to the cores Spark gives a task (``spark.task.cpus``), so concurrent tasks do
  not oversubscribe the executor's cores (:mod:`dlbridge.tensorflow_threads`,
  the policy the trainer's workers share).
* The UDF closure captures only bytes, ints and strings. PySpark broadcasts a
  pickled command larger than ``spark.broadcast.UDFCompressionThreshold``
  (1 MiB), so large models are not re-sent with every task.
"""
from dlbridge.inference.arrow_io import OUTPUT_TYPES
from dlbridge.inference.model_cache import describe_model, load_model_bytes
from dlbridge.inference.udf import TASKS, build_keras_udf

__all__ = ["build_keras_udf", "describe_model", "load_model_bytes", "OUTPUT_TYPES", "TASKS"]
