"""A fit's epochs as one Spark job (a chained run), on the driver.

A fit whose epoch is its own Spark job pays, every epoch, for building the job,
starting its tasks and their Python workers' command, and draining the cached
input's partitions: 0.33-0.56 s per epoch on 2 cores (BENCHMARKS.md, "Trainer").
Once the first epoch has left each partition's input on its executor's disk
(:mod:`dlbridge.trainer.partition_cache`), the later epochs need no input from
Spark, so the first epoch's job can go on training them: each task trains its
partition epoch after epoch (the first on its streamed rows, the others on its
files) and meets the others at the parameter server at each epoch's end
(:mod:`dlbridge.trainer.epoch_board`). A thread of the driver records each
epoch there (history, progress line, checkpoint, TensorBoard, the divergence
check) while the tasks wait, then lets them go on. A task that Spark retries
gets its partition's rows again and streams them for the epoch it retries.

A run chains only what it can finish alone:

* a fit whose validation split is too large to evaluate on the driver
  (:mod:`dlbridge.trainer.driver_validation`) runs each epoch as its own job
  (its validation job needs task slots, which the chained tasks hold while
  they wait), and so does a fit with more workers than task slots (workers
  run in waves there, and a wave could not wait for the next);
* an epoch in which a task found no input files (they could not be written,
  or, in a run that follows a partial epoch, another executor ran the
  partition before), or whose last report did not come within half
  the fit's ``timeout`` of the first one, ends the run: the driver trains that
  epoch's remaining partitions in a job of their own, as a per-epoch fit does,
  and starts a new run, on the input files, for the epochs left.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Callable

from dlbridge.trainer.epoch_board import EpochBoard, EpochReport

THREAD_NAME = "dlbridge-epochs"


def can_chain(spark: Any, validation_job: bool, num_workers: int) -> bool:
    """``True`` when a fit's epochs can run as one job: no validation job per epoch, and a task slot for every
    worker."""
    return not validation_job and num_workers <= spark.sparkContext.defaultParallelism


@dataclasses.dataclass
class ChainOutcome:
    """How a chained run ended.

    Attributes
    ----------
    next_epoch : int
        The first epoch the run did not complete (``last + 1`` when it completed all).
    reports : list of EpochReport
        The reports of ``next_epoch`` that arrived, when the run ended inside it.
    epoch_started : float
        ``time.monotonic()`` when ``next_epoch`` started.
    stopped : bool
        ``on_epoch`` ended training (early stopping) after ``next_epoch - 1``.
    """

    next_epoch: int
    reports: list[EpochReport] = dataclasses.field(default_factory=list)
    epoch_started: float = 0.0
    stopped: bool = False


def run(server: Any, job: Any, first: int, last: int, partitions: int, sync: bool,
        on_epoch: Callable[[int, list[dict[str, Any]], float], bool],
        run_job: Callable[[Any, Callable[[], int]], Any], patience: float) -> ChainOutcome:
    """Train epochs ``first`` .. ``last`` in the Spark job ``job`` (its tasks run :func:`worker.chained_function`).

    Parameters
    ----------
    server : ParameterServer
        The fit's server; its ``board`` is set for the run's duration.
    job : pyspark.sql.DataFrame
        The run's job, collected on this thread by ``run_job(job, current_epoch)``.
    first, last : int
        The epochs to train.
    partitions : int
        Partitions (tasks) of the job.
    sync : bool
        ``sync`` mode: a retried task attempt restarts the epoch for every partition.
    on_epoch : callable
        ``on_epoch(epoch, rows, seconds) -> stop`` records a complete epoch from
        the tasks' statistics rows; it runs on the run's own thread while the
        tasks wait. ``True`` ends training after this epoch; an exception ends
        the run and is raised here.
    run_job : callable
        Collects the job, or raises the fit's failure naming the epoch it gets from its second argument.
    patience : float
        Seconds the driver waits for the rest of an epoch's reports after the first one.

    Returns
    -------
    ChainOutcome
    """
    board = EpochBoard(first, last, partitions, whole_stage_retries=sync)
    outcome = ChainOutcome(last + 1, epoch_started=time.monotonic())
    failure: list[BaseException] = []

    def record_epochs() -> None:
        try:
            for epoch in range(first, last + 1):
                reports = board.wait_epoch(epoch, patience)
                if len(reports) < partitions or any(r.missing for r in reports):
                    outcome.next_epoch = epoch
                    board.stop()
                    return
                rows = [r.row() for r in sorted(reports, key=lambda r: r.partition)]
                stop = on_epoch(epoch, rows, time.monotonic() - outcome.epoch_started)
                outcome.epoch_started = time.monotonic()
                board.decide(epoch, go_on=not stop)
                if stop:
                    outcome.stopped, outcome.next_epoch = True, epoch + 1
                    return
        except BaseException as e:  # noqa: BLE001 - raised on the caller's thread once the job has ended
            failure.append(e)
            board.stop()

    server.board = board
    recorder = threading.Thread(target=record_epochs, name=THREAD_NAME, daemon=True)
    recorder.start()
    try:
        run_job(job, lambda: board.current)
    finally:
        board.job_ended()
        recorder.join()
        server.board = None
    if failure:
        raise failure[0]
    if outcome.next_epoch <= last and not outcome.stopped:
        outcome.reports = board.reports(outcome.next_epoch)
    return outcome
