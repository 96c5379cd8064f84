"""TensorFlow functions traced once and called as concrete functions: dlbridge's one way to compile a step.

Every compiled step in dlbridge (the workers' training and evaluation steps, the
parameter server's read and update, the inference forward pass) is built by
:func:`concrete_function`, for the same three reasons:

* **Called as its concrete function**, a step skips ``tf.function``'s per-call
  argument dispatch: 0.2-1.0 ms of CPU per call on this project's 2-core
  benchmark machine (BENCHMARKS.md), paid on every mini-batch, push and
  forward pass otherwise.
* **Traced once, for one input signature, and not called through**
  ``tf.function``: every fit and every loaded model builds new functions, and
  TensorFlow counts traces of the same Python method across ``tf.function``
  objects; called through them, a few fits would print "triggered tf.function
  retracing" warnings on the executors' console.
* **Without AutoGraph**: the steps are straight-line code, and AutoGraph's
  generated source files would be left in the temp directory by Python workers
  that exit without running ``atexit``.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence


def concrete_function(function: Callable[..., Any], signature: Sequence[Any], **options: Any) -> Any:
    """``function`` traced now, as a graph for ``signature``, and returned as its concrete function.

    Parameters
    ----------
    function : callable
        Straight-line TensorFlow code, one positional parameter per entry of ``signature``.
    signature : sequence of tf.TensorSpec
        The input signature; a ``None`` dimension accepts any size there (e.g. the batch).
    **options
        Passed to ``tf.function``, e.g. ``jit_compile=True`` for XLA.

    Returns
    -------
    tensorflow ConcreteFunction
        Call it with tensors (or arrays) in the signature's order.
    """
    import tensorflow as tf

    return tf.function(function, input_signature=list(signature), autograph=False, **options).get_concrete_function()
