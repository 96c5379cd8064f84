"""A worker task that fails once is retried by Spark and rejoins training (local[2,2]: 2 attempts),
in the streamed first epoch and in the chained run of the later ones (dlbridge.trainer.chained).

The failure is real: the model (factory ``fail_once_mlp`` of keras_factories) has a layer whose
graph raises in one training step, once per marker file.
"""
from __future__ import annotations

import logging
import os
from typing import Iterator

import pytest

import keras_factories  # noqa: F401 - registers the model factories
from conftest import build_spark
from dlbridge.trainer import TrainingOptions, fit
from trainer_helpers import accuracy, assert_no_leaks, digits_frames, port_of

@pytest.fixture(scope="module")
def marker(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The file whose absence arms the injected failure (the failing step creates it)."""
    path = str(tmp_path_factory.mktemp("retry") / "failed-once")
    open(path, "w").close()  # disarmed until a test removes it
    return path


@pytest.fixture(scope="module")
def retry_spark() -> Iterator:
    """A session allowing 2 attempts per task."""
    session = build_spark("local[2,2]")
    try:
        yield session
    finally:
        session.stop()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["hogwild", "sync"])
def test_failed_task_is_retried_and_rejoins(retry_spark, marker, mode):
    train, x_test, y_test = digits_frames(retry_spark)
    opts = TrainingOptions(mode=mode, epochs=10, batchSize=32, optimizerOptions='{"learning_rate": 0.005}')
    os.remove(marker)  # arm: the first process to run a second step creates the marker and fails
    result = fit(train, "features", "label", "fail_once_mlp", opts, model_args={"marker": marker})
    assert os.path.exists(marker), "the injected failure never happened"
    rows = train.count()
    assert all(h["samples"] == rows for h in result.history)  # every epoch complete after the retry
    assert accuracy(result.model, x_test, y_test) >= 0.93
    assert_no_leaks(port_of(result))


class _ArmAfterEpoch1(logging.Handler):
    """Removes the marker (arming the one-shot failure) when epoch 1's progress line is printed."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker

    def emit(self, record: logging.LogRecord) -> None:
        if " epoch 1/" in record.getMessage():
            os.remove(self.marker)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["async", "sync"])
def test_a_task_failing_in_a_chained_run_is_retried_and_the_run_goes_on(retry_spark, marker, mode, caplog):
    train, x_test, y_test = digits_frames(retry_spark)
    opts = TrainingOptions(mode=mode, epochs=6, batchSize=32, optimizerOptions='{"learning_rate": 0.005}',
                           verbose=1)
    arm, progress = _ArmAfterEpoch1(marker), logging.getLogger("dlbridge.progress")
    progress.addHandler(arm)
    try:
        with caplog.at_level(logging.INFO, logger="dlbridge.trainer"):
            result = fit(train, "features", "label", "fail_once_mlp", opts, model_args={"marker": marker})
    finally:
        progress.removeHandler(arm)
    assert os.path.exists(marker), "the injected failure never happened"
    rows = train.count()
    assert [h["epoch"] for h in result.history] == list(range(1, 7))
    assert all(h["samples"] == rows for h in result.history)  # the retried epoch counts each row once
    assert "streams" not in caplog.text  # the retry found its input files: no epoch was streamed again
    assert accuracy(result.model, x_test, y_test) >= 0.9
    assert_no_leaks(port_of(result))
