"""The per-epoch options of a fit in one place: validation metrics, early stopping and TensorBoard.

:func:`dlbridge.trainer.fit` builds one :class:`EpochHooks` before its
parameter server starts and calls it after each epoch. Each option that is
off (the default) leaves its part ``None``, so a fit without them does no
extra work.
"""
from __future__ import annotations

from typing import Any, Sequence

from dlbridge.trainer.early_stopping import EarlyStopping
from dlbridge.trainer.options import TrainingOptions


class EpochHooks:
    """What runs around each epoch for ``metrics``, ``earlyStoppingPatience`` and ``tensorboardDir``.

    Parameters
    ----------
    sc : pyspark.SparkContext
        The driver's SparkContext.
    options : TrainingOptions
        The fit's validated options.
    objective : dlbridge.trainer.objectives.Objective
        The chosen task, outputs and loss (how metrics read labels and outputs).
    label_dim : int
        0 for a scalar label, else the label array's length.

    Raises
    ------
    ValueError
        If a metric does not fit the model and label (tried once on two rows),
        or ``tensorboardDir`` cannot be created.
    """

    def __init__(self, sc: Any, options: TrainingOptions, objective: Any, label_dim: int) -> None:
        self.metric_set = None
        self.stopper = EarlyStopping(options.earlyStoppingPatience) if options.earlyStoppingPatience else None
        self.board = None
        if options.metrics:
            from dlbridge.trainer import metrics

            self.metric_set = metrics.check_runs(options.metrics, objective.sparse, objective.num_outputs,
                                                 objective.from_logits, label_dim)
        if options.tensorboardDir:
            from dlbridge.trainer.tensorboard import TensorBoardWriter

            self.board = TensorBoardWriter(sc, options.tensorboardDir)

    def validation_metrics(self, states: Sequence[bytes]) -> dict[str, float]:
        """``{"val_<name>": value}`` merged from the validation tasks' metric states (empty when off)."""
        return self.metric_set.merge(states) if self.metric_set is not None else {}

    def after_epoch(self, record: dict[str, Any], model: Any) -> bool:
        """Writes the epoch's TensorBoard events; returns ``True`` when early stopping ends training."""
        if self.board is not None:
            self.board.write(record)
        return self.stopper is not None and self.stopper.update(record, model)

    def finish(self, model: Any, epochs_run: int) -> dict[str, int]:
        """Restores the best epoch's weights (early stopping); returns what the summary reports of it."""
        if self.stopper is None:
            return {}
        self.stopper.restore(model, epochs_run)
        return self.stopper.summary()

    def close(self) -> None:
        """Closes the TensorBoard writer, if any (idempotent enough: called once in ``finally``)."""
        if self.board is not None:
            self.board.close()
            self.board = None
