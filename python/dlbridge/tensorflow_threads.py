"""TensorFlow's process-wide settings (thread pools, C++ log level), applied once per process.

Threads: intra-op threads are the count asked for, else the running Spark task's
``spark.task.cpus`` (``TaskContext.cpus()``), else the machine's cores outside
a task; inter-op threads are 1, since each task drives one model step at a time
and Spark already runs tasks in parallel. The pools can be sized only before
TensorFlow runs its first op, so the first call in a process decides; if
TensorFlow was already initialised, the pools it has are kept and logged.

Logs: when :func:`configure` is the first to import TensorFlow in a process
(on the executors' Python workers: the first training step or model load) and
``TF_CPP_MIN_LOG_LEVEL`` is not set, it sets ``TF_CPP_MIN_LOG_LEVEL=2``
(TensorFlow's C++ INFO and WARNING messages hidden, errors shown). Whatever the
level in effect (set here or by the user, e.g.
``spark.executorEnv.TF_CPP_MIN_LOG_LEVEL=0``), it is also applied to the
notices TensorFlow 2.21 prints while it is imported, which ignore that
variable: at 1 or more its INFO lines ("oneDNN custom operations are on") are
dropped, at 2 or more also its WARNING lines (absl's "All log messages before
absl::InitializeLog()"). At 0 TensorFlow prints everything, as it would alone.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
from typing import Any, Iterator

logger = logging.getLogger("dlbridge.tensorflow")

_lock = threading.Lock()
_configured: list[int] = []  # the intra-op count in effect, once configured in this process


def configure(intra_op_threads: int | None = None) -> int:
    """Size TensorFlow's thread pools for this process, once; later calls change nothing.

    Parameters
    ----------
    intra_op_threads : int, optional
        Intra-op threads. Defaults to `None`: the running task's ``spark.task.cpus``
        (the machine's core count outside a Spark task).

    Returns
    -------
    int
        The intra-op thread count in effect (0 means TensorFlow's own default: all cores).
    """
    with _lock:
        if _configured:
            return _configured[0]
        tf = _import_tensorflow()
        wanted = intra_op_threads or _task_cpus()
        try:
            tf.config.threading.set_intra_op_parallelism_threads(wanted)
            tf.config.threading.set_inter_op_parallelism_threads(1)
            logger.info("TensorFlow in pid %d: %d intra-op thread(s), 1 inter-op thread", os.getpid(), wanted)
            _configured.append(wanted)
        except RuntimeError as e:  # TensorFlow already ran an op in this process
            intra = tf.config.threading.get_intra_op_parallelism_threads()
            inter = tf.config.threading.get_inter_op_parallelism_threads()
            logger.info("TensorFlow was already initialised in pid %d before dlbridge could size its thread "
                        "pools (%s); it keeps %d intra-op and %d inter-op thread(s) (0: all cores) instead of "
                        "%d and 1", os.getpid(), e, intra, inter, wanted)
            _configured.append(intra)
        return _configured[0]


def _task_cpus() -> int:
    from pyspark import TaskContext

    context = TaskContext.get()
    return max(1, int(context.cpus())) if context is not None else (os.cpu_count() or 1)


# absl's INFO lines ("I0000 00:00:1796131475.616451 8356 port.cc:153] ..."): hidden at level 1 and up;
# its WARNING lines and its notice about logging before absl::InitializeLog(): hidden at level 2 and up.
_HIDDEN_AT_LEVEL = {
    1: re.compile(r"^I\d{4} \d\d:\d\d:\d\d"),
    2: re.compile(r"^(?:[IW]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl::InitializeLog\(\))"),
}


def _import_tensorflow() -> Any:
    """Imports TensorFlow under the log policy of this module (see its docstring)."""
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        return tf
    level = _log_level(os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2"))
    if level == 0:
        import tensorflow as tf

        return tf
    with _stderr_without(_HIDDEN_AT_LEVEL[level]):
        import tensorflow as tf
    return tf


def _log_level(value: str) -> int:
    """``TF_CPP_MIN_LOG_LEVEL`` as TensorFlow reads it, capped at 2 (3 only hides errors too, which
    the import prints none of); a value that is not a number counts as 0, TensorFlow's default."""
    try:
        return min(2, max(0, int(value)))
    except ValueError:
        return 0


@contextlib.contextmanager
def _stderr_without(hidden: re.Pattern[str]) -> Iterator[None]:
    """Captures file descriptor 2 for the body, then writes back every line but those ``hidden`` matches.

    Nothing else is lost: other output of the body (errors, other threads' lines)
    reaches stderr when the body ends. If descriptor 2 cannot be redirected, the
    body runs unchanged.
    """
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode("utf-8", "replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not hidden.match(line))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()
