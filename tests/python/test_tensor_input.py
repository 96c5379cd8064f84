"""numpy batches reach TensorFlow with at most one copy, and always 64-byte aligned."""
from __future__ import annotations

import keras
import numpy as np
import pyarrow as pa
import pytest

from dlbridge.inference.model_cache import compiled_forward
from dlbridge.inference.tensor_input import ALIGNMENT, aligned_float32_copy, float32_tensor


def misaligned(values: np.ndarray, shift: int = 4) -> np.ndarray:
    """A writeable float32 copy of ``values`` whose memory starts ``shift`` bytes past a 64-byte boundary."""
    raw = np.empty(values.size * 4 + 2 * ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT + shift
    out = raw[start:start + values.size * 4].view(np.float32).reshape(values.shape)
    out[...] = values
    return out


def arrow_view(values: np.ndarray) -> np.ndarray:
    """``values`` as a read-only float32 view of an Arrow buffer, 4 bytes past its start, as a batch from Spark is."""
    buffer = pa.py_buffer(b"\0" * 4 + values.astype(np.float32).tobytes())
    return np.frombuffer(buffer, np.float32, values.size, 4).reshape(values.shape)


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return np.random.default_rng(7).standard_normal((1024, 784)).astype(np.float32)


def test_read_only_arrow_view_gives_its_values(batch) -> None:
    x = arrow_view(batch)
    assert not x.flags.writeable
    tensor = float32_tensor(x)  # TensorFlow would abort the process on memory less than 64-byte aligned
    np.testing.assert_array_equal(tensor.numpy(), batch)


def test_aligned_writeable_float32_is_used_in_place(batch) -> None:
    x = aligned_float32_copy(batch)
    tensor = float32_tensor(x)
    x[0, 0] = 12345.0
    assert tensor.numpy()[0, 0] == 12345.0  # the tensor shares x's memory: no copy was made


def test_misaligned_writeable_array_is_copied(batch) -> None:
    x = misaligned(batch)
    assert x.ctypes.data % ALIGNMENT == 4
    tensor = float32_tensor(x)
    x[0, 0] = 12345.0
    assert tensor.numpy()[0, 0] == batch[0, 0]


@pytest.mark.parametrize("make", [
    lambda b: b.astype(np.float64),            # converted in the same copy
    lambda b: np.asfortranarray(b),            # not C-contiguous
    lambda b: b[:, ::2],                       # strided
    lambda b: b.reshape(1024, 28, 28, 1),      # more dimensions
], ids=["float64", "fortran", "strided", "4d"])
def test_other_layouts_give_the_same_values(batch, make) -> None:
    x = make(batch)
    tensor = float32_tensor(x)
    assert tensor.dtype.name == "float32" and tuple(tensor.shape) == x.shape
    np.testing.assert_allclose(tensor.numpy(), x.astype(np.float32), rtol=0, atol=0)


def test_empty_batch() -> None:
    tensor = float32_tensor(np.zeros((0, 784), np.float32))
    assert tuple(tensor.shape) == (0, 784)


@pytest.mark.parametrize("rows", [1, 3, 17, 1024])
def test_copies_are_aligned_for_any_size(rows) -> None:
    copy = aligned_float32_copy(arrow_view(np.ones((rows, 5), np.float32)))
    assert copy.ctypes.data % ALIGNMENT == 0 and copy.flags.c_contiguous and copy.flags.writeable


def test_forward_pass_on_a_spark_batch_equals_keras(batch) -> None:
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    import tensorflow as tf

    forward = compiled_forward(lambda x: model(x, training=False), tf.TensorSpec([None, 784], tf.float32))
    np.testing.assert_allclose(forward(arrow_view(batch)), model.predict(batch, verbose=0), rtol=1e-5, atol=1e-6)
