"""numpy batches handed to TensorFlow with at most one copy of their values.

``tf.constant`` copies a numpy array twice: once in Python, so that the tensor
cannot change with the array, and once more in C++ when that copy is not aligned
to 64 bytes, which TensorFlow requires of memory it uses (numpy aligns to 16).
For the 1,024-row batches of 784 float32 values in ``bench/bench_inference.py``
the two copies took 0.4-0.5 ms of the Python worker's main thread per forward
pass of 7-8 ms (BENCHMARKS.md, "Inference").
"""
from __future__ import annotations

from typing import Any

import numpy as np

#: Alignment, in bytes, of the memory handed to TensorFlow: the largest Eigen uses (AVX-512).
#: TensorFlow aborts the process, not just the call, on a tensor whose memory is less aligned.
ALIGNMENT = 64


def float32_tensor(x: np.ndarray) -> Any:
    """``x`` as an eager float32 TensorFlow tensor, its values copied at most once.

    An ``x`` that is already float32, C-contiguous, writeable and 64-byte aligned
    is used in place; any other is converted and copied once into new 64-byte
    aligned memory (Arrow buffers are read-only, so batches read from Spark take
    this copy). TensorFlow receives the memory through DLPack and keeps it alive
    while it uses it. When ``x`` is used in place, the tensor shares its memory:
    do not write to ``x`` while the tensor, or a result that may alias it, is in use.
    Empty arrays go through ``tf.constant``.
    """
    import tensorflow as tf

    if x.size == 0:
        return tf.constant(x, tf.float32)
    if not (x.dtype == np.float32 and x.flags.c_contiguous and x.flags.writeable
            and x.ctypes.data % ALIGNMENT == 0):
        x = aligned_float32_copy(x)
    return tf.experimental.dlpack.from_dlpack(x.__dlpack__())


def aligned_float32_copy(x: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 copy of ``x`` whose first value is ``ALIGNMENT``-byte aligned."""
    nbytes = x.size * 4
    raw = np.empty(nbytes + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    out = raw[start:start + nbytes].view(np.float32).reshape(x.shape)
    np.copyto(out, x, casting="unsafe")
    return out
