"""Executor-side model runtime: one per Python worker process, reused across tasks and epochs."""
from __future__ import annotations

import importlib
import logging
from typing import Any

import numpy as np

from dlbridge import tensorflow_threads
from dlbridge.graph_functions import concrete_function
from dlbridge.trainer.weights import weighted_loss

logger = logging.getLogger("dlbridge.trainer")
_CACHE: dict[str, "ModelRuntime"] = {}
CACHED_FITS = 2  # runtimes kept per Python worker (two fits may interleave their tasks)


class _GraphStep:
    """A step of the runtime, traced on its first call (:mod:`dlbridge.graph_functions`).

    A step is traced only if the fit calls it; a user's loss inside it is converted by
    AutoGraph on its own (``objectives.loss_for``). The traced function takes exactly one positional parameter per entry of the
    signature: a concrete function first binds a call to its Python signature, and a step
    with an optional parameter the signature leaves out (``w=None``) fails that binding on
    every call, after formatting the arguments' values into the error it then discards
    (about 1 ms per call on 2 cores, a tenth of a step).
    """

    def __init__(self, step: Any, signature: list) -> None:
        self._step = step
        self._signature = signature
        self._concrete: Any = None

    def __call__(self, *args: Any) -> Any:
        """Runs the step on arrays or tensors, one per entry of the signature, in its order."""
        import tensorflow as tf

        if self._concrete is None:
            self._concrete = concrete_function(_positional(self._step, len(self._signature)), self._signature)
        return self._concrete(*(tf.convert_to_tensor(a, spec.dtype) for a, spec in zip(args, self._signature)))


def _positional(step: Any, count: int) -> Any:
    """``step`` as a function of exactly ``count`` (1 to 4) positional parameters."""
    wrappers = {1: lambda a: step(a), 2: lambda a, b: step(a, b), 3: lambda a, b, c: step(a, b, c),
                4: lambda a, b, c, d: step(a, b, c, d)}
    return wrappers[count]


def runtime_for(spec: Any) -> "ModelRuntime":
    """The cached runtime of this fit, built on first use; the least recently used beyond 2 is dropped."""
    runtime = _CACHE.pop(spec.fit_id, None)
    if runtime is None:
        runtime = ModelRuntime(spec)
        while len(_CACHE) >= CACHED_FITS:
            _CACHE.pop(next(iter(_CACHE)))
    _CACHE[spec.fit_id] = runtime
    return runtime


def forget(fit_id: str) -> None:
    """Drop this process's runtime of the fit, if it has one (the driver's, once the fit ends)."""
    _CACHE.pop(fit_id, None)


def _import_factory_module(module: str) -> None:
    """Import a model factory's module so that custom objects it registers are known here."""
    try:
        importlib.import_module(module)
    except ImportError as e:
        logger.warning("model factory module %r is not importable on this executor (%s); this only "
                       "matters if the model uses custom objects defined there", module, e)


def _metric_set(model: Any, spec: Any) -> Any:
    """The validation metrics of ``spec.options.metrics`` for this worker's model."""
    from dlbridge.trainer.metrics import MetricSet

    outputs = int(model.compute_output_shape((None, spec.input_dim))[-1])
    return MetricSet(spec.options.metrics, spec.sparse, outputs, spec.from_logits, spec.label_dim)


class ModelRuntime:
    """The worker's copy of the model with compiled gradient, update and evaluation steps."""

    def __init__(self, spec: Any) -> None:
        tensorflow_threads.configure()  # intra-op = spark.task.cpus, inter-op = 1, once per process
        import keras
        import tensorflow as tf

        from dlbridge.trainer.objectives import loss_for, make_optimizer

        for module in spec.imports:
            _import_factory_module(module)
        self.model = keras.models.model_from_json(spec.model_json)
        if not self.model.built:
            self.model.build((None, spec.input_dim))
        self.variables = list(self.model.trainable_variables)
        self.sizes = [int(np.prod(v.shape)) for v in self.variables]
        if sum(self.sizes) != spec.num_params:
            raise RuntimeError(f"Model rebuilt on the executor has {sum(self.sizes)} trainable parameters; "
                               f"the driver's has {spec.num_params}. Custom layers must be importable here.")
        self.loss = loss_for(spec.loss, spec.from_logits, spec.custom_loss)
        self.classification = spec.task == "classification"
        self.from_logits = spec.from_logits
        self.local_optimizer = make_optimizer(spec.options) if spec.options.stepsPerSync > 1 else None
        self.metric_set = _metric_set(self.model, spec) if spec.options.metrics else None
        y_spec = tf.TensorSpec([None] if spec.sparse else [None, spec.label_dim or 1],
                               tf.int32 if spec.sparse else tf.float32)
        signature = [tf.TensorSpec([None, spec.input_dim], tf.float32), y_spec]
        if spec.options.weightCol:  # the mini-batches carry per-row sample weights
            signature.append(tf.TensorSpec([None], tf.float32))
        flat_spec = tf.TensorSpec([spec.num_params], tf.float32)
        self.assign_and_gradient = _GraphStep(self._assign_and_gradient, [flat_spec] + signature)
        self.gradient = _GraphStep(self._gradient, signature)
        self._options = spec.options
        self._server_copy: Any = None
        self.evaluate = _GraphStep(self._evaluate, signature)
        self.assign = _GraphStep(self._assign, [flat_spec])
        if self.local_optimizer is not None:
            self.local_optimizer.build(self.variables)
            self.local_step = _GraphStep(self._local_step, signature)

    def server_copy(self) -> Any:
        """This worker's copy of the parameter server's store: its model's weights and a fresh optimizer.

        ``sync`` workers apply each round's averaged gradient through it, with
        the server's optimizer state loaded at the start of every epoch: the
        server's own update function (:class:`dlbridge.trainer.store.WeightStore`)
        on the same values, so every worker holds the same weights. Built on
        first use, once per fit in this Python worker.
        """
        if self._server_copy is None:
            from dlbridge.trainer.objectives import make_optimizer
            from dlbridge.trainer.store import WeightStore

            self._server_copy = WeightStore(self.model, make_optimizer(self._options), locked=False)
        return self._server_copy

    def state(self) -> np.ndarray:
        """Non-trainable float state (e.g. BatchNormalization statistics), flat float32."""
        from dlbridge.trainer.state import flat_state

        return flat_state(self.model)

    def weights(self) -> np.ndarray:
        """Current trainable weights, flat float32."""
        return np.concatenate([np.asarray(v.numpy(), dtype=np.float32).ravel() for v in self.variables])

    def _loss(self, x, y, w=None):
        predictions = self.model(x, training=True)
        loss = weighted_loss(self.loss, y, predictions, w)
        if self.model.losses:
            loss = loss + sum(self.model.losses)
        return loss

    def _gradient(self, x, y, w=None):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = self._loss(x, y, w)
        grads = tape.gradient(loss, self.variables)
        flat = [tf.reshape(tf.zeros_like(v) if g is None else tf.cast(g, tf.float32), [-1])
                for g, v in zip(grads, self.variables)]
        return loss, tf.concat(flat, 0)

    def _assign_and_gradient(self, flat, x, y, w=None):
        """Load the flat weights ``flat``, then ``(loss, flat gradient)`` at them: one call per exchange."""
        self._assign(flat)  # the variables' reads below are ordered after these writes by tf.function
        return self._gradient(x, y, w)

    def _local_step(self, x, y, w=None):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = self._loss(x, y, w)
        grads = tape.gradient(loss, self.variables)
        self.local_optimizer.apply_gradients(zip(grads, self.variables))
        return loss

    def _evaluate(self, x, y, w=None):
        import tensorflow as tf

        predictions = self.model(x, training=False)
        loss = weighted_loss(self.loss, y, predictions, w)
        if self.metric_set is not None:
            self.metric_set.update(y, predictions)  # unweighted, as Keras' compile(metrics=...)
        if not self.classification:
            return loss, tf.constant(0, tf.int64)
        if predictions.shape[-1] == 1:
            threshold = 0.0 if self.from_logits else 0.5
            predicted = tf.cast(predictions[:, 0] > threshold, tf.int64)
            truth = tf.cast(tf.reshape(y, [-1]) > 0.5, tf.int64)
        else:
            predicted = tf.argmax(predictions, axis=-1)
            truth = tf.cast(y, tf.int64) if len(y.shape) == 1 else tf.argmax(y, axis=-1)
        return loss, tf.reduce_sum(tf.cast(tf.equal(predicted, truth), tf.int64))

    def _assign(self, flat) -> None:
        import tensorflow as tf

        for v, part in zip(self.variables, tf.split(flat, self.sizes)):
            v.assign(tf.cast(tf.reshape(part, v.shape), v.dtype))
