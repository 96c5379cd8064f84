"""Checkpoints of a fit (``checkpointDir``, ``checkpointInterval``) and resuming from them.

After epoch k, when ``k % checkpointInterval == 0`` or k is the last epoch,
the driver writes ``<checkpointDir>/epoch-<k>.npz`` (k zero-padded to six
digits): one NumPy archive, read back with ``allow_pickle=False``, holding

* ``weight_<i>``: every weight of the model (``model.get_weights()``: the
  trainable weights that the parameter server holds, and non-trainable state
  such as BatchNorm statistics);
* ``optimizer_<i>``: every variable of the parameter server's optimizer
  (iteration count, learning rate, moments);
* ``meta``: a JSON string with the format, the epoch, the variables' names
  and shapes, and the fingerprint of the model and its training setup.

The file is written under a hidden temporary name and renamed (see
:mod:`dlbridge.trainer.filesystem`), so a fit killed while writing leaves no
partial checkpoint; once written, older checkpoints of the directory are
removed.

A fit whose ``checkpointDir`` holds a checkpoint resumes from it: it loads the
weights and the optimizer state and runs epochs k+1 .. ``epochs`` only. The
history of that fit starts at epoch k+1, its summary says
``resumed_from_epoch: k``, and the console shows ``resumed from epoch k``. A
checkpoint whose epoch is ``epochs`` or more returns the checkpointed model at
once (no training job runs; the input is still read once, to build the model).

A checkpoint of a *different* model is refused with an error naming the
directory and what differs: the fingerprint covers the architecture (the
model's Keras config, with layer names numbered in order so that Keras' name
counters do not matter), the task, the loss, the optimizer and
``optimizerOptions``. Other options (epochs, batch size, mode, workers, seed)
may change between the two fits.

``checkpointInterval`` follows Spark's ``HasCheckpointInterval``: ``>= 1``
writes every that many epochs (and after the last one); ``-1`` disables
checkpoints (nothing is written or resumed, even with ``checkpointDir`` set);
``0`` is refused.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import re
from typing import Any, Iterator

import numpy as np

from dlbridge.trainer import models
from dlbridge.trainer.filesystem import TEMP_PREFIX, Directory, directory
from dlbridge.trainer.options import TrainingOptions

logger = logging.getLogger("dlbridge.trainer")
FORMAT = 1
_NAME = re.compile(r"^epoch-(\d{6,})\.npz$")


@dataclasses.dataclass
class Checkpoint:
    """One checkpoint read back: its epoch, its arrays and its metadata."""

    name: str
    epoch: int
    weights: list[np.ndarray]
    optimizer: list[np.ndarray]
    meta: dict[str, Any]


def fingerprint(model: Any, objective: Any, options: TrainingOptions) -> dict[str, str]:
    """What defines the model being trained: a hash of its architecture, and the task, loss and optimizer.

    Layer names are replaced by their position (Keras numbers default names
    per process: ``dense``, ``dense_1``, ...), so the same architecture built
    twice has the same fingerprint.
    """
    config = json.loads(models.config_json(model))
    text = json.dumps(config, sort_keys=True)
    for position, name in enumerate(dict.fromkeys(_names(config))):
        text = text.replace(json.dumps(name), f'"#name{position}"')
    return {"architecture": hashlib.sha256(text.encode()).hexdigest(), "task": objective.task,
            "loss": objective.loss, "optimizer": options.optimizer,
            "optimizerOptions": json.dumps(options.optimizer_kwargs(), sort_keys=True)}


def _names(config: Any) -> Iterator[str]:
    """Every ``"name"`` value of a Keras config, in the order of its sorted keys."""
    if isinstance(config, dict):
        for key in sorted(config):
            if key == "name" and isinstance(config[key], str):
                yield config[key]
            else:
                yield from _names(config[key])
    elif isinstance(config, list):
        for item in config:
            yield from _names(item)


class Checkpoints:
    """The checkpoints of one fit in its ``checkpointDir``.

    Parameters
    ----------
    files : Directory
        The checkpoint directory.
    interval : int
        Epochs between two checkpoints (``>= 1``).
    epochs : int
        The fit's last epoch (always checkpointed).
    identity : dict
        This fit's :func:`fingerprint`.
    """

    def __init__(self, files: Directory, interval: int, epochs: int, identity: dict[str, str]) -> None:
        self.files, self.interval, self.epochs, self.identity = files, interval, epochs, identity

    @classmethod
    def open(cls, spark: Any, options: TrainingOptions, model: Any, objective: Any) -> "Checkpoints | None":
        """The checkpoints of a fit with these options, or ``None`` when checkpoints are off."""
        if not options.checkpointDir or options.checkpointInterval == -1:
            return None
        try:
            files = directory(options.checkpointDir, spark)
        except Exception as e:  # noqa: BLE001 - py4j's errors of the JVM (no FileSystem for a scheme, ...)
            raise ValueError(f"checkpointDir {options.checkpointDir!r} cannot be opened as a local path or a Hadoop "
                             f"FS URI: {_cause(e)}. Fix: give a directory of a file system this application "
                             "can reach, e.g. hdfs:///user/me/checkpoints or /tmp/checkpoints.") from e
        return cls(files, options.checkpointInterval, options.epochs, fingerprint(model, objective, options))

    def restore(self, model: Any, optimizer: Any) -> int:
        """Load the latest checkpoint into ``model`` and ``optimizer``; its epoch, or 0 when there is none.

        Raises
        ------
        ValueError
            If the checkpoint is of a different model or training setup, or
            its variables do not fit this model and optimizer.
        """
        found = self.latest()
        if found is None:
            return 0
        self._check_identity(found)
        self._check_shapes(found, "weights", model.weights, found.weights)
        self._check_shapes(found, "optimizer variables", optimizer.variables, found.optimizer)
        model.set_weights(found.weights)
        for variable, value in zip(optimizer.variables, found.optimizer):
            variable.assign(value)
        logger.info("dlbridge trainer: resumed from epoch %d of checkpoint %s/%s", found.epoch,
                    self.files.location, found.name)
        return found.epoch

    def after_epoch(self, epoch: int, model: Any, optimizer: Any) -> None:
        """Write the checkpoint of ``epoch`` if it is due (every ``interval`` epochs, and the last)."""
        if epoch % self.interval and epoch < self.epochs:
            return
        name = f"epoch-{epoch:06d}.npz"
        try:
            self.files.write_atomic(name, self._encode(epoch, model, optimizer))
            for old in self.files.names():
                if (_NAME.match(old) and old != name) or old.startswith(TEMP_PREFIX):
                    self.files.delete(old)  # older checkpoints, and temporaries of a writer that was killed
        except Exception as e:  # noqa: BLE001 - OSError, or py4j's errors of the JVM's FileSystem
            raise RuntimeError(f"dlbridge training stopped after epoch {epoch}: its checkpoint could not be written "
                               f"to checkpointDir {self.files.location!r}: {_cause(e)}. Fix: make the directory "
                               "writable, or set checkpointDir to a writable one (or empty).") from e
        logger.info("dlbridge trainer: checkpoint of epoch %d written to %s/%s", epoch, self.files.location, name)

    def latest(self) -> Checkpoint | None:
        """The checkpoint with the highest epoch in the directory, or ``None``."""
        epochs = {int(m.group(1)): name for name in self.files.names() if (m := _NAME.match(name))}
        if not epochs:
            return None
        name = epochs[max(epochs)]
        try:
            with np.load(io.BytesIO(self.files.read(name)), allow_pickle=False) as archive:
                meta = json.loads(str(archive["meta"]))
                weights = [archive[f"weight_{i}"] for i in range(len(meta["weights"]))]
                optimizer = [archive[f"optimizer_{i}"] for i in range(len(meta["optimizer"]))]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"checkpointDir {self.files.location!r}: the checkpoint {name} cannot be read "
                             f"({type(e).__name__}: {e}). Fix: delete it to resume from an older checkpoint "
                             "or to start over, or point checkpointDir at another directory.") from e
        return Checkpoint(name=name, epoch=int(meta["epoch"]), weights=weights, optimizer=optimizer, meta=meta)

    def _encode(self, epoch: int, model: Any, optimizer: Any) -> bytes:
        weights, variables = model.weights, optimizer.variables
        meta = {"format": FORMAT, "epoch": epoch, "fingerprint": self.identity,
                "weights": [[w.path, list(w.shape)] for w in weights],
                "optimizer": [[v.path, list(v.shape)] for v in variables]}
        arrays = {f"weight_{i}": np.asarray(w.numpy()) for i, w in enumerate(weights)}
        arrays.update({f"optimizer_{i}": np.asarray(v.numpy()) for i, v in enumerate(variables)})
        buffer = io.BytesIO()
        np.savez(buffer, meta=np.array(json.dumps(meta)), **arrays)
        return buffer.getvalue()

    def _check_identity(self, found: Checkpoint) -> None:
        theirs = found.meta.get("fingerprint", {})
        differ = [("architecture (the layers or their configuration)" if key == "architecture" else
                   f"{key} (checkpoint: {theirs.get(key)!r}, this fit: {mine!r})")
                  for key, mine in self.identity.items() if theirs.get(key) != mine]
        if found.meta.get("format") != FORMAT or differ:
            what = "; ".join(differ) or f"format {found.meta.get('format')!r}, expected {FORMAT}"
            raise ValueError(
                f"checkpointDir {self.files.location!r} holds a checkpoint ({found.name}, epoch {found.epoch}) of "
                f"a different model or training setup: {what}. Fix: point checkpointDir at a new or empty "
                "directory for this model, or delete that checkpoint to start over.")

    def _check_shapes(self, found: Checkpoint, what: str, variables: list, arrays: list[np.ndarray]) -> None:
        expected = [tuple(int(d) for d in v.shape) for v in variables]
        received = [tuple(a.shape) for a in arrays]
        if expected != received:
            raise ValueError(f"checkpointDir {self.files.location!r}: the {what} of checkpoint {found.name} have "
                             f"shapes {received}, this model expects {expected}. Fix: point checkpointDir at a "
                             "new or empty directory for this model.")


def _cause(error: BaseException) -> str:
    """The first line of ``error``: for a JVM exception, its Java class and message, not py4j's trace."""
    java = getattr(error, "java_exception", None)
    text = str(java.toString()) if java is not None else f"{type(error).__name__}: {error}"
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__
