"""TensorBoard event files of a fit (``TrainingOptions.tensorboardDir``), on any Hadoop file system.

The layout is the one ``keras.callbacks.TensorBoard`` writes, so TensorBoard
shows a dlbridge fit like a ``model.fit``: ``<dir>/train`` holds the scalar
``epoch_loss`` (and ``epoch_samples_per_sec``), ``<dir>/validation`` holds
``epoch_loss`` and ``epoch_<metric>`` for every ``val_<metric>`` of the
history, each at step = epoch.

The events are written with ``tf.summary`` into a temporary directory on the
driver; after each epoch the files are copied to ``tensorboardDir`` through
the Hadoop ``FileSystem`` API of the driver's JVM (so ``hdfs://``, ``s3a://``
and local paths alike; a path without a scheme is resolved against the
default file system, as Spark resolves paths). The copy skips Hadoop's
``.crc`` side files, which TensorBoard would try to read as event files.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

_TRAIN_KEYS = ("loss", "samples_per_sec")


class TensorBoardWriter:
    """Per-epoch scalars of one fit, mirrored to ``directory`` after each epoch.

    Parameters
    ----------
    sc : pyspark.SparkContext
        The driver's SparkContext (its JVM holds the Hadoop configuration).
    directory : str
        ``tensorboardDir``: any Hadoop FS path.
    """

    def __init__(self, sc: Any, directory: str) -> None:
        import tensorflow as tf

        self.sc, self.directory = sc, directory
        self._path = sc._jvm.org.apache.hadoop.fs.Path  # resolved once: each lookup is py4j round trips
        self._target = self._path(directory)
        self._copied: dict[str, int] = {}  # local event file -> its size when last copied
        try:
            conf = sc._jsc.hadoopConfiguration()
            # An uncached instance: turning checksums off must not change the application's shared one.
            self._fs = sc._jvm.org.apache.hadoop.fs.FileSystem.newInstance(self._target.toUri(), conf)
            self._fs.setWriteChecksum(False)
            self._fs.mkdirs(self._target)
        except Exception as e:  # noqa: BLE001 - py4j carries the JVM's IOException, IllegalArgumentException...
            raise ValueError(f"Option tensorboardDir={directory!r} is not a writable Hadoop FS directory: "
                             f"{_java_message(e)}. Fix: give a path on a file system the driver can write "
                             "(a local directory, hdfs://..., s3a://...).") from e
        self._local = tempfile.mkdtemp(prefix="dlbridge-tensorboard-")
        self._writers = {split: tf.summary.create_file_writer(os.path.join(self._local, split))
                         for split in ("train", "validation")}

    def write(self, record: dict[str, Any]) -> None:
        """Adds a finished epoch's history record and copies the event files to the target directory."""
        import tensorflow as tf

        step = int(record["epoch"])
        with self._writers["train"].as_default():
            for key in _TRAIN_KEYS:
                tf.summary.scalar(f"epoch_{key}", record[key], step=step)
        validation = {k[len("val_"):]: v for k, v in record.items() if k.startswith("val_") and v is not None}
        if validation:
            with self._writers["validation"].as_default():
                for key, value in validation.items():
                    tf.summary.scalar(f"epoch_{key}", value, step=step)
        for writer in self._writers.values():
            writer.flush()
        self._copy()

    def _copy(self) -> None:
        """Copies each event file that grew since its last copy (event files are only appended to)."""
        for root, _, files in os.walk(self._local):
            relative = os.path.relpath(root, self._local)
            for name in files:
                local = os.path.join(root, name)
                size = os.path.getsize(local)
                if self._copied.get(local) == size:
                    continue  # e.g. the validation events of a fit without validation
                self._fs.copyFromLocalFile(False, True, self._path("file://" + local),
                                           self._path(self._target, f"{relative}/{name}"))
                self._copied[local] = size

    def close(self) -> None:
        """Closes the writers and the file system instance; removes the temporary directory."""
        try:
            for writer in self._writers.values():
                writer.close()
            self._fs.close()
        finally:
            shutil.rmtree(self._local, ignore_errors=True)


def _java_message(error: BaseException) -> str:
    java = getattr(error, "java_exception", None)
    return str(java.toString()) if java is not None else str(error)
