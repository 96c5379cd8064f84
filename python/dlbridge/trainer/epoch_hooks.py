"""The per-epoch options of a fit in one place: checkpoints, validation metrics, early stopping and TensorBoard.

:func:`dlbridge.trainer.fit` builds one :class:`EpochHooks` before its
parameter server starts, asks it which epoch to resume from
(:meth:`EpochHooks.resume`) and calls it after each epoch
(:meth:`EpochHooks.after_epoch`). Each option that is off (the default)
leaves its part ``None``, so a fit without them does no extra work.
"""
from __future__ import annotations

from typing import Any, Sequence

from dlbridge.trainer.checkpoints import Checkpoints
from dlbridge.trainer.early_stopping import EarlyStopping
from dlbridge.trainer.options import TrainingOptions


class EpochHooks:
    """What runs around each epoch for ``checkpointDir``, ``metrics``, ``earlyStoppingPatience`` and ``tensorboardDir``.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
        The driver's session (its JVM reaches Hadoop FS directories).
    options : TrainingOptions
        The fit's validated options.
    objective : dlbridge.trainer.objectives.Objective
        The chosen task, outputs and loss (how metrics read labels and outputs).
    label_dim : int
        0 for a scalar label, else the label array's length.
    model : keras.Model
        The model being trained (its architecture is the checkpoints' fingerprint).

    Raises
    ------
    ValueError
        If a metric does not fit the model and label (tried once on two rows),
        ``checkpointDir`` cannot be opened or ``tensorboardDir`` cannot be created.
    """

    def __init__(self, spark: Any, options: TrainingOptions, objective: Any, label_dim: int, model: Any) -> None:
        self.metric_set = None
        self.stopper = EarlyStopping(options.earlyStoppingPatience) if options.earlyStoppingPatience else None
        self.board = None
        self.optimizer: Any = None  # the parameter server's, set by resume()
        self.resumed = 0
        if options.metrics:
            from dlbridge.trainer import metrics

            self.metric_set = metrics.check_runs(options.metrics, objective.sparse, objective.num_outputs,
                                                 objective.from_logits, label_dim)
        self.checkpoints = Checkpoints.open(spark, options, model, objective)  # None unless checkpointDir is set
        if options.tensorboardDir:
            from dlbridge.trainer.tensorboard import TensorBoardWriter

            self.board = TensorBoardWriter(spark.sparkContext, options.tensorboardDir)

    def resume(self, model: Any, optimizer: Any) -> int:
        """Loads the latest checkpoint into ``model`` and ``optimizer``; its epoch (0: a fresh start or no checkpoints).

        ``optimizer`` (the parameter server's) is also the one whose state
        later checkpoints save.

        Raises
        ------
        ValueError
            If the checkpoint is of a different model or training setup (see
            :meth:`dlbridge.trainer.checkpoints.Checkpoints.restore`).
        """
        self.optimizer = optimizer
        self.resumed = self.checkpoints.restore(model, optimizer) if self.checkpoints is not None else 0
        return self.resumed

    @property
    def resumed_from(self) -> str | None:
        """The checkpoint directory the fit resumed from, or ``None`` for a fresh start."""
        return self.checkpoints.files.location if self.resumed else None

    def validation_metrics(self, states: Sequence[bytes]) -> dict[str, float]:
        """``{"val_<name>": value}`` merged from the validation tasks' metric states (empty when off)."""
        return self.metric_set.merge(states) if self.metric_set is not None else {}

    def after_epoch(self, record: dict[str, Any], model: Any) -> bool:
        """Writes the epoch's checkpoint (when due) and TensorBoard events; ``True`` when early stopping ends training.

        Raises
        ------
        RuntimeError
            If a due checkpoint cannot be written.
        """
        if self.checkpoints is not None:
            self.checkpoints.after_epoch(record["epoch"], model, self.optimizer)
        if self.board is not None:
            self.board.write(record)
        return self.stopper is not None and self.stopper.update(record, model)

    def finish(self, model: Any, epochs_run: int) -> dict[str, int]:
        """Restores the best epoch's weights (early stopping); what the summary reports of it and of resuming."""
        summary = {"resumed_from_epoch": self.resumed} if self.checkpoints is not None else {}
        if self.stopper is not None:
            self.stopper.restore(model, epochs_run)
            summary.update(self.stopper.summary())
        return summary

    def close(self) -> None:
        """Closes the TensorBoard writer, if any (idempotent enough: called once in ``finally``)."""
        if self.board is not None:
            self.board.close()
            self.board = None
