"""Synchronous rounds: every step waits for all workers and applies one averaged update."""
from __future__ import annotations

import threading
import time

import numpy as np

from dlbridge.trainer.store import WeightStore


class SyncAborted(RuntimeError):
    """A synchronous round cannot complete (a worker left, timed out, or the server closed)."""


class SyncCoordinator:
    """Barrier of ``num_workers`` workers per step, per epoch.

    A round completes when every worker has either pushed for it or declared
    its data exhausted for the epoch (``done``), so partitions of unequal size
    need no agreement up front. The update is the sample-weighted mean of the
    pushed values, which equals the gradient of the mean loss over the union of
    the workers' batches.

    Parameters
    ----------
    store : WeightStore
        Receives one update per round.
    num_workers : int
        Workers in the barrier stage.
    timeout : float
        Seconds a worker may wait for a round before it is aborted.
    """

    def __init__(self, store: WeightStore, num_workers: int, timeout: float) -> None:
        self._store = store
        self._num_workers = num_workers
        self._timeout = timeout
        self._cond = threading.Condition()
        self._sum = np.zeros(store.num_params, dtype=np.float64)
        self._scratch = np.empty_like(self._sum)
        self._weights: tuple[int, np.ndarray] = store.read()
        self._key: tuple[int, int] | None = None  # (epoch, stage attempt key) of the generation
        self._generation = 0
        self._round = 0
        self._reset_round()
        self._done: set[int] = set()
        self._error: str | None = None

    def hello(self, partition: int, epoch: int, stage_attempt_key: int = 0) -> int:
        """Join the barrier of ``epoch``; returns the generation to quote in pushes.

        Spark retries a failed barrier stage as a whole; ``stage_attempt_key`` is
        the same for every worker of one stage attempt and grows with each retry
        (see ``worker._stage_attempt_key``). The first hello of a later epoch or
        of a higher key starts a new generation from a clean state (wakes and
        refuses every worker of the older one). A hello of an older epoch or key
        is refused with :class:`SyncAborted`.
        """
        if not 0 <= partition < self._num_workers:
            raise SyncAborted(f"partition {partition} outside 0..{self._num_workers - 1}")
        key = (epoch, stage_attempt_key)
        with self._cond:
            if self._key is not None and key < self._key:
                raise SyncAborted(
                    f"worker of partition {partition} belongs to epoch {epoch}, stage attempt key "
                    f"{stage_attempt_key}, but the sync stage is now at epoch {self._key[0]}, attempt key "
                    f"{self._key[1]}: this task is a straggler of an older attempt; Spark retries "
                    "the stage as a whole, so nothing is lost by refusing it")
            if key != self._key:
                self._key = key
                self._generation += 1
                self._reset_round()
                self._done = set()
                self._error = None
                self._cond.notify_all()
            return self._generation

    def push(self, partition: int, generation: int, values: np.ndarray, samples: int,
             delta: bool) -> tuple[int, np.ndarray]:
        """Contribute to the current round, block until it has been applied; return the new weights.

        The weights are read once per round and the same ``(version, array)`` is
        returned to every worker of the round (callers must not modify it).
        """
        with self._cond:
            self._check(partition, generation)
            if partition in self._pushed:
                raise SyncAborted(f"partition {partition} pushed twice in one round")
            self._pushed.add(partition)
            np.multiply(values, samples, out=self._scratch)
            self._sum += self._scratch
            self._samples += samples
            self._delta = delta
            rnd = self._round
            self._maybe_apply()
            self._wait(lambda: self._round != rnd or self._generation != generation or self._error)
            if self._generation != generation or (self._round == rnd and self._error):
                raise SyncAborted(self._error or "round superseded by a retried stage attempt")
            return self._weights

    def done(self, partition: int, generation: int) -> None:
        """Declare this worker's data exhausted for the epoch."""
        with self._cond:
            self._check(partition, generation)
            self._done.add(partition)
            self._maybe_apply()

    def abort(self, reason: str) -> None:
        """Fail the current round (and any waiting worker) with ``reason``."""
        with self._cond:
            if self._error is None:
                self._error = reason
            self._cond.notify_all()

    def worker_lost(self, partition: int, generation: int) -> None:
        """A worker disconnected: abort unless it had finished its epoch (or is outdated)."""
        with self._cond:
            if generation == self._generation and partition not in self._done:
                epoch, attempt = self._key or (None, None)
                self.abort(f"worker of partition {partition} disconnected in the middle of epoch {epoch} "
                           f"(stage attempt key {attempt}); Spark retries the barrier stage as a whole")

    def _check(self, partition: int, generation: int) -> None:
        if generation != self._generation:
            raise SyncAborted(f"worker of partition {partition} belongs to an earlier attempt of the sync "
                              f"stage; the stage is now at (epoch, stage attempt key) {self._key}")
        if self._error:
            raise SyncAborted(self._error)
        if partition in self._done:
            raise SyncAborted(f"partition {partition} already declared its epoch done")

    def _reset_round(self) -> None:
        self._pushed: set[int] = set()
        self._sum.fill(0.0)
        self._samples = 0
        self._delta = False

    def _maybe_apply(self) -> None:
        if not self._pushed or len(self._pushed | self._done) < self._num_workers:
            return
        if self._samples > 0:
            self._store.apply((self._sum / self._samples).astype(np.float32), delta=self._delta)
            self._weights = self._store.read()
        self._round += 1
        self._reset_round()
        self._cond.notify_all()

    def _wait(self, predicate) -> None:
        deadline = time.monotonic() + self._timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._error = (f"sync round timed out after {self._timeout:.0f}s waiting for "
                               f"{self._num_workers - len(self._pushed | self._done)} worker(s)")
                self._cond.notify_all()
                return
            self._cond.wait(remaining)
