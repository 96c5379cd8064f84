"""Cost of each fit option (weightCol, metrics, checkpoints, TensorBoard): interleaved A/B pairs, wall and CPU time.

Run with ``dev/bench options`` (or ``python bench/bench_options.py --help``). The workload is
bench_trainer's (imported, not copied): ``--rows`` training rows of 784 standard-normal features
labelled by a fixed linear teacher, the MLP 784-256-256-10, Adam(1e-3), batch 128, hogwild with 2
workers on Spark ``local[2]``.

Each option is measured against its own base, in pairs of fits run back to back:

* ``weights``: weightCol (every weight 1.0) against no weightCol (the frame has the column in both);
* ``metrics``: validationFraction 0.1 + metrics accuracy and auc against validationFraction 0.1 alone;
* ``checkpoints``: checkpointInterval 5 in a local checkpointDir (a fresh one per fit) against none;
* ``tensorboard``: a local tensorboardDir (a fresh one per fit) against none.

Each round runs one pair per option; the order within a pair alternates between rounds (base
first in even rounds, option first in odd ones), so a drift in machine load hits both sides
equally. A pair's cost is ``1 - rate_with / rate_without`` (positive: the option slows training).

Per fit it records, as wall time and as CPU seconds summed over the whole process tree (this
process, the Spark JVM, its Python daemon and workers: ``utime + stime + cutime + cstime`` of
every descendant in ``/proc``, so the time of workers that exited is counted in their parent):

* ``training``: the whole fit minus reading/caching the input and minus the validation jobs,
  i.e. the epochs' training jobs plus everything the epoch loop does between them (metrics
  merge, checkpoint and TensorBoard writes, which the epochs' own ``seconds`` do not include);
* ``epochs``: the epochs' own training time as ``TrainingResult.history`` reports it (wall only),
  which is bench_trainer's "training throughput";
* ``whole``: the whole ``fit`` call, validation included.

The CPU time per sample is the judged measure: the machine's other load changes the wall time
of a fit by +-20% (the scheduler hands the 2 cores to others), but hardly the CPU seconds the
fit itself burns. Phases are separated by wrapping ``prepare`` and ``_validate`` of
``dlbridge.trainer.fit`` in this process only (timing wrappers; nothing else changes).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_trainer import option_values, student, teacher_data, write_parquet  # noqa: E402

OPTIONS = {  # option -> (bench_trainer options of the base fit, of the fit with the option)
    "weights": ([], ["weights"]),
    "metrics": (["val"], ["val", "metrics"]),
    "checkpoints": ([], ["checkpoints"]),
    "tensorboard": ([], ["tensorboard"]),
}
_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int | None = None) -> float:
    """User + system CPU seconds of ``root`` (default: this process) and all its live descendants.

    Includes each process's ``cutime``/``cstime`` (its reaped children), so a worker that
    exits between two readings still counts, in its parent.
    """
    root = os.getpid() if root is None else root
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:  # exited while listing
            continue
        pid = int(entry)
        parents[pid] = int(fields[1])  # fields[0] is the state, after "pid (comm)"
        ticks[pid] = sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += ticks.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total / _TICK


class Clock:
    """Wall and tree-CPU seconds accumulated per phase name."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Adds the wall and CPU time of the ``with`` body to ``name``."""
        wall, cpu = time.perf_counter(), tree_cpu_seconds()
        try:
            yield
        finally:
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - wall
            self.cpu[name] = self.cpu.get(name, 0.0) + tree_cpu_seconds() - cpu


@contextlib.contextmanager
def timed_phases(clock: Clock) -> Iterator[None]:
    """Wraps ``prepare`` and ``_validate`` of ``dlbridge.trainer.fit`` to time them into ``clock``."""
    module = sys.modules["dlbridge.trainer.fit"]

    def wrap(name: str, function: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            with clock.phase(name):
                return function(*args, **kwargs)
        return timed

    saved = {name: getattr(module, name) for name in ("prepare", "_validate")}
    for name, function in saved.items():
        setattr(module, name, wrap(name, function))
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(module, name, function)


def one_fit(df, options: list[str], epochs: int, batch: int, tmp: str) -> dict[str, float]:
    """One hogwild fit with bench_trainer's ``options``; its samples and per-phase wall/CPU seconds."""
    from dlbridge.trainer import TrainingOptions, fit

    opts = TrainingOptions(mode="hogwild", epochs=epochs, batchSize=batch, numWorkers=2, optimizer="adam",
                           optimizerOptions='{"learning_rate": 0.001}', shuffle=True, verbose=0,
                           **option_values(options, tmp))
    model, clock = student(), Clock()
    with timed_phases(clock), clock.phase("whole"):
        result = fit(df, "features", "label", model, opts)
    samples = sum(h["samples"] for h in result.history)
    out = {"samples": samples, "epochs_wall": sum(h["seconds"] for h in result.history),
           "val_loss": result.history[-1].get("val_loss", float("nan"))}
    for kind, seconds in (("wall", clock.wall), ("cpu", clock.cpu)):
        out[f"whole_{kind}"] = seconds["whole"]
        out[f"training_{kind}"] = seconds["whole"] - seconds["prepare"] - seconds.get("_validate", 0.0)
    return out


MEASURES = (  # (label, key, kind): "rate" compares samples/s, "cpu" compares CPU seconds per sample
    ("training CPU s/sample", "training_cpu", "cpu"),
    ("whole-fit CPU s/sample", "whole_cpu", "cpu"),
    ("training wall", "training_wall", "rate"),
    ("epochs' wall (history)", "epochs_wall", "rate"),
    ("whole-fit wall", "whole_wall", "rate"),
)


def pair_cost(base: dict, with_option: dict, key: str) -> float:
    """The option's cost in one pair: extra seconds per sample relative to the base (time and CPU alike).

    ``1 - rate_with / rate_without`` for a rate equals ``1 - t_without / t_with``; for CPU seconds
    per sample the cost is ``cpu_with / cpu_without - 1``. Both are positive when the option costs.
    """
    per_sample = {name: run[key] / run["samples"] for name, run in (("base", base), ("with", with_option))}
    if key.endswith("_cpu"):
        return per_sample["with"] / per_sample["base"] - 1
    return 1 - per_sample["base"] / per_sample["with"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--options", default=",".join(OPTIONS), help=f"comma-separated, of {', '.join(OPTIONS)}")
    args = parser.parse_args()
    chosen = args.options.split(",")
    unknown = set(chosen) - set(OPTIONS)
    if unknown:
        raise SystemExit(f"--options: unknown {sorted(unknown)}; known: {', '.join(OPTIONS)}")
    with open("/proc/loadavg") as f:
        print(f"load average at start: {f.read().split()[0]}; {args.rows:,} rows, {args.epochs} epochs, "
              f"batch {args.batch}, {args.rounds} rounds, options {', '.join(chosen)}", flush=True)
    pairs = _run_pairs(args, chosen)
    _report(pairs, chosen)


def _run_pairs(args, chosen: list[str]) -> dict[str, list[tuple[dict, dict]]]:
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    x, y = teacher_data(args.rows)
    spark = (SparkSession.builder.master("local[2]").appName("bench-options")
             .config("spark.python.worker.reuse", "true").config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.execution.arrow.pyspark.enabled", "true").getOrCreate())
    pairs: dict[str, list[tuple[dict, dict]]] = {option: [] for option in chosen}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "train.parquet")
            write_parquet(x, y, path)
            df = spark.read.parquet(path).withColumn("w", F.lit(1.0))
            for warm in (["val", "metrics", "weights"], ["checkpoints", "tensorboard"]):  # workers import TF
                one_fit(df, warm, 1, args.batch, tmp)
            for round_ in range(args.rounds):
                for option in chosen:
                    base, with_option = OPTIONS[option]
                    order = [(False, base), (True, with_option)]
                    runs = {flag: one_fit(df, opts, args.epochs, args.batch, tmp)
                            for flag, opts in (order if round_ % 2 == 0 else order[::-1])}
                    pairs[option].append((runs[False], runs[True]))
                    print(f"round {round_ + 1} {option}: " + ", ".join(
                        f"{label} {pair_cost(runs[False], runs[True], key):+.1%}" for label, key, _ in MEASURES),
                        flush=True)
    finally:
        spark.stop()
    return pairs


def _report(pairs: dict[str, list[tuple[dict, dict]]], chosen: list[str]) -> None:
    print("\nPer-pair cost of each option (positive = slower / more CPU), median [min, max] over rounds:")
    print("| option | rounds | " + " | ".join(label for label, _, _ in MEASURES) + " |")
    print("|---|---|" + "---|" * len(MEASURES))
    for option in chosen:
        cells = []
        for _, key, _ in MEASURES:
            costs = [pair_cost(base, run, key) for base, run in pairs[option]]
            cells.append(f"{statistics.median(costs):+.1%} [{min(costs):+.1%}, {max(costs):+.1%}]")
        print(f"| {option} | {len(pairs[option])} | " + " | ".join(cells) + " |")
    print("\nAbsolute figures, median over rounds (base -> with option):")
    print("| option | training CPU ms/sample | whole-fit CPU ms/sample | training samples/s | "
          "whole-fit samples/s |")
    print("|---|---|---|---|---|")
    for option in chosen:
        def med(side: int, key: str, rate: bool) -> float:
            values = [(p[side]["samples"] / p[side][key]) if rate else 1e3 * p[side][key] / p[side]["samples"]
                      for p in pairs[option]]
            return statistics.median(values)
        print(f"| {option} | {med(0, 'training_cpu', False):.3f} -> {med(1, 'training_cpu', False):.3f} | "
              f"{med(0, 'whole_cpu', False):.3f} -> {med(1, 'whole_cpu', False):.3f} | "
              f"{med(0, 'training_wall', True):,.0f} -> {med(1, 'training_wall', True):,.0f} | "
              f"{med(0, 'whole_wall', True):,.0f} -> {med(1, 'whole_wall', True):,.0f} |")


if __name__ == "__main__":
    main()
