"""Executor-side training and evaluation loops (run inside ``mapInArrow``)."""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterator

import numpy as np

from dlbridge.trainer.client import ServerConnection
from dlbridge.trainer.data import minibatches
from dlbridge.trainer.options import TrainingOptions
from dlbridge.trainer.runtime import runtime_for

STATS_SCHEMA = ("partition int, samples long, loss_sum double, pushes long, correct long, state binary, "
                "metrics binary")
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
             "metrics": pa.array([self.metrics], pa.binary())})


def train_function(spec: WorkerSpec, epoch: int) -> Callable[[Iterator], Iterator]:
    """The ``mapInArrow`` function of one training epoch (captures only its arguments)."""

    def train(batches: Iterator) -> Iterator:
        return train_partition(spec, epoch, batches)

    return train


def evaluate_function(spec: WorkerSpec) -> Callable[[Iterator], Iterator]:
    """The ``mapInArrow`` function computing validation loss and correct predictions."""

    def evaluate(batches: Iterator) -> Iterator:
        return evaluate_partition(spec, batches)

    return evaluate


def train_partition(spec: WorkerSpec, epoch: int, batches: Iterator) -> Iterator:
    """Train on one partition's stream for one epoch; yield one row of statistics."""
    from pyspark import TaskContext

    context = TaskContext.get()
    partition = context.partitionId() if context else 0
    attempt = context.attemptNumber() if context else 0
    runtime = runtime_for(spec)
    opts = spec.options
    rng = np.random.default_rng([opts.seed % 2 ** 64, epoch, partition]) if opts.shuffle else None
    stream = minibatches(batches, opts.batchSize, spec.input_dim, spec.label_dim, spec.sparse, rng,
                         spec.targets_are_features, bool(opts.weightCol))
    stats = _Stats(partition)
    with _connect(spec) as conn:
        conn.hello({"partition": partition, "epoch": epoch, "attempt": attempt,
                    "stage_attempt_key": _stage_attempt_key(context, spec.options.mode), "num_params": spec.num_params})
        if opts.stepsPerSync == 1:
            _gradient_loop(runtime, conn, stream, stats)
        else:
            runtime.assign(conn.pull()[1])
            _local_loop(runtime, conn, stream, stats, opts.stepsPerSync)
        if opts.mode == "sync":
            conn.done({"epoch": epoch})
    stats.state = runtime.state().tobytes()
    yield stats.record_batch()


def _stage_attempt_key(context, mode: str) -> int:
    """A number that grows with every attempt of the ``sync`` barrier stage (0 in other modes).

    PySpark's ``TaskContext`` has no stage attempt number, but Spark launches every
    task of a retried stage after all tasks of the failed attempt, so task attempt
    ids (unique in the application) grow: the smallest id of the attempt's tasks,
    agreed with ``allGather``, is the same for all of them and larger than any
    earlier attempt's.
    """
    if mode != "sync" or context is None:
        return 0
    from pyspark import BarrierTaskContext

    return min(int(t) for t in BarrierTaskContext.get().allGather(str(context.taskAttemptId())))


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
