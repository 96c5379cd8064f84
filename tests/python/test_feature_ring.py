"""KerasModel.transform's shared memory: the packed rows reach the Python workers through /dev/shm.

The same predictions with and without it, what travels through the socket either way, the errors of
rows the ring cannot hold, no file left after a job (or a failed one), and the checks the worker
makes before it reads a file a batch names.
"""
from __future__ import annotations

import glob
import os
import secrets
import struct
import threading
import time
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pytest
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql import DataFrame
from pyspark.sql.types import LongType, StructField, StructType

from dlbridge.inference import feature_ring
from dlbridge.ml import KerasModel

CONF = "spark.dlbridge.inference.sharedMemory.enabled"
WIDTH = 256
RINGS = "/dev/shm/dlbridge-ring-*"
SCHEMA = StructType([StructField("id", LongType()), StructField("features", VectorUDT())])


@pytest.fixture(scope="module")
def model_and_stage(tmp_path_factory) -> tuple[Any, KerasModel]:
    import keras

    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((WIDTH,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(5, activation="softmax")])
    path = str(tmp_path_factory.mktemp("ring") / "mlp.keras")
    model.save(path)
    return model, KerasModel.fromFile(path)


@pytest.fixture
def small_batches(spark) -> Iterator[None]:
    """Arrow batches of 100 rows, so that a job of a few thousand rows reuses every slot many times."""
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    before = spark.conf.get(key)
    spark.conf.set(key, "100")
    yield
    spark.conf.set(key, before)
    spark.conf.unset(CONF)


def vectors(spark, x: np.ndarray, partitions: int = 2) -> DataFrame:
    return spark.createDataFrame([(i, Vectors.dense(row.tolist())) for i, row in enumerate(x)],
                                 SCHEMA).repartition(partitions)


def python_bytes_sent(df: DataFrame) -> tuple[list, int]:
    """The rows of ``df`` and the bytes its dlbridge UDF operator sent to Python (its SQL metric)."""
    rows = df.collect()
    plan = df._jdf.queryExecution().executedPlan()
    if plan.nodeName() == "AdaptiveSparkPlan":
        plan = plan.executedPlan()
    nodes, sent = [plan], []
    while nodes:
        node = nodes.pop()
        if node.nodeName() == "ProjectedArrowEvalPython":
            sent.append(node.metrics().apply("pythonDataSent").value())
        if node.nodeName().endswith("QueryStage"):  # adaptive execution's stages wrap their plans
            nodes.append(node.plan())
        children = node.children()
        nodes.extend(children.apply(i) for i in range(children.size()))
    assert len(sent) == 1, f"expected one ProjectedArrowEvalPython node in {plan.treeString()}"
    return rows, sent[0]


def test_shared_memory_and_arrow_batches_give_the_same_predictions(spark, model_and_stage, small_batches) -> None:
    model, stage = model_and_stage
    x = np.random.default_rng(0).random((3000, WIDTH), dtype=np.float32)
    expected = model.predict(x, verbose=0)
    sent = {}
    for enabled in ("true", "false"):
        spark.conf.set(CONF, enabled)
        rows, sent[enabled] = python_bytes_sent(stage.transform(vectors(spark, x)).select("id", "probability"))
        got = np.array([r.probability.toArray() for r in sorted(rows, key=lambda r: r.id)])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
        assert glob.glob(RINGS) == []
    # reused workers map one file at a time: a later task's file replaces an earlier one's mapping
    spark.conf.set(CONF, "true")
    for _ in range(3):
        stage.transform(vectors(spark, x[:500])).write.format("noop").mode("overwrite").save()
    mapped = {pid: mapped_rings(pid) for pid in python_workers()}
    assert mapped and all(len(files) <= 1 for files in mapped.values()), mapped
    # 30 batches: with the ring each carries a padded header (64 KiB) and empty values; without it, the
    # 1 KiB of float32 of each of its rows
    assert sent["false"] > 3000 * WIDTH * 4
    assert sent["true"] < 30 * 70_000 < sent["false"]


def test_rows_the_ring_cannot_hold_get_the_usual_errors(spark, model_and_stage, small_batches) -> None:
    _, stage = model_and_stage
    spark.conf.set(CONF, "true")
    good = [(i, Vectors.dense([0.5] * WIDTH)) for i in range(150)]
    short = spark.createDataFrame(good + [(150, Vectors.dense([0.5] * (WIDTH - 1)))], SCHEMA)
    with pytest.raises(Exception) as failure:
        stage.transform(short.coalesce(1)).collect()
    text = str(failure.value)
    assert f"every row must hold {WIDTH} float32 values" in text and f"one holds {4 * (WIDTH - 1)} bytes" in text
    assert glob.glob(RINGS) == []


def test_a_killed_python_worker_fails_the_job_and_leaves_no_shared_memory(spark, model_and_stage, small_batches) -> None:
    model, stage = model_and_stage
    spark.conf.set(CONF, "true")
    x = np.random.default_rng(1).random((2000, WIDTH), dtype=np.float32)
    slow = vectors(spark, x, partitions=1).crossJoin(spark.range(200).withColumnRenamed("id", "copy"))
    failure: list[BaseException] = []

    def run() -> None:
        try:
            stage.transform(slow).write.format("noop").mode("overwrite").save()
        except BaseException as e:  # noqa: BLE001 - the failure is what the test waits for
            failure.append(e)

    job = threading.Thread(target=run)
    job.start()
    deadline = time.monotonic() + 120
    while not python_workers() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.0)  # batches are flowing through the ring (400,000 rows take longer than this)
    assert job.is_alive(), "the job ended before its Python worker could be killed"
    for pid in python_workers():
        os.kill(pid, 9)
    job.join(300)
    assert not job.is_alive() and failure, "the job went on although its Python worker was killed"
    assert glob.glob(RINGS) == []
    # the JVM (whose writer thread was still writing into the ring) runs the next job as before
    rows, _ = python_bytes_sent(stage.transform(vectors(spark, x[:300])).select("id", "probability"))
    got = np.array([r.probability.toArray() for r in sorted(rows, key=lambda r: r.id)])
    np.testing.assert_allclose(got, model.predict(x[:300], verbose=0), rtol=0, atol=1e-6)
    assert glob.glob(RINGS) == []


def python_workers() -> list[int]:
    """PySpark worker processes: the children of PySpark's daemon, not the daemon itself."""
    daemons, children = set(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if b"pyspark.daemon" in cmdline:
            daemons.add(int(entry))
            children.append((int(entry), parent))
    return [pid for pid, parent in children if parent in daemons]


def mapped_rings(pid: int) -> set[str]:
    """The shared memory files that process ``pid`` maps (deleted ones included)."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            return {line.split(None, 5)[5].strip() for line in f
                    if len(line.split(None, 5)) == 6 and feature_ring.PREFIX in line}
    except OSError:
        return set()


@pytest.fixture
def ring_file() -> Iterator[tuple[str, bytes]]:
    path = f"{feature_ring.DIRECTORY}/{feature_ring.PREFIX}{os.getpid()}-test-{secrets.token_hex(4)}"
    secret = secrets.token_bytes(16)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        os.write(fd, feature_ring.MAGIC + secret + bytes(4096 - 24) + np.arange(8, dtype="<f4").tobytes())
    finally:
        os.close(fd)
    try:
        yield path, secret
    finally:
        feature_ring._close_all()
        os.unlink(path)


def header_batch(path: str, secret: bytes, rows: int = 2, row_bytes: int = 16) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    encoded = path.encode()
    header = feature_ring.MAGIC + secret + struct.pack("<qiH", 4096, row_bytes, len(encoded)) + encoded
    header += bytes((6 - len(header) % 4) % 4)
    col = pa.array([header] + [b""] * (rows - 1), pa.binary())
    offsets = np.frombuffer(col.buffers()[1], np.int32, rows + 1)
    return col, offsets, np.diff(offsets)


def test_the_worker_reads_the_rows_a_header_names_in_place_and_maps_one_file_at_a_time(ring_file) -> None:
    path, secret = ring_file
    row_bytes, values = feature_ring.shared_rows(*header_batch(path, secret))
    assert row_bytes == 16
    np.testing.assert_array_equal(values.view("<f4").reshape(2, 4), np.arange(8, dtype="<f4").reshape(2, 4))
    assert values.flags.writeable and values.ctypes.data % 64 == 0
    del values
    first = feature_ring._maps[path][0]
    # the next task's file (here: a copy under another name) replaces the mapping of the last one
    second = path + "-next"
    with open(path, "rb") as f, open(os.open(second, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600), "wb") as g:
        g.write(f.read())
    try:
        feature_ring.shared_rows(*header_batch(second, secret))
        assert list(feature_ring._maps) == [second] and first.closed
    finally:
        feature_ring._close_all()
        os.unlink(second)


def test_the_worker_refuses_a_file_without_the_headers_secret(ring_file) -> None:
    path, _ = ring_file
    with pytest.raises(ValueError, match="does not hold the secret"):
        feature_ring.shared_rows(*header_batch(path, secrets.token_bytes(16)))


def test_the_worker_refuses_a_file_others_may_read(ring_file) -> None:
    path, secret = ring_file
    os.chmod(path, 0o644)
    with pytest.raises(ValueError, match="readable by no one else"):
        feature_ring.shared_rows(*header_batch(path, secret))


def test_the_worker_refuses_a_path_outside_dev_shm(tmp_path) -> None:
    with pytest.raises(ValueError, match="not a file dlbridge's JVM makes"):
        feature_ring.shared_rows(*header_batch(str(tmp_path / "dlbridge-ring-1-x"), bytes(16)))


def test_packed_rows_are_never_taken_for_a_header() -> None:
    rows = pa.array([feature_ring.MAGIC + bytes(32)] * 3, pa.binary())  # 40 bytes: a multiple of 4
    offsets = np.frombuffer(rows.buffers()[1], np.int32, 4)
    assert feature_ring.shared_rows(rows, offsets, np.diff(offsets)) is None
