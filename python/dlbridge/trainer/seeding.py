"""The fit's ``seed`` applied to the initial weights of the model it builds."""
from __future__ import annotations

import contextlib
import random
from typing import Iterator

import numpy as np


def keras_seed(seed: int) -> int:
    """A 32-bit seed for Keras, derived from all 64 bits of ``seed`` (numpy's ``SeedSequence``).

    >>> keras_seed(42) == keras_seed(42) != keras_seed(42 + 2 ** 32)
    True
    """
    return int(np.random.SeedSequence(seed % 2 ** 64).generate_state(1)[0])


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Runs the body (building a model) with Keras' random seeds set from ``seed``.

    ``keras.utils.set_random_seed`` seeds Python's ``random``, numpy's global
    generator, TensorFlow's global seed and Keras' own seed generator, which
    Keras initializers and layers created without a seed draw from. Python's
    and numpy's global states are restored afterwards, so that the caller's
    own random streams do not change; TensorFlow's global seed stays set (it
    cannot be read back), as after ``keras.utils.set_random_seed``.
    """
    import keras

    py_state, np_state = random.getstate(), np.random.get_state()
    keras.utils.set_random_seed(keras_seed(seed))
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
