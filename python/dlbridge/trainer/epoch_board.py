"""The meeting point of a chained run: the workers' reports at each epoch's end and the driver's go-ahead.

In a chained run (:mod:`dlbridge.trainer.chained`) one Spark job trains several
epochs. Each task trains its partition for an epoch, reports the epoch's
statistics to the parameter server and waits; the server's connection thread
records the report on the board and blocks until the driver has decided. The
driver waits on the board until every partition has reported, records the
epoch (history, progress line, checkpoint, TensorBoard) and lets the workers go
on to the next epoch, or stops them.

A task that Spark starts again (a retried or replacement attempt) asks the
board which epoch to train: the current one, unless its partition already
reported it (then it waits for the decision like the first attempt did). While
another attempt of its partition is still connected, one attempt trains:

* a second attempt of the task (Spark's attempt number 1 or more: a
  speculative copy, or a retry that came before the server saw the first
  attempt's connection drop) stands by, and takes over if that attempt's
  connection drops before the run ends;
* a first attempt (number 0) belongs to a newer attempt of the stage (Spark
  resubmits a stage whose input was lost with an executor, and lets the older
  stage attempt's running tasks go on): it ends at once, giving its task slot
  back to the partitions that need one.

In ``sync`` mode Spark retries the barrier stage as a whole (and never
speculates on it), so every partition trains the current epoch again: a new
attempt's question clears the epoch's earlier reports.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any


class BoardClosed(RuntimeError):
    """The fit ended (or failed) while a worker waited at an epoch's end."""


@dataclasses.dataclass(frozen=True)
class EpochReport:
    """One partition's statistics for one epoch, as a task reports them at the epoch's end.

    Attributes
    ----------
    partition, epoch : int
        Which partition, which epoch.
    samples, pushes, correct : int
        Rows trained on, exchanges with the server, correct predictions (0 in training).
    loss_sum : float
        Sum of the mini-batches' mean loss times their rows.
    missing : bool
        The task had no input files for the partition and trained nothing.
    state : bytes
        The worker model's non-trainable float state (see :mod:`dlbridge.trainer.state`).
    """

    partition: int
    epoch: int
    samples: int
    loss_sum: float
    pushes: int
    correct: int
    missing: bool
    state: bytes = dataclasses.field(repr=False)

    def row(self) -> dict[str, Any]:
        """The report as a statistics row of a per-epoch job (:data:`dlbridge.trainer.worker.STATS_SCHEMA`)."""
        return {"partition": self.partition, "samples": self.samples, "loss_sum": self.loss_sum,
                "pushes": self.pushes, "correct": self.correct, "state": self.state, "metrics": b"",
                "missing": self.missing}


class EpochBoard:
    """Where the epochs ``first`` .. ``last`` of one chained run stand.

    Parameters
    ----------
    first, last : int
        The epochs the run trains, in order.
    partitions : int
        Partitions of the training input (one task each); an epoch is complete
        when each has reported it.
    whole_stage_retries : bool
        ``True`` in ``sync`` mode: a new task attempt means every partition
        trains the current epoch again.
    """

    def __init__(self, first: int, last: int, partitions: int, whole_stage_retries: bool = False) -> None:
        self.last, self.partitions = last, partitions
        self.current = first  # the epoch being trained (or, once decided to stop, the last one that ran)
        self._whole_stage_retries = whole_stage_retries
        self._cond = threading.Condition()
        self._reports: dict[int, dict[int, EpochReport]] = {}
        self._first_report_at: dict[int, float] = {}
        self._decided: dict[int, bool] = {}
        self._owners: dict[int, int] = {}  # partition -> the connected task attempt that trains it
        self._job_ended = False
        self._closed: str | None = None

    def next_epoch(self, partition: int, attempt: int, finished: EpochReport | None, attempt_number: int = 0) -> int:
        """Record ``finished`` (a task's epoch just ended) and return the epoch ``partition`` trains next; 0: stop.

        Called by the server's connection thread of the task attempt ``attempt``
        (Spark's task attempt id; ``attempt_number`` counts the task's attempts
        in its stage attempt from 0); blocks while the partition has reported the
        current epoch and the driver has not decided, and while another attempt
        of the partition is connected (see :meth:`detach`).

        Raises
        ------
        BoardClosed
            If the run ended (the fit failed, or the server closed) while waiting.
        ValueError
            For a partition outside the input, or a report of an epoch not started yet.
        """
        if not 0 <= partition < self.partitions:
            raise ValueError(f"partition {partition} outside 0..{self.partitions - 1}")
        with self._cond:
            if finished is not None:
                if finished.partition != partition or finished.epoch > self.current:
                    raise ValueError(f"report of partition {finished.partition}, epoch {finished.epoch}, from the "
                                     f"task of partition {partition}; the run is at epoch {self.current}")
                if finished.epoch < self.current or self._owners.get(partition) != attempt:
                    return 0  # an attempt the run has moved past, or that another attempt replaced
                self._record(finished)
            elif self._whole_stage_retries:
                if self.current not in self._decided:
                    self._reports.pop(self.current, None)  # a retried barrier stage trains the epoch again
                    self._first_report_at.pop(self.current, None)
                self._owners[partition] = attempt
                self._cond.notify_all()  # an older attempt waiting at the epoch's end stops
            else:
                while self._owners.get(partition, attempt) != attempt and self._closed is None:
                    if attempt_number == 0:
                        return 0  # a newer stage attempt's task: the older stage attempt's task trains on
                    self._cond.wait()  # stand by while another attempt of the partition is connected
                self._owners[partition] = attempt
            while True:
                if self._closed is not None:
                    raise BoardClosed(self._closed)
                if self._owners.get(partition) != attempt:  # a newer attempt of the partition took over
                    return 0
                epoch = self.current
                if epoch in self._decided:  # to stop (going on would have moved current past it)
                    return 0
                if partition not in self._reports.get(epoch, {}):
                    return epoch
                self._cond.wait()

    def detach(self, partition: int, attempt: int) -> None:
        """The connection of task attempt ``attempt`` ended: an attempt standing by for ``partition`` takes over."""
        with self._cond:
            if self._owners.get(partition) == attempt:
                del self._owners[partition]
                self._cond.notify_all()

    def _record(self, report: EpochReport) -> None:
        self._reports.setdefault(report.epoch, {})[report.partition] = report
        self._first_report_at.setdefault(report.epoch, time.monotonic())
        self._cond.notify_all()

    def wait_epoch(self, epoch: int, patience: float) -> list[EpochReport]:
        """The reports of ``epoch`` once every partition has reported it, the job ended, or the run closed.

        If some partitions have not reported ``patience`` seconds after the
        first one did (a task waits for a free slot, or its executor is being
        replaced), the reports so far: the driver then stops the run and trains
        the rest of the epoch in a job of its own.
        """
        with self._cond:
            while True:
                got = self._reports.get(epoch, {})
                if len(got) == self.partitions or self._job_ended or self._closed is not None:
                    return list(got.values())
                since = self._first_report_at.get(epoch)
                remaining = None if since is None else since + patience - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return list(got.values())
                self._cond.wait(remaining)

    def reports(self, epoch: int) -> list[EpochReport]:
        """The reports of ``epoch`` so far."""
        with self._cond:
            return list(self._reports.get(epoch, {}).values())

    def decide(self, epoch: int, go_on: bool) -> None:
        """The driver's answer at the end of ``epoch``: train the next epoch (``go_on``, if there is one) or stop."""
        with self._cond:
            self._decided[epoch] = go_on
            if go_on and epoch < self.last:
                self.current = epoch + 1
            self._cond.notify_all()

    def stop(self) -> None:
        """Stop the run after the current epoch (tasks that ask again are told 0)."""
        with self._cond:
            self._decided.setdefault(self.current, False)
            self._cond.notify_all()

    def job_ended(self) -> None:
        """The run's Spark job returned or failed: the driver stops waiting for reports."""
        with self._cond:
            self._job_ended = True
            self._cond.notify_all()

    def close(self, reason: str) -> None:
        """Fail every wait, now and later, with :class:`BoardClosed` (``reason``)."""
        with self._cond:
            self._closed = self._closed or reason
            self._cond.notify_all()
