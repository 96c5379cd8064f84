"""Driver orchestration: prepare data, run the server, run the epochs' Spark jobs, collect history."""
from __future__ import annotations

import dataclasses
import logging
import math
import re
import time
import uuid
from typing import Any, Callable, Sequence

from dlbridge.executor_env import check_executors
from dlbridge.trainer import chained, driver_validation, models, objectives, runtime, seeding, state, transport
from dlbridge.trainer.data import PreparedData, prepare
from dlbridge.trainer.epoch_hooks import EpochHooks
from dlbridge.trainer.options import TrainingOptions
from dlbridge.trainer.progress import Progress
from dlbridge.trainer.protocol import new_secret
from dlbridge.trainer.server import ParameterServer, check_capacity
from dlbridge.trainer.store import WeightStore
from dlbridge.trainer.worker import (STATS_SCHEMA, WorkerSpec, chained_function, evaluate_function,
                                     remove_input_function, replay_function, train_function)

logger = logging.getLogger("dlbridge.trainer")
DEFAULT_TIMEOUT = 300.0
CHAIN_PATIENCE = 0.5  # of the timeout: how long a chained run waits for an epoch's last report after its first


@dataclasses.dataclass
class TrainingResult:
    """Outcome of :func:`fit`.

    Attributes
    ----------
    model : keras.Model
        The trained model (a copy; the model passed to :func:`fit` is not
        changed), compiled with the loss and the server's optimizer.
    history : list of dict
        One dict per epoch: ``epoch``, ``loss``, ``samples``, ``seconds``,
        ``samples_per_sec`` and, with validation, ``val_loss`` (and
        ``val_accuracy`` for classification, ``val_<name>`` for each of
        ``options.metrics``). With early stopping it ends at the epoch that
        stopped training.
    summary : dict
        Mode, workers, loss, task, server address, counters, and
        ``prepare_seconds``: the time spent reading, checking and caching the
        input before epoch 1 (it is not part of any epoch's ``seconds``).
        With ``options.earlyStoppingPatience``, also ``best_epoch`` (whose
        weights the model holds) and ``stopped_epoch`` (0 if every epoch ran).
        With checkpoints on, ``resumed_from_epoch``: the epoch of the
        checkpoint the fit resumed from (0 for a fresh start; the history then
        starts at that epoch + 1).
    """

    model: Any
    history: list[dict[str, Any]]
    summary: dict[str, Any]

    def model_bytes(self) -> bytes:
        """The trained model as the bytes of a Keras v3 ``.keras`` archive.

        The archive holds the architecture and the weights; load it with
        :func:`dlbridge.inference.load_model_bytes`, which uses
        ``safe_mode=True`` and returns the model uncompiled (so a loss defined
        in the user's module is not needed to load it).

        Returns
        -------
        bytes
            What ``model.save("m.keras")`` writes, read back from a temporary
            file that is removed.
        """
        return models.to_keras_bytes(self.model)


def fit(df, features_col: str | Sequence[str], label_col: str | None, model: Any,
        options: TrainingOptions | None = None, model_args: dict[str, Any] | None = None,
        task: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> TrainingResult:
    """Train a Keras model on a Spark DataFrame with a parameter server on the driver.

    The input is read, checked (``options.handleInvalid``) and cached; a
    parameter server starts on the driver; in the first epoch the workers (one
    Spark task per partition) stream their partition in mini-batches, compute
    gradients of the loss and exchange them with the server
    (``options.mode``), keeping their input on local disk, and the later
    epochs train on those files. With a task slot for every worker, all
    epochs are one Spark job (:mod:`dlbridge.trainer.chained`), unless the
    validation split is larger than the driver evaluates itself (64 MiB as
    float32, :mod:`dlbridge.trainer.driver_validation`); otherwise each epoch
    is a job of its own. The cached input is released and the server stopped when ``fit``
    returns or fails.

    Each finished epoch prints one line on the driver's console
    (``options.verbose``), and the Spark jobs of epoch k carry the job
    description ``dlbridge fit <uid> epoch k/n`` (``epochs k-n/n`` for a chained run; ``<uid>``: the stage being
    fitted, when ``fit`` runs inside a registered estimator's fit function;
    the caller's description is restored afterwards). See
    :mod:`dlbridge.trainer.progress`.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Training data, of a classic (non-Connect) SparkSession.
    features_col : str or list of str
        An ML ``Vector`` / ``array<numeric>`` / numeric column, or a list of
        such columns, concatenated in order into one feature row (the Keras
        stages' ``featuresCols``); a row is invalid when any of them is.
    label_col : str or None
        A class index, a one-hot or value array, or a regression value.
        ``None`` makes the targets the features themselves, as an autoencoder
        needs: the model must output as many values as there are features,
        the task is ``"regression"`` (reconstruction; ``task="classification"``
        is refused), the default loss is ``"mse"`` and ``handleInvalid``
        checks the features only.
    model : keras.Model, str or callable
        The user's own built ``keras.Model`` (Sequential or Functional; it may be
        compiled, but its compile state is not used: the loss comes from
        ``options.loss`` and the optimizer from ``options.optimizer``; it is
        copied, never trained in place), a ``.keras`` path, a Keras JSON config (deserialised in safe mode;
        lambdas and classes outside Keras that are not registered custom objects are
        refused), the name of a factory registered with
        ``@dlbridge.register_model_factory``, a ``"module:function"`` listed in
        ``spark.dlbridge.modelFactories.allowed``, or a callable
        ``build(input_dim, num_outputs) -> keras.Model``.
    options : TrainingOptions, optional
        Mode, epochs, batch size, optimizer, loss (a Keras name, or the user's
        own ``keras.losses.Loss`` or function ``loss(y_true, y_pred)``), ...
        Defaults to ``TrainingOptions()``.
    model_args : dict, optional
        Keyword arguments of a factory, checked against its signature before any
        job. Defaults to ``None``.
    task : str, optional
        ``"classification"`` or ``"regression"`` to override inference from the
        label, the loss and the model. Defaults to ``None``.
    timeout : float
        Seconds any single network wait (and a sync round) may take, except a
        worker's wait at an epoch's end in a chained run, which lasts until the
        driver has recorded the epoch; the driver waits up to half of it for
        an epoch's last report after the first (then trains the rest of that
        epoch in a job of its own). Defaults to ``300``.

    Returns
    -------
    TrainingResult

    Raises
    ------
    ValueError, TypeError
        For invalid options, columns, models or losses (before any training job):
        a user loss is called once on the driver on two rows of zeros.
    RuntimeError
        If training fails; the cause is chained.

    Examples
    --------
    An autoencoder trained with the user's own loss (``label_col=None``: the
    targets are the features)::

        def reconstruction_error(y_true, y_pred):
            return keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)

        net = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, activation="tanh"),
                                keras.layers.Dense(8)])
        result = fit(df, "features", None, net, TrainingOptions(loss=reconstruction_error, epochs=5))
        result.history[-1]["loss"], result.model_bytes()
    """
    options = (options or TrainingOptions()).validate()
    if task not in (None, "classification", "regression"):
        raise ValueError(f"task must be 'classification', 'regression' or None. Received: task={task!r}")
    if label_col is not None and not isinstance(label_col, str):
        raise TypeError(f"label_col must be a column name, or None when the targets are the features. "
                        f"Received: label_col={label_col!r}")
    _check_slots(df.sparkSession, options)
    model = models.check_source(model, model_args, df)
    check_executors(df.sparkSession, "dlbridge training")  # the first Spark job of a fit
    progress = Progress(df.sparkSession.sparkContext, options.epochs, options.verbose)
    started = time.monotonic()
    with progress.jobs("preparing input"):
        data = prepare(df, features_col, label_col, options)
    prepared = time.monotonic() - started
    logger.debug("dlbridge trainer: input read, checked and cached in %.1fs", prepared)
    progress.detail("input read, checked and cached in %.1fs", prepared)
    try:
        if data.validation is not None:
            with progress.jobs("collecting the validation split"):
                data.validation_batches = driver_validation.collect_if_small(
                    data.validation, data.validation_rows, _values_per_row(data, options))
        keras_model, objective = _setup(data, model, options, task)
        result = _train(df.sparkSession, data, keras_model, objective, options, timeout,
                        models.factory_module(model), progress)
        result.summary["prepare_seconds"] = prepared
        return result
    finally:
        data.unpersist()


def _values_per_row(data: PreparedData, options: TrainingOptions) -> int:
    """Features, targets (none when they are the features) and the weight of a training row."""
    targets = 0 if data.label.from_features else max(data.label.dim, 1)
    return data.input_dim + targets + (1 if options.weightCol else 0)


def _check_slots(spark, options: TrainingOptions) -> None:
    check_capacity(options.numWorkers)
    try:
        slots = spark.sparkContext.defaultParallelism
    except Exception as e:  # noqa: BLE001 - Spark Connect raises its own "not supported" errors here
        raise RuntimeError("dlbridge.trainer needs a classic SparkSession with a SparkContext (the "
                           "parameter server runs on the driver); Spark Connect sessions are not "
                           "supported.") from e
    if options.numWorkers <= slots:
        return
    if options.mode == "sync":
        raise ValueError(
            f"Option numWorkers={options.numWorkers} exceeds the {slots} task slots of this Spark "
            "application; sync mode runs every worker at once in a barrier stage, so it would never "
            f"start. Set numWorkers <= {slots} or add executor cores.")
    logger.warning("numWorkers=%d exceeds the %d task slots: workers will run in waves",
                   options.numWorkers, slots)


def _setup(data: PreparedData, source: Any, options: TrainingOptions, task: str | None):
    if models.is_builder(source):
        task = objectives.infer_task(data.label, options, source, task=task)
        outputs = objectives.num_outputs_for(data.label, task)
        with seeding.seeded(options.seed):  # the initial weights of a built model follow the seed
            keras_model = models.resolve_model(source, data.input_dim, outputs)
    else:
        models.note_compile_state(source, options)
        with seeding.seeded(options.seed):
            keras_model = models.resolve_model(source, data.input_dim, None)
        task = objectives.infer_task(data.label, options, source, keras_model, task)
    models.check_input_size(keras_model, data.input_dim)
    objective = objectives.choose_objective(data.label, task, keras_model, options)
    objectives.check_loss_runs(objective, keras_model, data.input_dim, data.label)
    classes = data.label.num_classes
    if objective.sparse and classes and classes > objective.num_outputs:
        raise ValueError(f"Label column {data.label.column!r} has class indices up to {classes - 1} but the "
                         f"model outputs only {objective.num_outputs} classes.")
    return keras_model, objective


def _train(spark, data: PreparedData, model, objective, options: TrainingOptions, timeout: float,
           factory_module: str | None, progress: Progress) -> TrainingResult:
    packed_loss = None
    if objective.custom is not None:  # the user's loss travels only as these bytes (unpickled in the runtime)
        packed_loss, options = objectives.pack_loss(objective.custom), dataclasses.replace(options, loss="")
    hooks = EpochHooks(spark, options, objective, data.label.dim, model)  # checkpoints, metrics, TensorBoard...
    try:
        store = WeightStore(model, objectives.make_optimizer(options), locked=options.mode != "hogwild")
        result = _serve(spark, data, model, objective, options, timeout, factory_module, progress, store,
                        packed_loss, hooks)
    finally:
        hooks.close()
    result.summary.update(hooks.finish(model, result.history[-1]["epoch"] if result.history else 0))
    return result


def _serve(spark, data: PreparedData, model, objective, options: TrainingOptions, timeout: float,
           factory_module: str | None, progress: Progress, store: WeightStore, packed_loss: bytes | None,
           hooks: EpochHooks) -> TrainingResult:
    model_json = models.config_json(model)
    resumed = hooks.resume(model, store.optimizer)
    bind_host, host = _driver_address(spark)
    secret = new_secret()
    tls = transport.identity_for(spark.sparkContext.getConf())  # TLS when Spark encrypts its own traffic
    server = ParameterServer(store, secret, options.mode, options.numWorkers, bind_host, timeout, tls,
                             4 * state.state_size(model))
    fit_id = uuid.uuid4().hex
    sc = spark.sparkContext
    tag = f"dlbridge-fit-{fit_id}"
    sc.addJobTag(tag)
    server.on_abort = lambda reason: sc.cancelJobsWithTag(tag)
    try:
        spec = WorkerSpec(
            fit_id=fit_id, host=host, port=server.port, secret=secret, model_json=model_json,
            imports=(factory_module,) if factory_module else (), num_params=store.num_params,
            input_dim=data.input_dim, label_dim=data.label.dim, task=objective.task, loss=objective.loss,
            from_logits=objective.from_logits, sparse=objective.sparse, options=options, timeout=timeout,
            pin=tls.fingerprint if tls else None, targets_are_features=data.label.from_features,
            custom_loss=packed_loss)
        setup = ("%s mode, %d workers, loss %s, %d parameters, server %s:%d", options.mode, options.numWorkers,
                 objective.loss, store.num_params, host, server.port)
        logger.info("dlbridge trainer: " + setup[0], *setup[1:])
        progress.detail(*setup)
        progress.start_epochs(resumed, hooks.resumed_from)
        history = _run_epochs(spark, data, spec, server, model, hooks, progress, resumed + 1)
        stats = dict(server.stats)
    finally:
        server.on_abort = None
        sc.removeJobTag(tag)
        server.close()
        runtime.forget(fit_id)  # the driver's own, when it evaluated the validation split
        if options.epochs > resumed + 1:
            with progress.jobs("removing the workers' input files"):
                _remove_input_files(data, fit_id)
    _compile(model, objective, store.optimizer)
    summary = {"mode": options.mode, "num_workers": options.numWorkers, "loss": objective.loss,
               "task": objective.task, "address": f"{host}:{server.port}", "tls": tls is not None, **stats}
    return TrainingResult(model=model, history=history, summary=summary)


def _run_epochs(spark, data: PreparedData, spec: WorkerSpec, server: ParameterServer, model, hooks: EpochHooks,
                progress: Progress, first: int) -> list[dict[str, Any]]:
    """Train epochs ``first`` .. ``options.epochs``; the history of those that ran (early stopping may end it)."""
    options, history = spec.options, []

    def finish(record: dict[str, Any]) -> bool:  # True: early stopping ends training
        if data.validation is not None:
            record.update(_validate(data, spec, server, record["epoch"], hooks))
        _check_finite(record, options)
        history.append(record)
        progress.epoch_done(record)
        return hooks.after_epoch(record, model)

    validation_job = data.validation is not None and data.validation_batches is None
    chain = chained.can_chain(spark, validation_job, options.numWorkers)
    epoch = first
    while epoch <= options.epochs:
        if chain:  # the first run streams the input; one that follows a partial epoch replays the files
            streams = epoch == first
            job = _training_job(data.train if streams else data.partitions_only(), spec,
                                chained_function(spec, streams))
            with progress.chained_jobs(epoch):
                outcome = chained.run(
                    server, job, epoch, options.epochs, options.numWorkers, options.mode == "sync",
                    lambda e, rows, seconds: finish(_record(e, rows, seconds, model)),
                    lambda frame, at: _run_job(frame, server, at), CHAIN_PATIENCE * spec.timeout)
            if outcome.stopped or outcome.next_epoch > options.epochs:
                break
            epoch = outcome.next_epoch
            with progress.epoch_jobs(epoch):  # the partitions the run did not train in this epoch
                rows = _complete_epoch(data, spec, server, epoch, [r.row() for r in outcome.reports])
            if finish(_record(epoch, rows, time.monotonic() - outcome.epoch_started, model)):
                break
        else:
            with progress.epoch_jobs(epoch):  # its training and validation jobs
                started = time.monotonic()
                rows = _train_epoch(data, spec, server, epoch, replay=epoch > first)
                stop = finish(_record(epoch, rows, time.monotonic() - started, model))
            if stop:
                break
        epoch += 1
    return history


def _record(epoch: int, rows: list, seconds: float, model) -> dict[str, Any]:
    """The history record of an epoch from its workers' statistics rows; sets their merged state into ``model``."""
    merged = state.merge_reports([(r["state"], r["samples"]) for r in rows], state.state_size(model))
    if merged is not None:
        state.assign_state(model, merged)
    samples = sum(r["samples"] for r in rows)
    return {"epoch": epoch, "loss": sum(r["loss_sum"] for r in rows) / max(samples, 1),
            "samples": samples, "seconds": seconds, "samples_per_sec": samples / seconds}


def _train_epoch(data: PreparedData, spec: WorkerSpec, server: ParameterServer, epoch: int, replay: bool) -> list:
    """The workers' statistics rows of one epoch.

    The first epoch of a run streams the cached input to the workers, which keep
    it on their executors' local disks while more epochs follow; the later
    epochs replay those files (:mod:`dlbridge.trainer.partition_cache`). Partitions
    whose files are not where their task ran are streamed again (in ``sync``
    mode, every partition: the barrier trains all together or not at all).
    """
    keep = epoch < spec.options.epochs
    if not replay:
        return _run_job(_training_job(data.train, spec, train_function(spec, epoch, keep)), server, epoch)
    rows = _run_job(_training_job(data.partitions_only(), spec, replay_function(spec, epoch)), server, epoch)
    return _complete_epoch(data, spec, server, epoch, rows)


def _complete_epoch(data: PreparedData, spec: WorkerSpec, server: ParameterServer, epoch: int, rows: list) -> list:
    """``rows`` of a replayed epoch, completed by streaming the partitions that did not train in it.

    A partition did not train when its row says ``missing`` or it has no row
    (a chained run that ended inside the epoch).
    """
    keep = epoch < spec.options.epochs
    missing = frozenset(range(spec.options.numWorkers)) - {r["partition"] for r in rows if not r["missing"]}
    if not missing:
        return rows
    if spec.options.mode == "sync":
        logger.info("dlbridge trainer: epoch %d streams every partition again: partition(s) %s had no input files "
                    "on the executor that ran them, and sync mode trains all partitions together", epoch,
                    sorted(missing))
        return _run_job(_training_job(data.train, spec, train_function(spec, epoch, keep)), server, epoch)
    logger.info("dlbridge trainer: epoch %d streams partition(s) %s again (no input files on the executor that "
                "ran them)", epoch, sorted(missing))
    from pyspark.sql import functions as F

    again = data.train.where(F.spark_partition_id().isin(*missing))
    return [r for r in rows if r["partition"] not in missing] + _run_job(
        _training_job(again, spec, train_function(spec, epoch, keep, missing)), server, epoch)


def _training_job(frame, spec: WorkerSpec, function):
    sync = spec.options.mode == "sync"
    job = frame.mapInArrow(function, STATS_SCHEMA, barrier=sync)
    # Spark never retries a failed barrier *result* stage; behind a shuffle it is a
    # map stage, which Spark re-runs as a whole (every worker restarts the epoch).
    return job.repartition(1) if sync else job


def _remove_input_files(data: PreparedData, fit_id: str) -> None:
    """Delete the workers' input files of this fit (best effort: an executor's files go with it anyway)."""
    try:
        data.partitions_only().mapInArrow(remove_input_function(fit_id), "done boolean").collect()
    except Exception as e:  # noqa: BLE001 - the fit's own outcome matters more; Spark may be stopping
        logger.info("dlbridge trainer: could not remove the workers' input files of fit %s: %s", fit_id, e)


def _check_finite(record: dict[str, Any], options: TrainingOptions) -> None:
    """Stop training at an epoch whose loss (or a validation metric) is NaN or infinite."""
    bad = {k: v for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)}
    if bad:
        found = ", ".join(f"{k} {v}" for k, v in bad.items())
        raise RuntimeError(
            f"dlbridge training stopped in epoch {record['epoch']} of {options.epochs}: {found}; the model "
            f"diverged. Fix: lower the learning rate (optimizerOptions, received {options.optimizerOptions}), "
            "scale the features (e.g. StandardScaler), or check the data for extreme values.")


def _validate(data: PreparedData, spec: WorkerSpec, server: ParameterServer, epoch: int,
              hooks: EpochHooks) -> dict[str, float]:
    """``val_loss`` and the validation metrics of the server's weights: on the driver when the split is
    there (:mod:`dlbridge.trainer.driver_validation`), else in a validation job."""
    if data.validation_batches is not None:
        rows = driver_validation.evaluate(spec, data.validation_batches)
    else:
        rows = _run_job(data.validation.mapInArrow(evaluate_function(spec), STATS_SCHEMA), server, epoch)
    n = sum(r["samples"] for r in rows)
    if n == 0:
        logger.warning("validationFraction=%s left no validation rows; no val_loss reported",
                       spec.options.validationFraction)
        return {}
    metrics = {"val_loss": sum(r["loss_sum"] for r in rows) / n}
    if spec.task == "classification":
        metrics["val_accuracy"] = sum(r["correct"] for r in rows) / n
    metrics.update(hooks.validation_metrics([r["metrics"] for r in rows]))
    return metrics


def _run_job(frame, server: ParameterServer, epoch: int | Callable[[], int]) -> list:
    """The rows of ``frame``'s job; a failure raises naming ``epoch`` (or what it returns, then)."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    error: BaseException | None = None
    try:
        rows = frame.collect()
    except (Py4JError, PySparkException) as e:
        error = e
    if error is None and not (server.closed or server.failure):
        return rows
    message = _failure_message(server, epoch() if callable(epoch) else epoch, error)
    raise RuntimeError(message) from (error or server.failure)


def _failure_message(server: ParameterServer, epoch: int, error: BaseException | None) -> str:
    head = f"dlbridge training failed in epoch {epoch} ({server.mode} mode)"
    if server.failure is not None:
        return f"{head}: the parameter server failed: {server.failure!r}"
    if server.closed:
        return f"{head}: the parameter server was stopped while workers were training."
    found = re.findall(r"^\s*((?:\w+\.)*\w*(?:Error|Exception|Aborted)): (.+)$", str(error), re.M)
    cause = f"{found[-1][0]}: {found[-1][1]}" if found else str(error)[-2000:]
    return f"{head}: a worker task failed: {cause}"


def _driver_address(spark) -> tuple[str, str]:
    conf = spark.sparkContext.getConf()
    if spark.sparkContext.master.startswith("local"):
        return "127.0.0.1", "127.0.0.1"
    host = conf.get("spark.driver.host")
    if not host:
        raise RuntimeError("spark.driver.host is not set; the parameter server cannot advertise its address.")
    return conf.get("spark.driver.bindAddress", host), host


def _compile(model, objective, optimizer) -> None:
    metrics = ["accuracy"] if objective.task == "classification" else []
    loss = objective.custom if objective.custom is not None else objectives.make_loss(objective.loss,
                                                                                      objective.from_logits)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
