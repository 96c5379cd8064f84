"""Executor-side training and evaluation loops (run inside ``mapInArrow``)."""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterator

import numpy as np

from dlbridge.trainer import partition_cache
from dlbridge.trainer.client import ServerConnection
from dlbridge.trainer.data import minibatches, minibatches_of, windows
from dlbridge.trainer.options import TrainingOptions
from dlbridge.trainer.runtime import runtime_for

STATS_SCHEMA = ("partition int, samples long, loss_sum double, pushes long, correct long, state binary, "
                "metrics binary, missing boolean")
EVAL_BATCH = 1024


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, captured in the task closure (the secret and pin never go elsewhere)."""

    fit_id: str
    host: str
    port: int
    secret: bytes = dataclasses.field(repr=False)
    model_json: str
    imports: tuple[str, ...]
    num_params: int
    input_dim: int
    label_dim: int
    task: str
    loss: str
    from_logits: bool
    sparse: bool
    options: TrainingOptions
    timeout: float
    pin: bytes | None = None  # SHA-256 of the server's TLS certificate when the fit uses TLS
    custom_loss: bytes | None = dataclasses.field(default=None, repr=False)  # the user's loss, cloudpickled
    targets_are_features: bool = False  # label_col=None: each mini-batch's targets are its features


class _Stats:
    def __init__(self, partition: int) -> None:
        self.partition, self.samples, self.loss_sum, self.pushes, self.correct = partition, 0, 0.0, 0, 0
        self.state = b""  # the worker model's non-trainable float state after training (see state.py)
        self.metrics = b""  # validation metrics' state (see metrics.py), when options.metrics is set
        self.missing = False  # a replaying task found no input files for its partition (and did not train)

    def add(self, loss: float, n: int, correct: int = 0) -> None:
        self.samples += n
        self.loss_sum += float(loss) * n
        self.correct += int(correct)

    def record_batch(self):
        import pyarrow as pa

        return pa.RecordBatch.from_pydict(
            {"partition": pa.array([self.partition], pa.int32()), "samples": pa.array([self.samples], pa.int64()),
             "loss_sum": pa.array([self.loss_sum], pa.float64()), "pushes": pa.array([self.pushes], pa.int64()),
             "correct": pa.array([self.correct], pa.int64()), "state": pa.array([self.state], pa.binary()),
             "metrics": pa.array([self.metrics], pa.binary()), "missing": pa.array([self.missing], pa.bool_())})


def train_function(spec: WorkerSpec, epoch: int, keep_input: bool,
                   only: frozenset[int] | None = None) -> Callable[[Iterator], Iterator]:
    """The ``mapInArrow`` function of one training epoch over the prepared input (captures only its arguments).

    With ``keep_input`` each task also writes its partition's input files for later
    epochs (:mod:`dlbridge.trainer.partition_cache`). With ``only``, tasks of
    other partitions drain their input (none, when the job filters it) and yield no row.
    """

    def train(batches: Iterator) -> Iterator:
        return train_partition(spec, epoch, batches, keep_input, only)

    return train


def replay_function(spec: WorkerSpec, epoch: int) -> Callable[[Iterator], Iterator]:
    """The ``mapInArrow`` function of an epoch that trains on the input files of the first.

    Its input rows carry no data (they are drained); a task without its
    partition's files reports ``missing`` instead of training. In ``sync`` mode
    either every worker of the barrier trains or none does (then each reports
    whether its own files were there).
    """

    def train(batches: Iterator) -> Iterator:
        return replay_partition(spec, epoch, batches)

    return train


def chained_function(spec: WorkerSpec, streams: bool) -> Callable[[Iterator], Iterator]:
    """The ``mapInArrow`` function of a chained run: epoch after epoch, as the driver says.

    Each task asks the parameter server which epoch to train, trains it,
    reports the epoch's statistics and asks again, until the answer is 0 (see
    :mod:`dlbridge.trainer.epoch_board`). With ``streams`` the job's input is
    the training input: a task trains its first epoch on the streamed rows
    (writing its partition's input files when more epochs follow), so a task
    that Spark retries streams its partition again. Otherwise (the input of
    :meth:`PreparedData.partitions_only`) and in its later epochs, it trains on
    the input files; without them it reports ``missing`` instead of training.
    It yields no rows: the statistics reach the driver through the server.
    """

    def train(batches: Iterator) -> Iterator:
        return chained_partition(spec, batches, streams)

    return train


def remove_input_function(fit_id: str) -> Callable[[Iterator], Iterator]:
    """The ``mapInArrow`` function deleting a fit's input files on the executors it runs on."""

    def remove(batches: Iterator) -> Iterator:
        import pyarrow as pa

        _drain(batches)
        partition_cache.remove_fit(fit_id)
        yield pa.RecordBatch.from_pydict({"done": pa.array([True])})

    return remove


def evaluate_function(spec: WorkerSpec) -> Callable[[Iterator], Iterator]:
    """The ``mapInArrow`` function computing validation loss and correct predictions."""

    def evaluate(batches: Iterator) -> Iterator:
        return evaluate_partition(spec, batches)

    return evaluate


def train_partition(spec: WorkerSpec, epoch: int, batches: Iterator, keep_input: bool = False,
                    only: frozenset[int] | None = None) -> Iterator:
    """Train on one partition's stream for one epoch; yield one row of statistics."""
    from pyspark import TaskContext

    context = TaskContext.get()
    partition = context.partitionId() if context else 0
    if only is not None and partition not in only:
        _drain(batches)
        return
    opts = spec.options
    source = windows(batches, spec.input_dim, spec.label_dim, spec.sparse, spec.targets_are_features,
                     bool(opts.weightCol))
    if keep_input:
        source = partition_cache.caching(source, spec.fit_id, partition)
    yield _train(spec, epoch, context, partition, source).record_batch()


def replay_partition(spec: WorkerSpec, epoch: int, batches: Iterator) -> Iterator:
    """Train on the partition's input files of this executor; report ``missing`` if it has none."""
    from pyspark import TaskContext

    _drain(batches)  # no rows (see PreparedData.partitions_only): the job has them only for partitions, locality
    context = TaskContext.get()
    partition = context.partitionId() if context else 0
    present = partition_cache.has_partition(spec.fit_id, partition)
    if not present and spec.options.mode != "sync":  # the driver streams this partition again
        stats = _Stats(partition)
        stats.missing = True
        yield stats.record_batch()
        return
    source = partition_cache.replay(spec.fit_id, partition) if present else iter(())
    yield _train(spec, epoch, context, partition, source, present).record_batch()


def chained_partition(spec: WorkerSpec, batches: Iterator, streams: bool) -> Iterator:
    """Train for the epochs the server hands out, first on the streamed input (``streams``), then on its files."""
    from pyspark import TaskContext

    if not streams:
        _drain(batches)  # no rows, as in replay_partition
    context = TaskContext.get()
    partition = context.partitionId() if context else 0
    task = {"partition": partition, "task_attempt_id": context.taskAttemptId() if context else 0,
            "attempt": context.attemptNumber() if context else 0}
    opts = spec.options
    with _connect(spec) as conn:
        epoch = conn.next_epoch(task)
        while epoch:
            stats = _Stats(partition)
            if streams:
                source = windows(batches, spec.input_dim, spec.label_dim, spec.sparse, spec.targets_are_features,
                                 bool(opts.weightCol))
                if epoch < opts.epochs:
                    source = partition_cache.caching(source, spec.fit_id, partition)
                stats, streams = _train_on(conn, spec, epoch, context, partition, source), False
            elif partition_cache.has_partition(spec.fit_id, partition):
                stats = _train_on(conn, spec, epoch, context, partition, partition_cache.replay(spec.fit_id, partition))
            elif opts.mode == "sync":  # it joins the barrier all the same (see _train_on): nobody trains
                stats = _train_on(conn, spec, epoch, context, partition, iter(()), present=False)
            else:
                stats.missing = True
            finished = {"epoch": epoch, "samples": stats.samples, "loss_sum": stats.loss_sum,
                        "pushes": stats.pushes, "correct": stats.correct, "missing": stats.missing}
            epoch = conn.next_epoch({**task, "finished": finished}, stats.state)
    if streams:  # told to stop before it trained: read the input to its end all the same
        _drain(batches)
    yield from ()


def _train(spec: WorkerSpec, epoch: int, context, partition: int, source: Iterator[tuple[np.ndarray, ...]],
           present: bool = True) -> _Stats:
    """Train on ``source`` for one epoch, on a connection of its own (see :func:`_train_on`)."""
    with _connect(spec) as conn:
        return _train_on(conn, spec, epoch, context, partition, source, present)


def _train_on(conn: ServerConnection, spec: WorkerSpec, epoch: int, context, partition: int,
              source: Iterator[tuple[np.ndarray, ...]], present: bool = True) -> _Stats:
    """Train on ``source`` for one epoch; in ``sync`` mode, only if every worker of the barrier has its input.

    ``present`` is False for a ``sync`` replay task without its input files: it
    still joins the barrier on the server (which is how every worker learns
    that this epoch must be streamed again), then trains nobody's batches.
    """
    opts = spec.options
    runtime = runtime_for(spec)
    rng = np.random.default_rng([opts.seed % 2 ** 64, epoch, partition]) if opts.shuffle else None
    stream = minibatches_of(source, opts.batchSize, rng)
    stats = _Stats(partition)
    answer = conn.hello({"partition": partition, "epoch": epoch,
                         "attempt": context.attemptNumber() if context else 0,
                         "task_attempt_id": context.taskAttemptId() if context else 0, "present": present,
                         "num_params": spec.num_params})
    if not answer.get("everyone_present", True):  # sync: no worker trains; the driver streams the epoch again
        stats.missing = not present
        conn.done({"epoch": epoch})
        return stats
    if opts.stepsPerSync == 1 and opts.mode == "sync":
        _sync_gradient_loop(runtime, conn, stream, stats)
    elif opts.stepsPerSync == 1:
        _gradient_loop(runtime, conn, stream, stats)
    else:
        runtime.assign(conn.pull()[1])
        _local_loop(runtime, conn, stream, stats, opts.stepsPerSync)
    if opts.mode == "sync":
        conn.done({"epoch": epoch})
    stats.state = runtime.state().tobytes()
    return stats


def _drain(batches: Iterator) -> None:
    """Read a task's input to its end (a Python worker that leaves input unread is not reused)."""
    for _ in batches:
        pass


def evaluate_partition(spec: WorkerSpec, batches: Iterator) -> Iterator:
    """Evaluate the server's current weights on one partition; yield one row of statistics."""
    from pyspark import TaskContext

    context = TaskContext.get()
    runtime = runtime_for(spec)
    with _connect(spec) as conn:
        runtime.assign(conn.pull()[1])
    stats = _Stats(context.partitionId() if context else 0)
    if runtime.metric_set is not None:
        runtime.metric_set.reset()
    for batch in minibatches(batches, EVAL_BATCH, spec.input_dim, spec.label_dim, spec.sparse, None,
                             spec.targets_are_features, bool(spec.options.weightCol)):
        loss, correct = runtime.evaluate(*batch)
        stats.add(loss.numpy(), len(batch[0]), correct.numpy())
    if runtime.metric_set is not None:
        stats.metrics = runtime.metric_set.state()
    yield stats.record_batch()


def _connect(spec: WorkerSpec) -> ServerConnection:
    return ServerConnection(spec.host, spec.port, spec.secret, spec.num_params, spec.timeout, spec.pin)


def _gradient_loop(runtime, conn: ServerConnection, stream: Iterator, stats: _Stats) -> None:
    """One exchange per mini-batch: the weights each push returns are loaded by the next step's own call."""
    weights = conn.pull()[1]
    for batch in stream:  # (x, y) or, with sample weights, (x, y, w)
        loss, grad = runtime.assign_and_gradient(weights, *batch)
        stats.add(loss.numpy(), len(batch[0]))
        weights = conn.push(grad.numpy(), len(batch[0]))[1]
        stats.pushes += 1
    runtime.assign(weights)


def _sync_gradient_loop(runtime, conn: ServerConnection, stream: Iterator, stats: _Stats) -> None:
    """``sync``, one exchange per mini-batch: each round's averaged gradient comes back and is applied here.

    Every worker starts from the server's weights and optimizer state and applies
    every round's update with the server's own update function, so all hold the
    same weights after each round, without 1 MB of weights per step or an update
    on the server's side of the round. At the end of the epoch the worker reports
    its weights and optimizer state; the server keeps the one that applied the most rounds.
    """
    copy = runtime.server_copy()
    weights, optimizer = conn.pull_state(copy.optimizer_state_size)
    runtime.assign(weights)
    copy.load_optimizer_state(optimizer)
    applied = 0
    for batch in stream:  # (x, y) or, with sample weights, (x, y, w)
        loss, grad = runtime.gradient(*batch)
        stats.add(loss.numpy(), len(batch[0]))
        applied, update = conn.push_for_update(grad.numpy(), len(batch[0]))
        copy.apply(update)
        stats.pushes += 1
    if applied:
        conn.report(applied, runtime.weights(), copy.optimizer_state())


def _local_loop(runtime, conn: ServerConnection, stream: Iterator, stats: _Stats, steps_per_sync: int) -> None:
    start = runtime.weights()
    steps = samples = 0
    for batch in stream:
        stats.add(runtime.local_step(*batch).numpy(), len(batch[0]))
        steps, samples = steps + 1, samples + len(batch[0])
        if steps == steps_per_sync:
            start = _push_delta(runtime, conn, start, samples, stats)
            steps = samples = 0
    if steps:
        _push_delta(runtime, conn, start, samples, stats)


def _push_delta(runtime, conn: ServerConnection, start: np.ndarray, samples: int, stats: _Stats) -> np.ndarray:
    weights = np.array(conn.push(runtime.weights() - start, samples, delta=True)[1])  # own it: the view is reused
    runtime.assign(weights)
    stats.pushes += 1
    return weights
