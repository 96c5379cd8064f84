"""dlbridge.tensorflow_threads: one thread and log policy per process, observed in fresh interpreters."""
from __future__ import annotations

import os
import subprocess
import sys

FRESH = """
import logging
from dlbridge import tensorflow_threads
logging.basicConfig(level=logging.INFO)
print(tensorflow_threads.configure(3), tensorflow_threads.configure(5))
import tensorflow as tf
print(tf.config.threading.get_intra_op_parallelism_threads(), tf.config.threading.get_inter_op_parallelism_threads())
"""
# TensorFlow 2.21 prints these while it is imported, whatever TF_CPP_MIN_LOG_LEVEL says.
IMPORT_NOTICES = ("oneDNN custom operations are on", "absl::InitializeLog")

ALREADY_RUNNING = """
import logging
import tensorflow as tf
from dlbridge import tensorflow_threads
logging.basicConfig(level=logging.INFO)
tf.constant(1.0) + 1.0  # TensorFlow's runtime starts: its pools are fixed from now on
print(tensorflow_threads.configure(3))
"""


def run(script: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True,
                          env={**environment, **env})


def test_first_call_sizes_the_pools_and_later_calls_change_nothing() -> None:
    """... and imports TensorFlow without its C++ notices (TF_CPP_MIN_LOG_LEVEL not set)."""
    result = run(FRESH)
    assert result.stdout.split() == ["3", "3", "3", "1"], result.stderr[-2000:]
    assert "1 inter-op thread" in result.stderr and "3 intra-op thread(s)" in result.stderr
    assert not any(notice in result.stderr for notice in IMPORT_NOTICES), result.stderr[-2000:]


def test_level_0_set_by_the_user_shows_every_notice() -> None:
    result = run(FRESH, TF_CPP_MIN_LOG_LEVEL="0")
    assert result.stdout.split() == ["3", "3", "3", "1"], result.stderr[-2000:]
    assert all(notice in result.stderr for notice in IMPORT_NOTICES), result.stderr[-2000:]


def test_a_level_the_user_set_also_applies_to_the_import_notices() -> None:
    """TensorFlow ignores TF_CPP_MIN_LOG_LEVEL for its import notices; dlbridge applies it to them."""
    info_hidden = run(FRESH, TF_CPP_MIN_LOG_LEVEL="1").stderr
    assert "oneDNN custom operations are on" not in info_hidden and "absl::InitializeLog" in info_hidden, info_hidden
    warnings_hidden = run(FRESH, TF_CPP_MIN_LOG_LEVEL="2").stderr
    assert not any(notice in warnings_hidden for notice in IMPORT_NOTICES), warnings_hidden[-2000:]


def test_tensorflow_already_running_keeps_its_pools_and_says_so() -> None:
    result = run(ALREADY_RUNNING)
    assert result.stdout.split() == ["0"], result.stderr[-2000:]  # 0: TensorFlow's default, all cores
    assert "TensorFlow was already initialised" in result.stderr and "instead of 3 and 1" in result.stderr
