"""Training progress for the person running the driver: console lines and Spark job descriptions.

Each epoch of :func:`dlbridge.trainer.fit` prints one line on the driver's
console (``verbose >= 1``)::

    dlbridge fit kerasEst_1a2b3c4d5e6f epoch 3/10 - loss 0.4123 - val_loss 0.4012 - val_accuracy 0.9100 - 5321 samples/s - 1.2s - ETA 8s

(with ``metrics=["auc"]`` also ``- val_auc 0.9870`` after ``val_accuracy``)

and every Spark job of the fit carries the description
``dlbridge fit <uid> epoch k/n`` in the Spark UI (``epochs k-n/n`` for the one
job of a chained run; restored afterwards), where
``<uid>`` is the uid of the stage being fitted (:func:`stage`).

The lines go through the logger ``dlbridge.progress`` (level INFO). Unless the
application gave that logger handlers of its own, the first fit gives it one
that writes the bare line to ``sys.stderr`` (and stops it propagating, so a
root handler does not print it twice). In a JVM application the companion
backend replaces that handler with one that hands the lines to the JVM, which
prints them on its own ``System.err`` (see ``dlbridge.backend.companion``).
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
import threading
import time
from typing import Any, Iterator, TextIO

LOGGER_NAME = "dlbridge.progress"
JOB_DESCRIPTION = "spark.job.description"  # the local property behind SparkContext.setJobDescription

_stage_uid: contextvars.ContextVar[str | None] = contextvars.ContextVar("dlbridge_stage_uid", default=None)
_lock = threading.Lock()


@contextlib.contextmanager
def stage(uid: str | None) -> Iterator[None]:
    """Runs the body as the fit of the Spark ML stage ``uid``.

    The Python backend wraps every registered estimator's fit function in it,
    so a :func:`dlbridge.trainer.fit` called there (by the built-in Keras
    stage or by the user's own estimator) names the stage in its progress
    lines and job descriptions.

    Parameters
    ----------
    uid : str or None
        The stage's uid, e.g. ``"kerasEst_1a2b3c4d5e6f"``; ``None`` or empty
        when the fit belongs to no stage.
    """
    token = _stage_uid.set(uid or None)
    try:
        yield
    finally:
        _stage_uid.reset(token)


def current_stage() -> str | None:
    """The uid set by the innermost :func:`stage` of this thread, or ``None``."""
    return _stage_uid.get()


class _StderrHandler(logging.StreamHandler):
    """Writes each record to whatever ``sys.stderr`` is when it is emitted (as ``logging.lastResort``)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)  # no fixed stream: see the property below

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr


def console_logger() -> logging.Logger:
    """The ``dlbridge.progress`` logger, given its default console handler if it has no handlers."""
    logger = logging.getLogger(LOGGER_NAME)
    with _lock:
        if not logger.handlers:
            handler = _StderrHandler()
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
            logger.propagate = False
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)
    return logger


def duration(seconds: float) -> str:
    """``seconds`` as ``"42s"``, ``"3m05s"`` or ``"1h02m"``.

    >>> duration(8.4), duration(185), duration(3725)
    ('8s', '3m05s', '1h02m')
    """
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def epoch_seconds(seconds: float) -> str:
    """An epoch's time: two decimals below one second (a one-job epoch on small data takes
    hundredths), one above.

    >>> epoch_seconds(0.034), epoch_seconds(0.7), epoch_seconds(12.34)
    ('0.03s', '0.70s', '12.3s')
    """
    return f"{seconds:.2f}s" if seconds < 0.995 else f"{seconds:.1f}s"


class Progress:
    """The progress of one fit: its console lines and the description of its Spark jobs.

    Parameters
    ----------
    sc : pyspark.SparkContext
        The driver's SparkContext (its local properties carry the job description).
    epochs : int
        Epochs the fit runs.
    verbose : int
        ``0``: no console lines; ``1``: one line per epoch; ``2`` or more: also
        a line once the input is cached and one with the training setup.
    uid : str, optional
        The stage being fitted. Defaults to :func:`current_stage`.
    """

    def __init__(self, sc: Any, epochs: int, verbose: int, uid: str | None = None) -> None:
        self.sc, self.epochs, self.verbose = sc, epochs, verbose
        uid = uid or current_stage()
        self.name = f"dlbridge fit {uid}" if uid else "dlbridge fit"
        self.started = time.monotonic()
        self.first_done: float | None = None  # when epoch 1 ended: the ETA leaves its warm-up out
        self.resumed = 0  # the checkpoint epoch this fit resumed from (start_epochs)

    def detail(self, message: str, *args: Any) -> None:
        """A console line shown only with ``verbose >= 2`` (``%``-style ``args``)."""
        if self.verbose >= 2:
            console_logger().info(f"{self.name}: {message}", *args)

    def start_epochs(self, resumed: int = 0, checkpoint: str | None = None) -> None:
        """Marks the start of the first epoch (the ETA after it counts from here, later ones from its end).

        ``resumed``: the epoch of the checkpoint in the directory ``checkpoint``
        that the fit resumed from (0: a fresh start); a resumed fit prints
        ``resumed from epoch k`` (``verbose >= 1``) and runs epochs k+1 on.
        """
        self.started, self.resumed = time.monotonic(), resumed
        if resumed and self.verbose >= 1:
            console_logger().info("%s: resumed from epoch %d of the checkpoint in %s (%d of %d epochs left)",
                                  self.name, resumed, checkpoint, max(0, self.epochs - resumed), self.epochs)

    @contextlib.contextmanager
    def jobs(self, what: str) -> Iterator[None]:
        """Runs the body with the job description ``"<name> <what>"``; the previous one is restored."""
        previous = self.sc.getLocalProperty(JOB_DESCRIPTION)
        self.sc.setJobDescription(f"{self.name} {what}")
        try:
            yield
        finally:
            self.sc.setLocalProperty(JOB_DESCRIPTION, previous)  # None removes it

    def epoch_jobs(self, epoch: int) -> contextlib.AbstractContextManager[None]:
        """:meth:`jobs` for the training and validation jobs of ``epoch``: ``"... epoch k/n"``."""
        return self.jobs(f"epoch {epoch}/{self.epochs}")

    def chained_jobs(self, first: int) -> contextlib.AbstractContextManager[None]:
        """:meth:`jobs` for the one job of a chained run from epoch ``first`` (:mod:`dlbridge.trainer.chained`).

        Its description is ``"<name> epochs k-n/n"``, or :meth:`epoch_jobs`'
        ``"<name> epoch n/n"`` when it trains the last epoch only.
        """
        if first == self.epochs:
            return self.epoch_jobs(first)
        return self.jobs(f"epochs {first}-{self.epochs}/{self.epochs}")

    def epoch_done(self, record: dict[str, Any]) -> None:
        """Prints the line of a finished epoch (``verbose >= 1``) from its history record."""
        if self.verbose < 1:
            return
        epoch, now = record["epoch"], time.monotonic()
        self.first_done = self.first_done or now
        # Epoch 1 also starts the Python workers and TensorFlow: later epochs are timed without it.
        done = epoch - 1 - self.resumed  # epochs of this fit finished before this one
        per_epoch = (now - self.first_done) / done if done > 0 else now - self.started
        eta = per_epoch * (self.epochs - epoch)
        # val_loss, val_accuracy, then val_<name> of each metric (options.metrics), in the history's order
        metrics = "".join(f" - {k} {v:.4f}" for k, v in record.items() if k.startswith("val_"))
        console_logger().info("%s epoch %d/%d - loss %.4f%s - %.0f samples/s - %s - ETA %s", self.name, epoch,
                              self.epochs, record["loss"], metrics, record["samples_per_sec"],
                              epoch_seconds(record["seconds"]), duration(eta))
