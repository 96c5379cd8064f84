"""dlbridge.tensorflow_threads: one thread policy per process, observed in fresh interpreters."""
from __future__ import annotations

import subprocess
import sys

FRESH = """
import logging
import tensorflow as tf
from dlbridge import tensorflow_threads
logging.basicConfig(level=logging.INFO)
print(tensorflow_threads.configure(3), tensorflow_threads.configure(5),
      tf.config.threading.get_intra_op_parallelism_threads(), tf.config.threading.get_inter_op_parallelism_threads())
"""

ALREADY_RUNNING = """
import logging
import tensorflow as tf
from dlbridge import tensorflow_threads
logging.basicConfig(level=logging.INFO)
tf.constant(1.0) + 1.0  # TensorFlow's runtime starts: its pools are fixed from now on
print(tensorflow_threads.configure(3))
"""


def run(script: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)


def test_first_call_sizes_the_pools_and_later_calls_change_nothing() -> None:
    result = run(FRESH)
    assert result.stdout.split() == ["3", "3", "3", "1"], result.stderr[-2000:]
    assert "1 inter-op thread" in result.stderr and "3 intra-op thread(s)" in result.stderr


def test_tensorflow_already_running_keeps_its_pools_and_says_so() -> None:
    result = run(ALREADY_RUNNING)
    assert result.stdout.split() == ["0"], result.stderr[-2000:]  # 0: TensorFlow's default, all cores
    assert "TensorFlow was already initialised" in result.stderr and "instead of 3 and 1" in result.stderr
