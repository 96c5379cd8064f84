"""Synchronous rounds: every step waits for all workers and applies one averaged update."""
from __future__ import annotations

import threading
import time
from typing import Callable

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

    A round of gradients answers every worker with that averaged gradient; each
    worker applies it with its own copy of the server's optimizer (loaded from
    the store at the start of its epoch), so all workers hold the same weights
    after every round without the server updating anything on the round's
    path. At the end of its epoch each worker reports its weights and
    optimizer state (:meth:`report`); the store keeps the report of the most
    rounds, which the last worker to finish has applied in full. A round of
    weight deltas (``stepsPerSync > 1``) is applied to the store before it
    answers, with the new weights.

    Parameters
    ----------
    store : WeightStore
        Receives one update per round.
    num_workers : int
        Workers in the barrier stage.
    timeout : float
        Seconds a worker may wait for the others to join (:meth:`wait_for_all`)
        or for a round to complete before it is aborted.
    """

    def __init__(self, store: WeightStore, num_workers: int, timeout: float) -> None:
        self._store = store
        self._num_workers = num_workers
        self._timeout = timeout
        self._cond = threading.Condition()
        self._sum = np.zeros(store.num_params, dtype=np.float32)  # the round's sample-weighted sum
        self._scratch = np.empty_like(self._sum)
        self._weights: tuple[int, np.ndarray] = store.read()
        self._epoch: int | None = None  # the epoch of the current generation
        self._floor = -1  # task attempt ids up to this one belong to failed attempts of this epoch's stage
        self._members: dict[int, int] = {}  # partition -> task attempt id, of the current generation
        self._all_present = True
        self._generation = 0
        self._round = 0
        self._reset_round()
        self._done: set[int] = set()
        self._error: str | None = None
        self._rounds = 0  # gradient rounds completed, over all generations
        self._update: tuple[int, np.ndarray] = (0, np.zeros(store.num_params, np.float32))
        self._stored_round = 0  # the round whose weights and optimizer state the store holds

    def join(self, partition: int, epoch: int, task_attempt_id: int, present: bool = True) -> int:
        """Join the barrier of ``epoch`` as the task ``task_attempt_id``; returns the generation to quote.

        A generation is one attempt of one epoch's barrier stage. Spark retries a
        failed barrier stage as a whole, and launches every task of the retry after
        all tasks of the failed attempt, so task attempt ids (unique in the
        application) grow from one attempt to the next. So a second task for a
        partition that already joined, with a higher id, starts a new generation
        from a clean state (every worker of the older one is woken and refused),
        and a task of an older epoch, or with an id no higher than the failed
        attempt's, is refused with :class:`SyncAborted`. Once a generation is
        aborted (a worker was lost), a task with a higher id than all its
        members also starts a new one, whichever partition it trains.
        ``present`` says whether the task has its partition's input files (see
        :meth:`wait_for_all`).
        """
        if not 0 <= partition < self._num_workers:
            raise SyncAborted(f"partition {partition} outside 0..{self._num_workers - 1}")
        with self._cond:
            newest = max(self._members.values(), default=-1)
            if self._epoch is not None and epoch < self._epoch:
                raise SyncAborted(f"worker of partition {partition} belongs to epoch {epoch}, but the sync stage "
                                  f"is now at epoch {self._epoch}: this task is a straggler of an older attempt; "
                                  "Spark retries the stage as a whole, so nothing is lost by refusing it")
            if epoch != self._epoch:
                self._new_generation(epoch, floor=-1)
            elif task_attempt_id <= self._floor or task_attempt_id <= self._members.get(partition, -1):
                raise SyncAborted(f"worker of partition {partition} (task {task_attempt_id}) belongs to an older "
                                  f"attempt of epoch {epoch}'s sync stage: this task is a straggler of an older "
                                  "attempt; Spark retries the stage as a whole, so nothing is lost by refusing it")
            elif partition in self._members or (self._error and task_attempt_id > newest):
                # the first task of a retried attempt (an aborted generation never completes: a task that
                # comes after all of its members belongs to the retry that Spark runs next)
                self._new_generation(epoch, floor=newest)
            self._members[partition] = task_attempt_id
            self._all_present = self._all_present and present
            self._cond.notify_all()
            return self._generation

    def wait_for_all(self, partition: int, generation: int) -> bool:
        """Block until every worker of ``generation`` has joined; True if every one has its input files.

        In a replayed epoch, either every worker trains on its own input files or
        none does (the driver then streams the epoch again): a barrier stage trains
        all partitions together.
        """
        with self._cond:
            self._wait(lambda: len(self._members) == self._num_workers or self._generation != generation
                       or self._error, lambda: f"{self._num_workers - len(self._members)} worker(s) to join")
            self._check(partition, generation)
            return self._all_present

    def _new_generation(self, epoch: int, floor: int) -> None:
        self._epoch, self._floor = epoch, floor
        self._members, self._all_present = {}, True
        self._generation += 1
        self._reset_round()
        self._done = set()
        self._error = None
        self._cond.notify_all()

    def push(self, partition: int, generation: int, values: np.ndarray, samples: int,
             delta: bool) -> tuple[int, np.ndarray]:
        """Contribute to the current round and block until it completes.

        Returns, for a gradient, ``(round number, averaged gradient)``, which
        the workers apply (the store takes their result from :meth:`report`);
        for a weight delta,
        ``(version, weights)`` after the averaged delta was applied. The same
        tuple is returned to every worker of the round (callers must not modify
        the array). ``values`` is read before this returns, not after.
        """
        with self._cond:
            self._check(partition, generation)
            if partition in self._pushed:
                raise SyncAborted(f"partition {partition} pushed twice in one round")
            self._pushed.add(partition)
            if len(self._pushed) == 1:  # the round's first push overwrites the last round's sum
                np.multiply(values, samples, out=self._sum)
            else:
                np.multiply(values, samples, out=self._scratch)
                self._sum += self._scratch
            self._samples += samples
            self._delta = delta
            rnd = self._round
            self._maybe_complete()
            self._wait(lambda: self._round != rnd or self._generation != generation or self._error,
                       lambda: f"{self._num_workers - len(self._pushed | self._done)} worker(s)")
            if self._generation != generation or (self._round == rnd and self._error):
                raise SyncAborted(self._error or "round superseded by a retried stage attempt")
            return self._weights if delta else self._update

    def report(self, partition: int, generation: int, applied_round: int, weights: np.ndarray,
               optimizer_state: bytes | memoryview) -> None:
        """A worker's weights and optimizer state at the end of its epoch, after rounds up to ``applied_round``.

        The store loads it when it has applied more rounds than the store
        holds: of the workers of a generation, the last to finish took part in
        every round (a round waits for each worker that is not done).

        Raises
        ------
        SyncAborted
            If the worker belongs to an older generation or already declared its epoch done.
        ValueError
            If ``applied_round`` is not a round this server completed, or the state does not fit the store.
        """
        with self._cond:
            self._check(partition, generation)
            if not 0 < applied_round <= self._rounds:
                raise ValueError(f"worker of partition {partition} reports round {applied_round}; "
                                 f"the server completed rounds 1..{self._rounds}")
            if applied_round > self._stored_round:
                self._store.load(weights, optimizer_state, version=applied_round)
                self._stored_round = applied_round

    def done(self, partition: int, generation: int) -> None:
        """Declare this worker's data exhausted for the epoch."""
        with self._cond:
            self._check(partition, generation)
            self._done.add(partition)
            self._maybe_complete()

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
                self.abort(f"worker of partition {partition} (task {self._members.get(partition)}) disconnected "
                           f"in the middle of epoch {self._epoch}; Spark retries the barrier stage as a whole")

    def _check(self, partition: int, generation: int) -> None:
        if generation != self._generation:
            raise SyncAborted(f"worker of partition {partition} belongs to an earlier attempt of epoch "
                              f"{self._epoch}'s sync stage; a retried attempt has started since")
        if self._error:
            raise SyncAborted(self._error)
        if partition in self._done:
            raise SyncAborted(f"partition {partition} already declared its epoch done")

    def _reset_round(self) -> None:
        self._pushed: set[int] = set()
        self._samples = 0
        self._delta = False

    def _maybe_complete(self) -> None:
        if not self._pushed or len(self._pushed | self._done) < self._num_workers:
            return
        if self._samples > 0 and self._delta:
            self._store.apply(self._sum / np.float32(self._samples), delta=True)
            self._weights = self._store.read()
        elif self._samples > 0:
            self._rounds += 1
            self._update = (self._rounds, self._sum / np.float32(self._samples))  # a new array per round
        self._round += 1
        self._reset_round()
        self._cond.notify_all()

    def _wait(self, predicate: Callable[[], object], waiting_for: Callable[[], str]) -> None:
        deadline = time.monotonic() + self._timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._error = f"sync round timed out after {self._timeout:.0f}s waiting for {waiting_for()}"
                self._cond.notify_all()
                return
            self._cond.wait(remaining)
