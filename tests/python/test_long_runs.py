"""Twenty fit + transform cycles in one SparkContext leave nothing behind: processes, threads,
open files, listening ports, cached data and temporary files are the same after cycle 20 as after
cycle 10 (within small tolerances; the first cycles warm up Python workers, thread pools and the bounded
broadcast cache).

Temporary files are counted in a private TMPDIR (driver and Python workers) and a private
``spark.local.dir``, so other test runs on the machine do not disturb the count.
"""
from __future__ import annotations

import gc
import os
import re
import shutil
import tempfile
import time
from typing import Iterator

import pytest
from pyspark.sql import SparkSession

from conftest import build_spark
from dlbridge.ml import KerasEstimator
from keras_helpers import digits
from processes import cmdline, descendants, listening_ports, open_fds, thread_count

# WARM is past the first 8 cycles: the driver keeps the broadcasts of the last 8 model states
# (python/dlbridge/backend/udfs.py, _BROADCASTS_KEPT), a bounded cache whose files are not a leak.
CYCLES, WARM = 20, 10
# Spark's own elastic thread pools: they grow with load up to fixed caps and shrink after an idle
# keep-alive (block manager messaging and async storage, AQE query stages, shuffle and broadcast
# exchanges), so their size says nothing about leaks; every other JVM thread is counted.
SPARK_ELASTIC_POOLS = re.compile(r"^(block-manager-(ask|storage-async)-thread-pool|ResultQueryStageExecution|"
                                 r"shuffle-exchange|broadcast-exchange)")
# Allowed growth from cycle WARM to cycle 20, per resource.
TOLERANCE = {"processes": 0, "python threads": 2, "jvm threads": 10, "python fds": 4, "jvm fds": 10,
             "listening ports": 0, "cached rdds": 0, "cached tables": 0, "temp files": 4}


@pytest.fixture(scope="module")
def private_spark() -> Iterator[tuple[SparkSession, str]]:
    """A local[2] session whose driver, Python workers and block manager use private temp dirs."""
    root = tempfile.mkdtemp(prefix="dlbridge-longrun-")
    tmp, local = os.path.join(root, "tmp"), os.path.join(root, "local")
    os.makedirs(tmp), os.makedirs(local)
    saved = tempfile.tempdir
    tempfile.tempdir = tmp
    session = build_spark("local[2]", spark__local__dir=local, spark__executorEnv__TMPDIR=tmp)
    try:
        yield session, root
    finally:
        session.stop()
        tempfile.tempdir = saved
        shutil.rmtree(root, ignore_errors=True)


def _jvm_pid() -> int:
    jvms = [pid for pid in descendants(os.getpid()) if "org.apache.spark.deploy.SparkSubmit" in cmdline(pid)]
    assert len(jvms) == 1, f"expected one driver JVM below this process, found {jvms}"
    return jvms[0]


def _jvm_threads(spark: SparkSession) -> int:
    """Live threads of the driver JVM outside Spark's elastic pools (see SPARK_ELASTIC_POOLS)."""
    threads = spark.sparkContext._jvm.java.lang.Thread.getAllStackTraces().keySet().toArray()
    return sum(1 for t in threads if not SPARK_ELASTIC_POOLS.match(t.getName()))


def _files(root: str) -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files]


def _snapshot(spark: SparkSession, root: str) -> dict[str, int]:
    """Resource counts once Python and the JVM have collected garbage (Spark cleans shuffles and
    broadcasts of collected objects asynchronously, and dlbridge deletes a state broadcast's driver-side
    file once the cleaner has cleaned it; give them a few rounds)."""
    for _ in range(4):  # Python's gc drops py4j references, then the JVM's gc lets the ContextCleaner run
        gc.collect()
        spark.sparkContext._jvm.System.gc()
        time.sleep(2)
    me, jvm = os.getpid(), _jvm_pid()
    cache = spark._jsparkSession.sharedState().cacheManager()
    return {"processes": len(descendants(me)), "python threads": thread_count(me), "jvm threads": _jvm_threads(spark),
            "python fds": open_fds(me), "jvm fds": open_fds(jvm),
            "listening ports": len(listening_ports(me) | listening_ports(jvm)),
            "cached rdds": spark.sparkContext._jsc.getPersistentRDDs().size(),
            "cached tables": 0 if cache.isEmpty() else 1, "temp files": len(_files(root))}


@pytest.mark.slow
def test_twenty_fit_transform_cycles_leak_nothing(private_spark, reliability) -> None:
    spark, root = private_spark
    train, test = digits(spark)
    train, test = train.limit(400).cache(), test.limit(100).cache()
    snapshots, files = {}, {}
    with reliability.scenario(f"{CYCLES} fit + transform cycles in one SparkContext", "none (leak check)",
                              "local[2]") as row:
        for cycle in range(1, CYCLES + 1):
            model = KerasEstimator(hiddenLayers=[8], epochs=1, batchSize=64, verbose=0, seed=cycle).fit(train)
            predictions = model.transform(test).select("prediction").toPandas()
            assert len(predictions) == 100 and predictions["prediction"].between(0, 9).all()
            del model, predictions
            if cycle in (WARM, CYCLES):
                snapshots[cycle], files[cycle] = _snapshot(spark, root), set(_files(root))
        grown = {k: (snapshots[WARM][k], snapshots[CYCLES][k]) for k in TOLERANCE
                 if snapshots[CYCLES][k] - snapshots[WARM][k] > TOLERANCE[k]}
        row.notes = f"after cycle {WARM}: {snapshots[WARM]}; after cycle {CYCLES}: {snapshots[CYCLES]}"
        new_files = sorted(os.path.relpath(f, root) for f in files[CYCLES] - files[WARM])
        assert not grown, f"grew from cycle {WARM} to cycle {CYCLES} beyond {TOLERANCE}: {grown}; new files {new_files[:20]}"
