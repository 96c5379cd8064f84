"""Training options: one dataclass whose camelCase names mirror the Spark ML params."""
from __future__ import annotations

import dataclasses
import inspect
import json
from typing import Any, Callable, Sequence, Union

#: What ``TrainingOptions.loss`` accepts: a Keras loss name, a ``keras.losses.Loss`` instance,
#: or a function ``loss(y_true, y_pred)`` returning per-row (or already averaged) losses.
LossSpec = Union[str, Callable[..., Any]]

MODES = ("hogwild", "async", "sync")
HANDLE_INVALID = ("error", "skip")


@dataclasses.dataclass
class TrainingOptions:
    """Options of one parameter-server fit.

    Names are camelCase on purpose: they are the names of the Spark ML params
    of the Keras stages, and the Scala side passes them as JSON.

    Parameters
    ----------
    mode : str
        ``"hogwild"`` (asynchronous, weights read without a lock), ``"async"``
        (asynchronous, updates and reads serialised by one lock) or ``"sync"`` (barrier
        stage, every step averages all workers' gradients). Defaults to
        ``"hogwild"``.
    epochs : int
        Passes over the training data. Defaults to ``10``.
    batchSize : int
        Rows per mini-batch on each worker. Defaults to ``128``.
    numWorkers : int
        Partitions (and so concurrent Spark tasks) used for training.
        Defaults to ``2``.
    optimizer : str
        Any Keras optimizer name (``"adam"``, ``"sgd"``, ``"rmsprop"``...),
        held by the parameter server. Defaults to ``"adam"``.
    optimizerOptions : str
        JSON object of the optimizer's keyword arguments, e.g.
        ``'{"learning_rate": 0.001}'``. Defaults to ``"{}"``.
    loss : str, keras.losses.Loss or callable
        The loss the workers differentiate. A Keras loss name (``"mse"``,
        ``"huber"``, ...); empty chooses one from the label:
        ``sparse_categorical_crossentropy`` for a class index,
        ``categorical_crossentropy`` for one-hot arrays, ``mse`` for
        regression and for ``label_col=None`` (targets = features). From
        Python (not from a JVM stage, whose ``loss`` param is a name) it may
        also be a ``keras.losses.Loss`` instance or a function
        ``loss(y_true, y_pred)`` returning one loss per row (averaged over the
        mini-batch, as ``model.compile(loss=fn)`` does) or a scalar. Such an
        object reaches the executors pickled with Spark's cloudpickle, like a
        UDF: a function defined in the driver script (``__main__``) or in a
        module shipped with ``--py-files`` to a JVM application's backend
        travels by value; one from any other module travels by reference, so
        that module must be importable on the executors. Defaults to ``""``.
    stepsPerSync : int
        Local mini-batch steps between two exchanges with the server. With
        ``1`` each gradient goes to the server's optimizer; with ``k > 1`` a
        worker takes ``k`` steps with its own copy of the optimizer and pushes
        the weight change (averaged over workers in ``sync`` mode).
        Defaults to ``1``.
    shuffle : bool
        Shuffle the rows of each worker's partition every epoch (seeded by
        ``seed``, the epoch and the partition), within windows of one Arrow
        batch (``spark.sql.execution.arrow.maxRecordsPerBatch`` rows).
        Defaults to ``True``.
    validationFraction : float
        Fraction of rows held out to report ``val_loss`` (and
        ``val_accuracy`` for classification) each epoch, in ``[0, 1)``.
        Defaults to ``0.0``.
    seed : int
        Seed (a 64-bit signed integer, as Spark's ``HasSeed``) of the initial
        weights of a model :func:`dlbridge.trainer.fit` builds (a builder such
        as the built-in MLP, a Keras config or a factory; a given model or
        ``.keras`` file keeps its weights), of the validation split and of the
        shuffles. Two ``sync`` fits with the same seed on the same data give
        identical weights. Defaults to ``0``.
    verbose : int
        What :func:`dlbridge.trainer.fit` prints on the driver's console
        (through the logger ``dlbridge.progress``, see
        :mod:`dlbridge.trainer.progress`): ``0`` nothing; ``1`` one line per
        epoch (epoch k/n, loss, validation metrics, samples/s, epoch time,
        ETA); ``2`` or more also a line once the input is read, checked and
        cached, and one with the training setup (mode, workers, loss,
        parameters, server address). Defaults to ``1``.
    handleInvalid : str
        Rows whose features or label are null, or hold NaN, +/-inf or null
        elements, or whose ``weightCol`` weight is null, NaN, +/-inf or
        negative: ``"error"`` fails before training, naming the column, the
        count and the fix; ``"skip"`` trains on the valid rows only (the count
        skipped is logged). Defaults to ``"error"``.
    checkpointDir : str
        Directory (a local path or any Hadoop FS URI) for checkpoints of the
        weights, the optimizer state and the epoch; a fit whose directory holds
        a checkpoint of the same model resumes after its epoch (see
        :mod:`dlbridge.trainer.checkpoints`). Empty disables checkpoints.
        Defaults to ``""``.
    checkpointInterval : int
        Epochs between two checkpoints (the last epoch is always
        checkpointed), as Spark's ``checkpointInterval``: ``>= 1``, or ``-1``
        to disable checkpoints (none written or resumed). Defaults to ``10``.
    weightCol : str
        Numeric column of per-row sample weights (Spark's ``HasWeightCol``):
        each row's loss is multiplied by its weight, as Keras'
        ``sample_weight`` (a mini-batch's weighted sum is divided by its row
        count), in training and in ``val_loss``. A null, NaN, infinite or
        negative weight makes the row invalid (see ``handleInvalid``).
        Defaults to ``""``: every weight is 1.
    metrics : list of str
        Keras metric names (``"accuracy"``, ``"auc"``, ``"mae"``, ...)
        computed each epoch on the validation split and reported as
        ``val_<name>`` in the history and the progress line (see
        :mod:`dlbridge.trainer.metrics`). Needs ``validationFraction > 0``.
        Defaults to ``()`` (classification still reports ``val_accuracy``).
    earlyStoppingPatience : int
        Stop when ``val_loss`` has not improved for this many epochs and
        return the weights of the best epoch; ``0`` never stops early (see
        :mod:`dlbridge.trainer.early_stopping`). Needs
        ``validationFraction > 0``. Defaults to ``0``.
    tensorboardDir : str
        Directory (any Hadoop FS path) for TensorBoard event files of the
        per-epoch loss and metrics; empty writes none (see
        :mod:`dlbridge.trainer.tensorboard`). Defaults to ``""``.
    """

    mode: str = "hogwild"
    epochs: int = 10
    batchSize: int = 128
    numWorkers: int = 2
    optimizer: str = "adam"
    optimizerOptions: str = "{}"
    loss: LossSpec = ""
    stepsPerSync: int = 1
    shuffle: bool = True
    validationFraction: float = 0.0
    seed: int = 0
    verbose: int = 1
    handleInvalid: str = "error"
    checkpointDir: str = ""
    checkpointInterval: int = 10
    weightCol: str = ""
    metrics: Sequence[str] = ()
    earlyStoppingPatience: int = 0
    tensorboardDir: str = ""

    def validate(self) -> "TrainingOptions":
        """Check every option; return ``self`` or raise ``ValueError``.

        Raises
        ------
        ValueError
            Naming the option, the value received and what is expected.
        """
        if self.mode not in MODES:
            _bad("mode", self.mode, f"one of {', '.join(MODES)}")
        if self.handleInvalid not in HANDLE_INVALID:
            _bad("handleInvalid", self.handleInvalid, f"one of {', '.join(HANDLE_INVALID)}")
        for name in ("epochs", "batchSize", "numWorkers", "stepsPerSync"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                _bad(name, value, "an integer >= 1")
        for name in ("seed", "verbose"):
            value = getattr(self, name)
            if not _is_int(value) or (name == "verbose" and value < 0):
                _bad(name, value, "an integer" + (" >= 0" if name == "verbose" else ""))
        if not -2 ** 63 <= self.seed < 2 ** 63:
            _bad("seed", self.seed, "a 64-bit signed integer, -2**63 .. 2**63-1")
        if not isinstance(self.weightCol, str):
            _bad("weightCol", self.weightCol, "a column name, or '' for weights of 1")
        if not isinstance(self.shuffle, bool):
            _bad("shuffle", self.shuffle, "a boolean")
        fraction = self.validationFraction
        if _is_int(fraction):
            fraction = float(fraction)
        if not isinstance(fraction, float) or not 0.0 <= fraction < 1.0:
            _bad("validationFraction", self.validationFraction, "a number in [0, 1)")
        self.validationFraction = fraction
        if not isinstance(self.optimizer, str) or not self.optimizer.strip():
            _bad("optimizer", self.optimizer, "a Keras optimizer name such as 'adam' or 'sgd'")
        _check_loss(self.loss)
        self._check_checkpoints()
        kwargs = self.optimizer_kwargs()
        if isinstance(kwargs.get("learning_rate"), dict):
            from dlbridge.trainer import schedules

            schedules.resolve(kwargs, self.optimizerOptions)
        self._check_epoch_options()
        return self

    def _check_epoch_options(self) -> None:
        """``metrics``, ``earlyStoppingPatience`` and ``tensorboardDir`` (the first two need validation rows)."""
        if isinstance(self.metrics, str) or not isinstance(self.metrics, (list, tuple)):
            _bad("metrics", self.metrics, "a list of Keras metric names such as ['auc']")
        self.metrics = tuple(self.metrics)
        if not _is_int(self.earlyStoppingPatience) or self.earlyStoppingPatience < 0:
            _bad("earlyStoppingPatience", self.earlyStoppingPatience, "an integer >= 0 (0 never stops early)")
        if not isinstance(self.tensorboardDir, str):
            _bad("tensorboardDir", self.tensorboardDir, "a directory path, or '' for none")
        for name, on in (("metrics", bool(self.metrics)), ("earlyStoppingPatience", self.earlyStoppingPatience > 0)):
            if on and self.validationFraction == 0.0:
                raise ValueError(f"Option {name}={getattr(self, name)!r} is computed on the validation split, but "
                                 "validationFraction=0.0 holds no rows out. Fix: set validationFraction, e.g. 0.2.")
        if self.metrics:
            from dlbridge.trainer import metrics

            metrics.check_names(self.metrics)

    def _check_checkpoints(self) -> None:
        if not isinstance(self.checkpointDir, str):
            _bad("checkpointDir", self.checkpointDir, "a directory path or Hadoop FS URI, or '' for no checkpoints")
        interval = self.checkpointInterval
        if not _is_int(interval) or not (interval == -1 or interval >= 1):
            _bad("checkpointInterval", interval, "an integer >= 1, or -1 to disable checkpoints")

    def optimizer_kwargs(self) -> dict[str, Any]:
        """The parsed ``optimizerOptions`` JSON object.

        Raises
        ------
        ValueError
            If ``optimizerOptions`` is not a JSON object.
        """
        try:
            parsed = json.loads(self.optimizerOptions)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"optimizerOptions must be a JSON object such as "
                f"'{{\"learning_rate\": 0.001}}'. Received: optimizerOptions={self.optimizerOptions!r}"
            ) from e
        if not isinstance(parsed, dict):
            _bad("optimizerOptions", self.optimizerOptions, "a JSON object (not a list or scalar)")
        return parsed

    def to_json(self) -> str:
        """These options as a JSON object string.

        Raises
        ------
        ValueError
            If ``loss`` is a Python object (a ``Loss`` or a function), which
            JSON cannot carry.
        """
        if not isinstance(self.loss, str):
            raise ValueError(f"Option loss={self.loss!r} is a Python object, which has no JSON form; only a "
                             "Keras loss name can be written as JSON. Fix: pass the options object itself.")
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrainingOptions":
        """Options from a JSON object; absent keys keep their defaults.

        Raises
        ------
        ValueError
            If the text is not a JSON object, has unknown keys, or holds an
            invalid value.
        """
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as e:
            raise ValueError(f"TrainingOptions JSON is not valid JSON. Received: {text!r}") from e
        if not isinstance(data, dict):
            raise ValueError(f"TrainingOptions JSON must be an object. Received: {text!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"Unknown training option(s) {unknown}; expected some of {sorted(known)}."
            )
        return cls(**data).validate()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_loss(loss: object) -> None:
    """Raise ``ValueError`` / ``TypeError`` unless ``loss`` is a name, a ``Loss`` instance or a 2-argument function."""
    expected = ("a Keras loss name, '' to choose from the label, a keras.losses.Loss instance, or a function "
                "loss(y_true, y_pred)")
    if isinstance(loss, str):
        return
    if inspect.isclass(loss):
        raise TypeError(f"Option loss must be {expected}; received the class {loss.__name__}. "
                        f"Fix: pass an instance, e.g. loss={loss.__name__}().")
    if not callable(loss):
        _bad("loss", loss, expected)
    try:
        inspect.signature(loss).bind(None, None)
    except TypeError as e:
        raise TypeError(f"Option loss must be {expected}; the callable {loss!r} cannot be called with the two "
                        f"arguments (y_true, y_pred): {e}.") from e
    except ValueError:
        pass  # no signature to inspect (a builtin or C callable): it is tried on the driver before training


def _bad(name: str, value: object, expected: str) -> None:
    raise ValueError(f"Option {name} must be {expected}. Received: {name}={value!r}")
