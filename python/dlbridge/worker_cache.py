"""The per-process cache of what Python stages build on the executors: loaded models and predictors.

One bounded least-recently-used cache per Python worker process holds every
heavy object a stage builds from its params (and state): a registered
transformer's batch function, a registered estimator's predictor, a loaded Keras
model. Each is built at most once per worker while cached, however many tasks,
micro-batches or UDFs use it; beyond ``spark.dlbridge.inference.modelCacheSize``
entries (default 4, read on the driver when the UDF is built) the least
recently used one is dropped.

In a Spark task, each build is followed by :func:`gc.freeze`: what the worker
holds then (TensorFlow, Keras and the cached objects) leaves the cyclic garbage
collector's generations. PySpark's daemon runs a full ``gc.collect()`` after
every task of a reused worker; with TensorFlow and a model loaded that scan
covers about 380,000 objects and took 0.3-0.47 s of the worker's CPU per task,
before the next task could start (BENCHMARKS.md). Garbage is collected before
the freeze, and an eviction unfreezes everything first, so the evicted object's
cycles are reclaimed by that collection. Objects frozen this way are still freed
by reference counting; only cycles among them wait for the next eviction, or
for the worker to exit.
"""
from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Hashable, TypeVar

__all__ = ["CACHE_SIZE_KEY", "DEFAULT_CACHE_SIZE", "configured_size", "get"]

logger = logging.getLogger("dlbridge.worker_cache")

CACHE_SIZE_KEY = "spark.dlbridge.inference.modelCacheSize"
DEFAULT_CACHE_SIZE = 4

T = TypeVar("T")

_CACHE: "OrderedDict[Hashable, Any]" = OrderedDict()  # least recently used first
_LOCK = threading.RLock()


def get(key: Hashable, build: Callable[[], T], capacity: int, what: str) -> T:
    """The object cached under ``key``, built with ``build()`` at most once while cached (thread-safe).

    Parameters
    ----------
    key : hashable
        Identifies what ``build`` makes, e.g. ``("predictor", name, state digest, params JSON)``.
    build : callable
        Makes the object; runs under the cache's lock, so concurrent tasks of one
        worker wait for the first build instead of repeating it.
    capacity : int
        Entries this process keeps; the least recently used beyond it are dropped.
    what : str
        Names the object in the log lines of builds and evictions.
    """
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        start = time.perf_counter()
        value = build()
        _CACHE[key] = value
        logger.info("built %s in pid %d in %.2f s", what, os.getpid(), time.perf_counter() - start)
        evicted_any = False
        while len(_CACHE) > capacity:
            evicted = _CACHE.popitem(last=False)[0]  # the value unbound, so the collection below can reclaim it
            evicted_any = True
            logger.info("evicted %s from pid %d (%s=%d)", evicted, os.getpid(), CACHE_SIZE_KEY, capacity)
        if _in_spark_task():
            _freeze_long_lived(unfreeze_first=evicted_any)
        return value


def _in_spark_task() -> bool:
    """Whether this process is running a Spark task (a Python worker), not a driver or the companion."""
    from pyspark import TaskContext

    return TaskContext.get() is not None


def _freeze_long_lived(unfreeze_first: bool) -> None:
    """Collects garbage, then moves every object left out of the cyclic collector's reach (gc.freeze).

    With ``unfreeze_first``, the objects frozen by earlier builds go back to the oldest
    generation first, so that the collection reclaims the cycles of what was evicted.
    """
    if unfreeze_first:
        gc.unfreeze()
    gc.collect()
    gc.freeze()


def configured_size(spark: Any = None) -> int:
    """Entries each Python worker keeps: ``spark.dlbridge.inference.modelCacheSize`` of ``spark``.

    Parameters
    ----------
    spark : SparkSession, optional
        The session whose conf is read. Defaults to `None`: the active session
        (without one, the default of `4`).

    Raises
    ------
    ValueError
        If the conf value is not a positive integer.
    """
    if spark is None:
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
    value = spark.conf.get(CACHE_SIZE_KEY, str(DEFAULT_CACHE_SIZE)) if spark is not None else DEFAULT_CACHE_SIZE
    try:
        size = int(value)
    except (TypeError, ValueError):
        size = 0
    if size < 1:
        raise ValueError(f"{CACHE_SIZE_KEY} must be a positive integer (models kept per Python worker). "
                         f"Received: {value!r}. Fix: set it to e.g. {DEFAULT_CACHE_SIZE}.")
    return size
