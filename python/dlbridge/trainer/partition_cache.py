"""The training input of a partition kept on its executor's local disk, for the epochs after the first.

In the first epoch of a fit every worker task receives its partition from the
JVM as Arrow batches and, while training on them, writes the decoded numpy
windows (one per Arrow batch: features, targets, sample weights) to the
executor's local directory. Later epochs run a job that sends no input rows:
each task replays its partition's windows from those files (the page cache
serves them), so the JVM neither reads the cached input nor writes Arrow for
it again. The replayed windows are the same arrays in the same order, so the
mini-batches, the shuffling and the trained weights are the same as without
the files.

Files are written atomically (a temporary directory per task attempt, renamed
when its partition was read to the end), so a task that fails or is killed
leaves no partial cache that a later epoch could read. A task that finds no
file for its partition (another executor ran it, or its executor was
replaced) reports it, and the driver streams that partition from Spark's cache
again (:func:`dlbridge.trainer.fit._train_epoch`). Caching is skipped when the
local disk would keep less than :data:`MIN_FREE_BYTES` free, or when the
files cannot be written: training goes on either way.

Files live in the executor's first Spark local directory (the block
manager's, which Spark gives Python workers as ``SPARK_LOCAL_DIRS``, where it
also keeps its own shuffle and cache files), under
``dlbridge-input/<fit id>/``. The fit removes them with one small job when it
ends (:func:`remove_fit`); an executor that job does not reach (it died, or
the job ran elsewhere) keeps them until Spark deletes that directory: when the
executor stops, or, for an executor that was killed, when the cluster manager
removes the application's directories (a standalone worker does when the
application ends; YARN and Kubernetes with the container).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from typing import Iterator

import numpy as np

logger = logging.getLogger("dlbridge.trainer")

CACHE_DIR = "dlbridge-input"
MANIFEST = "windows.json"
MIN_FREE_BYTES = 1 << 30  # local disk space a cache write always leaves free
_SAME_AS_FIRST = "features"  # a window's targets that are its features (autoencoders) are not stored twice


def fit_dir(fit_id: str) -> str:
    """This executor's directory for the input files of fit ``fit_id`` (created on demand).

    It is in the first of ``SPARK_LOCAL_DIRS``, which Spark sets in every Python
    worker; in a process without it, in the application's SparkFiles root.
    """
    local = os.environ.get("SPARK_LOCAL_DIRS", "").split(",")[0]
    if not local:
        from pyspark import SparkFiles

        local = SparkFiles.getRootDirectory()
    return os.path.join(local, CACHE_DIR, fit_id)


def _partition_dir(fit_id: str, partition: int) -> str:
    return os.path.join(fit_dir(fit_id), f"part-{partition}")


def has_partition(fit_id: str, partition: int) -> bool:
    """``True`` when this executor holds the complete input of ``partition`` for fit ``fit_id``."""
    return os.path.exists(os.path.join(_partition_dir(fit_id, partition), MANIFEST))


def caching(windows: Iterator[tuple[np.ndarray, ...]], fit_id: str, partition: int) -> Iterator[tuple[np.ndarray, ...]]:
    """Yield ``windows`` unchanged, writing them as the partition's input files of fit ``fit_id``.

    The files become visible only when ``windows`` is exhausted; if the consumer
    stops early, fails, or the disk is short of space, nothing is kept.
    """
    writer = _Writer(fit_id, partition)
    try:
        for arrays in windows:
            writer.add(arrays)
            yield arrays
        writer.commit()
    finally:
        writer.discard()


def replay(fit_id: str, partition: int) -> Iterator[tuple[np.ndarray, ...]]:
    """The windows :func:`caching` wrote for ``partition``, in order (memory-mapped, read-only)."""
    directory = _partition_dir(fit_id, partition)
    with open(os.path.join(directory, MANIFEST), encoding="utf-8") as f:
        manifest = json.load(f)
    rows = manifest["rows"]
    total = sum(rows)
    if not total:
        return
    stored = [np.memmap(os.path.join(directory, f"{i}.bin"), dtype=entry["dtype"], mode="r",
                        shape=(total, *entry["shape"]))
              for i, entry in enumerate(manifest["arrays"])]
    start = 0
    for n in rows:
        parts = [a[start:start + n] for a in stored]
        yield tuple(parts[0] if position == _SAME_AS_FIRST else parts[position] for position in manifest["layout"])
        start += n


def remove_fit(fit_id: str) -> None:
    """Delete every input file of fit ``fit_id`` on this executor (nothing if there are none)."""
    shutil.rmtree(fit_dir(fit_id), ignore_errors=True)


class _Writer:
    """Appends one partition's windows to files in a private directory, published by :meth:`commit`."""

    def __init__(self, fit_id: str, partition: int) -> None:
        self._final = _partition_dir(fit_id, partition)
        self._dir: str | None = f"{self._final}.tmp-{uuid.uuid4().hex}"
        self._files: list = []
        self._manifest: dict = {"rows": [], "arrays": [], "layout": []}
        try:
            os.makedirs(self._dir)
        except OSError as e:
            self._give_up(f"its directory cannot be created ({e})")

    def add(self, arrays: tuple[np.ndarray, ...]) -> None:
        if self._dir is None:
            return
        try:
            if not self._files:
                self._open(arrays)
            if shutil.disk_usage(self._dir).free < sum(a.nbytes for a in arrays) + MIN_FREE_BYTES:
                self._give_up(f"less than {MIN_FREE_BYTES} bytes of local disk would stay free")
                return
            for f, position in zip(self._files, self._stored_positions()):
                f.write(np.ascontiguousarray(arrays[position]).data)
        except OSError as e:  # training goes on without the files; a later epoch streams the partition
            self._give_up(f"writing failed ({e})")
            return
        self._manifest["rows"].append(len(arrays[0]))

    def _give_up(self, why: str) -> None:
        logger.info("dlbridge trainer: not keeping the input of %s on local disk: %s; later epochs stream it "
                    "from Spark's cache", self._final, why)
        self.discard()

    def _open(self, arrays: tuple[np.ndarray, ...]) -> None:
        layout: list = []
        for position, a in enumerate(arrays):
            if position and a is arrays[0]:
                layout.append(_SAME_AS_FIRST)
                continue
            layout.append(len(self._manifest["arrays"]))
            self._manifest["arrays"].append({"dtype": a.dtype.str, "shape": list(a.shape[1:])})
            self._files.append(open(os.path.join(self._dir, f"{len(self._files)}.bin"), "wb"))
        self._manifest["layout"] = layout

    def _stored_positions(self) -> list[int]:
        return [p for p, entry in enumerate(self._manifest["layout"]) if entry != _SAME_AS_FIRST]

    def commit(self) -> None:
        if self._dir is None:
            return
        try:
            for f in self._files:
                f.close()
            with open(os.path.join(self._dir, MANIFEST), "w", encoding="utf-8") as f:
                json.dump(self._manifest, f)
            os.rename(self._dir, self._final)
        except OSError:  # another attempt published this partition first (its files are as good), or the
            return       # disk failed: discard() removes ours, and a later epoch streams the partition
        self._dir = None

    def discard(self) -> None:
        for f in self._files:
            f.close()
        self._files = []
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
