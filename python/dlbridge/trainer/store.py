"""The parameter server's weights and optimizer, addressed as one flat float32 vector."""
from __future__ import annotations

import itertools
import logging
import threading
from contextlib import nullcontext
from typing import Any, ContextManager

import numpy as np

from dlbridge.graph_functions import concrete_function

logger = logging.getLogger("dlbridge.trainer")

#: Models with at least this many trainable parameters get the XLA-compiled optimizer update.
XLA_MIN_PARAMS = 100_000


class WeightStore:
    """Trainable weights of a Keras model plus the optimizer that updates them.

    Parameters
    ----------
    model : keras.Model
        A built model; its trainable variables are the served weights.
    optimizer : keras.optimizers.Optimizer
        Applies pushed gradients.
    locked : bool
        ``True`` serialises updates and reads under one lock (``async`` and
        ``sync`` modes). ``False`` (``hogwild``) lets threads read the weights
        and add weight deltas without a lock, even while a gradient is being
        applied; gradients still go through the optimizer one at a time.
        Defaults to ``True``.

    Notes
    -----
    Why gradients are applied one at a time even in ``hogwild``: an adaptive
    optimizer (Adam, RMSprop, Adagrad, ...) divides by its second-moment
    estimate. Two updates running together can read a coordinate's first
    moment after the other one wrote it but the second moment before, which is
    still about zero for a feature that is seldom non-zero, and the step is
    then millions of times the learning rate. Two threads pushing gradients
    that were non-zero in 1% or 0.1% of coordinates into a lock-free Adam
    moved single weights by 978-4,501 in 800 steps at learning rate 0.005 (in
    3 of 6 runs), where a step moves a weight by at most about 0.016.
    """

    def __init__(self, model, optimizer, locked: bool = True) -> None:
        import tensorflow as tf

        self.variables = list(model.trainable_variables)
        if not self.variables:
            raise ValueError("The model has no trainable weights; there is nothing to train.")
        self.shapes = [tuple(int(d) for d in v.shape) for v in self.variables]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.num_params = int(sum(self.sizes))
        self.optimizer = optimizer
        #: Held by every gradient update and every load of the optimizer state.
        self._optimizer_lock = threading.Lock()
        #: Held by every read, delta and load: the optimizer's lock (``locked``) or none (``hogwild``).
        self._lock: ContextManager = self._optimizer_lock if locked else nullcontext()
        self._versions = itertools.count(1)
        self.version = 0
        optimizer.build(self.variables)
        spec = [tf.TensorSpec([self.num_params], tf.float32)]

        def concrete(graph, signature=spec, **options):
            # Traced here, once, before any thread calls it (dlbridge.graph_functions): the server pays
            # tf.function's argument dispatch (0.2-0.5 ms) for the update and the read of every push otherwise.
            return concrete_function(graph, signature, **options)

        self._read_fn = concrete(self._read_graph, signature=[])
        self._grad_plain = concrete(self._apply_graph)
        self._delta_fn = concrete(self._delta_graph)
        # XLA fuses the optimizer update (about 2x faster for Adam on CPU at 269,322 parameters), but
        # compiling it costs most of a second per fit, more than a small model's whole fit saves.
        # Optimizers or ops XLA cannot compile fall back to the plain graph on first use.
        self._grad_fn = self._grad_plain
        if self.num_params >= XLA_MIN_PARAMS:
            self._grad_fn = concrete(self._apply_graph, jit_compile=True)

    def read(self) -> tuple[int, np.ndarray]:
        """``(version, weights)``: the number of updates applied and a flat copy."""
        with self._lock:
            return self.version, self._read_fn().numpy()

    def read_with_optimizer(self) -> tuple[int, np.ndarray, bytes]:
        """``(version, weights, optimizer state)`` read together: the state as :meth:`optimizer_state`."""
        with self._lock:
            return self.version, self._read_fn().numpy(), self.optimizer_state()

    def optimizer_state(self) -> bytes:
        """Every optimizer variable's value (iterations, moments, ...), as raw little-endian bytes in order."""
        return b"".join(np.ascontiguousarray(v.numpy(), np.dtype(v.dtype).newbyteorder("<")).tobytes()
                        for v in self.optimizer.variables)

    def load(self, weights: np.ndarray, optimizer_state: bytes | memoryview, version: int) -> None:
        """Set the flat weights and the optimizer state (as :meth:`load_optimizer_state`) together.

        Raises
        ------
        ValueError
            If ``weights`` is not :attr:`num_params` values or the state does not fit the optimizer.
        """
        if len(weights) != self.num_params:
            raise ValueError(f"{len(weights)} weights; the model has {self.num_params}")
        self._check_optimizer_state(optimizer_state)
        with self._optimizer_lock:
            self._assign_optimizer_state(optimizer_state)
            for v, part in zip(self.variables, np.split(np.asarray(weights, np.float32), np.cumsum(self.sizes)[:-1])):
                v.assign(part.reshape(v.shape).astype(v.dtype, copy=False))
            self.version = version

    @property
    def optimizer_state_size(self) -> int:
        """Bytes of :meth:`read_with_optimizer`'s optimizer state (fixed once the optimizer is built)."""
        return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in self.optimizer.variables)

    def load_optimizer_state(self, data: bytes | memoryview) -> None:
        """Set every optimizer variable (iterations, moments, ...) from another store's optimizer state.

        The two optimizers must be the same class with the same options, built
        over the same model; their states then have the same size.

        Raises
        ------
        ValueError
            If ``data`` does not hold exactly this optimizer's :attr:`optimizer_state_size` bytes.
        """
        self._check_optimizer_state(data)
        with self._optimizer_lock:
            self._assign_optimizer_state(data)

    def _check_optimizer_state(self, data: bytes | memoryview) -> None:
        if len(data) != self.optimizer_state_size:
            raise ValueError(f"optimizer state of {len(data)} bytes; {type(self.optimizer).__name__} over this "
                             f"model holds {self.optimizer_state_size}")

    def _assign_optimizer_state(self, data: bytes | memoryview) -> None:
        offset = 0
        for v in self.optimizer.variables:
            dtype = np.dtype(v.dtype).newbyteorder("<")
            count = int(np.prod(v.shape))
            v.assign(np.frombuffer(data, dtype, count, offset).reshape(v.shape))
            offset += count * dtype.itemsize

    def apply(self, values: np.ndarray, delta: bool = False) -> None:
        """Apply a flat gradient through the optimizer, or add a flat weight delta."""
        import tensorflow as tf

        values = tf.constant(values, tf.float32)
        with self._optimizer_lock if not delta else self._lock:
            if delta:
                self._delta_fn(values)
            else:
                self._apply_gradient(values)
            self.version = next(self._versions)

    def _apply_gradient(self, values: Any) -> None:  # a float32 tf.Tensor of num_params values
        import tensorflow as tf

        try:
            self._grad_fn(values)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as e:
            if self._grad_fn is self._grad_plain:
                raise
            logger.info("XLA cannot compile the %s update (%s); using the plain graph",
                        type(self.optimizer).__name__, str(e).splitlines()[0])
            self._grad_fn = self._grad_plain
            self._grad_plain(values)

    def _split(self, flat):
        import tensorflow as tf

        parts = tf.split(flat, self.sizes)
        return [tf.cast(tf.reshape(t, s), v.dtype) for t, s, v in zip(parts, self.shapes, self.variables)]

    def _read_graph(self):
        import tensorflow as tf

        return tf.concat([tf.reshape(tf.cast(v, tf.float32), [-1]) for v in self.variables], 0)

    def _apply_graph(self, flat) -> None:
        self.optimizer.apply_gradients(zip(self._split(flat), self.variables))

    def _delta_graph(self, flat) -> None:
        for v, d in zip(self.variables, self._split(flat)):
            v.assign_add(d)
