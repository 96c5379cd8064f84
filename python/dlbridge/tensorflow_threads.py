"""TensorFlow's thread pools, sized once per process by one policy for training and inference.

Policy: intra-op threads are the count asked for, else the running Spark task's
``spark.task.cpus`` (``TaskContext.cpus()``), else the machine's cores outside
a task; inter-op threads are 1, since each task drives one model step at a time
and Spark already runs tasks in parallel. The pools can be sized only before
TensorFlow runs its first op, so the first call in a process decides; if
TensorFlow was already initialised, the pools it has are kept and logged.
"""
from __future__ import annotations

import logging
import os
import threading

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
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

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
