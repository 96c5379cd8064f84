"""A PySpark driver program for the checkpoint test of test_trainer_failures.py, run as its own process.

``python checkpoint_driver.py <checkpointDir> <epochs>`` starts Spark on
``local[2]`` and trains the digits MLP of that test with checkpoints after
every epoch (the test kills it after a checkpoint, then fits again to resume).
Its epochs take a fraction of a second, so once epoch 3's progress line is
printed (after epoch 2's checkpoint, before epoch 3's) the program waits
there for the test to kill it.
The options are :data:`OPTIONS`, shared with the test so that both fits train
the same model.
"""
from __future__ import annotations

import logging
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Sync mode: the resumed and the uninterrupted fit are then compared without hogwild's run-to-run noise.
OPTIONS = dict(mode="sync", batchSize=32, optimizerOptions='{"learning_rate": 0.005}', checkpointInterval=1, seed=1)
HIDDEN = [32]


class _WaitAtEpoch3(logging.Handler):
    """Blocks the fit (its driver-side epoch recording) at epoch 3's progress line."""

    def emit(self, record: logging.LogRecord) -> None:
        if " epoch 3/" in record.getMessage():
            time.sleep(600)


def main(directory: str, epochs: int) -> None:
    """Trains with checkpoints in ``directory``; prints one line per epoch (verbose=1)."""
    from pyspark.sql import SparkSession

    from dlbridge.trainer import TrainingOptions, fit, mlp_builder
    from dlbridge.trainer.progress import console_logger
    from trainer_helpers import digits_frames

    spark = (SparkSession.builder.master("local[2]").appName("dlbridge-checkpoint-driver")
             .config("spark.ui.enabled", "false").config("spark.task.maxFailures", "1")
             .config("spark.sql.execution.arrow.pyspark.enabled", "true").getOrCreate())
    train, _, _ = digits_frames(spark)
    options = TrainingOptions(epochs=epochs, checkpointDir=directory, verbose=1, **OPTIONS)
    console_logger().addHandler(_WaitAtEpoch3())  # after the console handler, which prints the line first
    fit(train, "features", "label", mlp_builder(HIDDEN, "classification"), options)
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
