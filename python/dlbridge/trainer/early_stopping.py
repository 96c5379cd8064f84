"""Early stopping on ``val_loss`` (``TrainingOptions.earlyStoppingPatience``), keeping the best weights.

Like ``keras.callbacks.EarlyStopping(monitor="val_loss", patience=p,
restore_best_weights=True)``: an epoch improves when its ``val_loss`` is lower
than the best so far; training stops after ``p`` epochs in a row without
improvement, and the returned model holds the weights (trainable and
non-trainable) of the best epoch. The parameter server's variables are the
model's own, so restoring them is a ``set_weights`` on the driver; the
optimizer's state stays where training stopped.
"""
from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("dlbridge.trainer")


class EarlyStopping:
    """Follows ``val_loss`` epoch by epoch and remembers the best epoch's weights.

    Parameters
    ----------
    patience : int
        Epochs without improvement after which :meth:`update` says stop (>= 1).
    """

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_epoch = 0
        self.best_loss = float("inf")
        self.stopped_epoch = 0  # 0 while training has not been stopped early
        self._best_weights: list[Any] | None = None

    def update(self, record: dict[str, Any], model: Any) -> bool:
        """Takes a finished epoch's history record; returns ``True`` when training should stop.

        An epoch without ``val_loss`` (no validation rows) counts as not improving.
        """
        epoch, loss = record["epoch"], record.get("val_loss")
        if loss is not None and loss < self.best_loss:
            self.best_epoch, self.best_loss = epoch, loss
            self._best_weights = model.get_weights()
        elif epoch - self.best_epoch >= self.patience:
            self.stopped_epoch = epoch
            logger.info("early stopping after epoch %d: val_loss has not improved for %d epochs since "
                        "epoch %d (%.4f)", epoch, self.patience, self.best_epoch, self.best_loss)
            return True
        return False

    def restore(self, model: Any, last_epoch: int) -> None:
        """Sets the best epoch's weights into ``model`` unless the last epoch was the best."""
        if self._best_weights is not None and self.best_epoch != last_epoch:
            model.set_weights(self._best_weights)

    def summary(self) -> dict[str, int]:
        """``{"best_epoch": b, "stopped_epoch": s}`` (``s`` is 0 when training ran every epoch)."""
        return {"best_epoch": self.best_epoch, "stopped_epoch": self.stopped_epoch}
