"""The workers' input files: later epochs replay the first epoch's input (real Spark local[2])."""
from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import uuid
from typing import Iterator

import numpy as np
import pytest

from dlbridge.trainer import TrainingOptions, fit, partition_cache
from trainer_helpers import small_model


def _windows(rows: list[int], weighted: bool, autoencoder: bool) -> list[tuple[np.ndarray, ...]]:
    rng = np.random.default_rng(sum(rows))
    out = []
    for n in rows:
        x = rng.normal(size=(n, 3)).astype(np.float32)
        y = x if autoencoder else rng.integers(0, 4, n).astype(np.int32)
        out.append((x, y) + ((rng.random(n).astype(np.float32),) if weighted else ()))
    return out


@pytest.fixture(scope="module")
def input_root(spark) -> str:
    """Where the Python workers of this session keep input files (asked of a worker)."""

    def local_dir(batches):  # defined here so that it is pickled by value, not by this module's name
        import os

        import pyarrow as pa

        for _ in batches:
            pass
        yield pa.RecordBatch.from_pydict({"dir": [os.environ["SPARK_LOCAL_DIRS"].split(",")[0]]})

    local = spark.range(1).mapInArrow(local_dir, "dir string").first()["dir"]
    return os.path.join(local, partition_cache.CACHE_DIR)


@pytest.fixture
def local_dirs(input_root, monkeypatch) -> None:
    """Outside a task, the driver process sees the workers' SPARK_LOCAL_DIRS as a Python worker would."""
    monkeypatch.setenv("SPARK_LOCAL_DIRS", os.path.dirname(input_root))


@pytest.mark.parametrize("weighted,autoencoder", [(False, False), (True, False), (False, True)])
def test_replay_gives_back_every_window_in_order(local_dirs, weighted, autoencoder) -> None:
    fit_id, written = uuid.uuid4().hex, _windows([5, 3, 7], weighted, autoencoder)
    passed = list(partition_cache.caching(iter(written), fit_id, 2))
    assert all(a is b for w, p in zip(written, passed) for a, b in zip(w, p))  # handed on unchanged
    try:
        assert partition_cache.has_partition(fit_id, 2) and not partition_cache.has_partition(fit_id, 1)
        replayed = list(partition_cache.replay(fit_id, 2))
        assert len(replayed) == len(written)
        for w, r in zip(written, replayed):
            assert len(r) == len(w)
            for a, b in zip(w, r):
                assert a.dtype == b.dtype
                np.testing.assert_array_equal(a, b)
    finally:
        partition_cache.remove_fit(fit_id)
    assert not os.path.exists(partition_cache.fit_dir(fit_id))


def test_an_empty_partition_replays_nothing_and_an_unfinished_one_keeps_no_file(local_dirs) -> None:
    fit_id = uuid.uuid4().hex
    try:
        assert list(partition_cache.caching(iter([]), fit_id, 0)) == []
        assert partition_cache.has_partition(fit_id, 0) and list(partition_cache.replay(fit_id, 0)) == []
        stream = partition_cache.caching(iter(_windows([4, 4], False, False)), fit_id, 1)
        next(stream)
        stream.close()  # the consumer stopped (a failed task): nothing of partition 1 is kept
        assert not partition_cache.has_partition(fit_id, 1)
        assert os.listdir(partition_cache.fit_dir(fit_id)) == ["part-0"]
    finally:
        partition_cache.remove_fit(fit_id)


def test_no_file_is_kept_when_the_disk_would_run_short(input_root, local_dirs, monkeypatch) -> None:
    fit_id = uuid.uuid4().hex
    monkeypatch.setattr(partition_cache, "MIN_FREE_BYTES", shutil.disk_usage(os.path.dirname(input_root)).free)
    try:
        assert len(list(partition_cache.caching(iter(_windows([4, 4], False, False)), fit_id, 0))) == 2
        assert not partition_cache.has_partition(fit_id, 0)
    finally:
        partition_cache.remove_fit(fit_id)


def test_a_local_dir_that_cannot_be_written_keeps_no_file_and_the_windows_still_flow(monkeypatch, caplog) -> None:
    monkeypatch.setenv("SPARK_LOCAL_DIRS", "/dev/null/not-a-directory")
    written = _windows([4, 4], False, False)
    with caplog.at_level(logging.INFO, logger="dlbridge.trainer"):
        assert [w[0] for w in partition_cache.caching(iter(written), uuid.uuid4().hex, 0)] == [w[0] for w in written]
    assert not os.path.exists("/dev/null/not-a-directory")
    assert "not keeping the input" in caplog.text and "later epochs stream it from Spark's cache" in caplog.text


@pytest.fixture(scope="module")
def regression(spark):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(240, 4)).astype(np.float32)
    y = np.sin(x).sum(axis=1) + 0.05 * rng.normal(size=240)
    return spark.createDataFrame([(a.tolist(), float(b)) for a, b in zip(x, y)], "x array<float>, y double").cache()


@contextlib.contextmanager
def _files_removed_after_epoch_1(input_root: str, pattern: str) -> Iterator[list[str]]:
    """Deletes the workers' input files matching ``pattern`` when epoch 1's progress line is printed."""
    removed: list[str] = []

    class Remove(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if " epoch 1/" in record.getMessage():
                for path in glob.glob(os.path.join(input_root, "*", pattern)):
                    shutil.rmtree(path)
                    removed.append(os.path.basename(path))

    handler, progress = Remove(), logging.getLogger("dlbridge.progress")
    progress.addHandler(handler)
    try:
        yield removed
    finally:
        progress.removeHandler(handler)


def _sync_fit(df, input_root: str = "", pattern: str | None = None):
    opts = TrainingOptions(mode="sync", epochs=3, batchSize=16, optimizer="adam", loss="mse", seed=5, verbose=1,
                           optimizerOptions='{"learning_rate": 0.01}')
    if pattern is None:
        return fit(df, "x", "y", small_model(), opts), []
    with _files_removed_after_epoch_1(input_root, pattern) as removed:
        return fit(df, "x", "y", small_model(), opts), removed


def test_sync_streams_the_epoch_again_when_a_partition_lost_its_files_with_identical_weights(
        input_root, regression, caplog) -> None:
    reference, _ = _sync_fit(regression)
    with caplog.at_level(logging.INFO, logger="dlbridge.trainer"):
        disturbed, removed = _sync_fit(regression, input_root, "part-1")
    assert removed == ["part-1"]
    assert "epoch 2 streams every partition again: partition(s) [1] had no input files" in caplog.text
    assert "epoch 3 streams" not in caplog.text  # epoch 2 wrote the files again
    assert [h["samples"] for h in disturbed.history] == [h["samples"] for h in reference.history] == [240] * 3
    for a, b in zip(reference.model.get_weights(), disturbed.model.get_weights()):
        np.testing.assert_array_equal(a, b)  # sync with one seed is deterministic: replayed == streamed input
    assert not os.listdir(input_root)  # each fit removed its files when it ended


def test_hogwild_streams_only_the_partition_that_lost_its_files(input_root, regression, caplog) -> None:
    opts = TrainingOptions(mode="hogwild", epochs=3, batchSize=16, loss="mse", verbose=1)
    with caplog.at_level(logging.INFO, logger="dlbridge.trainer"), \
            _files_removed_after_epoch_1(input_root, "part-0") as removed:
        result = fit(regression, "x", "y", small_model(), opts)
    assert removed == ["part-0"]
    assert "epoch 2 streams partition(s) [0] again" in caplog.text
    assert "epoch 3 streams" not in caplog.text  # epoch 2 wrote partition 0's files again
    assert [h["samples"] for h in result.history] == [240] * 3
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert not os.listdir(input_root)
