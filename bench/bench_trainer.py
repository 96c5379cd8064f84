"""Trainer benchmark: parameter-server fits per mode vs single-process ``model.fit``, PS round trips/s.

Run with ``dev/bench trainer`` (or ``python bench/bench_trainer.py --help``). In one run:

* data: ``--rows`` (default 60,000) training and 10,000 test rows of 784 standard-normal
  features labelled by a fixed random linear teacher (784 -> 10, argmax), written
  to Parquet and read by Spark ``local[2]``;
* reference: single-process ``model.fit`` of an MLP 784-256-256-10 (269,322
  parameters), Adam(1e-3), batch 128, same epochs, in this process, measured right
  before each trainer fit (paired, so that a change in machine load hits both), the
  median of ``--reference-passes`` fits (default 3);
  the modes run in rounds (``--repeats``), each round starting one mode later than the
  last (so each mode's references stand at each place in a round), and the summary gives each variant's
  median ratios over the rounds; a second summary divides each variant's median
  training throughput by the median of every ``model.fit`` pass of the run;
* each mode (hogwild, async, sync) with 2 workers, same model, batch and optimizer:
  training throughput (samples over the epochs' time: the input is read and cached
  before epoch 1, like ``model.fit``'s in-memory arrays), steady state (epochs 2+),
  whole fit (including reading, checking and caching the input), test accuracy;
* parameter-server round trips/s on loopback for that model: PULL then PUSH (no
  reply), and the combined PUSH-returning-weights that workers use; over plain TCP and
  over TLS (what a fit uses when Spark's crypto/ssl is on), median of 3 alternating rounds.
  ``--round-trips-only`` measures just these.
* the cost of the fit's options: a variant ``mode[:stepsPerSync]+option[+option...]`` adds
  ``weights`` (weightCol, every weight 1.0), ``val`` (validationFraction 0.1), ``metrics``
  (accuracy and auc on the validation split), ``checkpoints`` (checkpointInterval 5, a local
  directory) or ``tensorboard`` (event files in a local directory); e.g.
  ``--modes hogwild,hogwild+weights,hogwild+val,hogwild+val+metrics,hogwild+checkpoints,hogwild+tensorboard``.
  Each option's cost is measured against the variant without its last option (``hogwild+val+metrics``
  against ``hogwild+val``), as the ratio of their median ratios to the paired ``model.fit``.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

logger = logging.getLogger("bench_trainer")
DIM, CLASSES, HIDDEN = 784, 10, [256, 256]


def teacher_data(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal features labelled by the argmax of a fixed random linear teacher (784 -> 10)."""
    weights = np.random.default_rng(seed).normal(size=(DIM, CLASSES))
    x = np.random.default_rng(seed + 1).standard_normal((rows, DIM), dtype=np.float32)
    return x, (x @ weights).argmax(axis=1).astype(np.int64)


def write_parquet(x: np.ndarray, y: np.ndarray, path: str) -> None:
    """Features as ``array<float>`` plus a ``double`` label, without per-row Python work."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    offsets = pa.array(np.arange(0, x.size + 1, DIM, dtype=np.int32))
    features = pa.ListArray.from_arrays(offsets, pa.array(x.ravel()))
    pq.write_table(pa.table({"features": features, "label": y.astype(np.float64)}), path, row_group_size=10_000)


def student(seed: int = 7):
    """MLP 784-256-256-10 with fixed initial weights."""
    import keras

    from dlbridge.trainer import mlp_builder

    keras.utils.set_random_seed(seed)
    return mlp_builder(HIDDEN, "classification")(DIM, CLASSES)


def single_process(x, y, x_test, y_test, epochs: int, batch: int, passes: int = 3) -> dict:
    """Reference: in-process ``model.fit`` with the same model, optimizer and batch size.

    The rate is the median of ``passes`` fits, each from the same initial weights: back-to-back
    fits on this project's 2-core VM ranged from 28,061 to 44,481 samples/s (2026-12-02, 0% steal),
    more than any change measured against them. The accuracy is the last fit's.
    """
    import keras

    rates = []
    for _ in range(passes):
        model = student()
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
        started = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0)
        rates.append(epochs * len(x) / (time.perf_counter() - started))
    rate = statistics.median(rates)
    return {"what": "single-process model.fit", "seconds": epochs * len(x) / rate, "samples_per_sec": rate,
            "training_samples_per_sec": rate, "steady_samples_per_sec": rate, "prepare_seconds": 0.0,
            "accuracy": _accuracy(model, x_test, y_test), "rates": rates}


OPTIONS = ("weights", "val", "metrics", "checkpoints", "tensorboard")


def option_values(options: list[str], tmp: str) -> dict:
    """The TrainingOptions fields that the variant's ``options`` (see the module doc) turn on."""
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise SystemExit(f"unknown option(s) {sorted(unknown)} in --modes; known: {', '.join(OPTIONS)}")
    values: dict = {}
    if "weights" in options:
        values["weightCol"] = "w"
    if "val" in options or "metrics" in options:
        values["validationFraction"] = 0.1
    if "metrics" in options:
        values["metrics"] = ["accuracy", "auc"]
    if "checkpoints" in options:
        values.update(checkpointDir=tempfile.mkdtemp(prefix="checkpoints-", dir=tmp), checkpointInterval=5)
    if "tensorboard" in options:
        values["tensorboardDir"] = tempfile.mkdtemp(prefix="tensorboard-", dir=tmp)
    return values


def trainer_run(df, variant: str, x_test, y_test, epochs: int, batch: int, tmp: str) -> dict:
    """One parameter-server fit (``mode``, ``mode:stepsPerSync``, each optionally ``+option...``)."""
    from pyspark.sql import functions as F

    from dlbridge.trainer import TrainingOptions, fit

    head, *options = variant.split("+")
    mode, _, steps = head.partition(":")
    opts = TrainingOptions(mode=mode, epochs=epochs, batchSize=batch, numWorkers=2, optimizer="adam",
                           optimizerOptions='{"learning_rate": 0.001}', shuffle=True, stepsPerSync=int(steps or 1),
                           verbose=0, **option_values(options, tmp))
    cpu_before = process_cpu()
    started = time.perf_counter()
    result = fit(df.withColumn("w", F.lit(1.0)) if opts.weightCol else df, "features", "label", student(), opts)
    seconds = time.perf_counter() - started
    cpu = {name: used - cpu_before.get(name, 0.0) for name, used in process_cpu().items()}
    later = result.history[1:] or result.history
    samples = sum(h["samples"] for h in result.history)
    label = f"dlbridge {mode}, 2 workers" + (f", stepsPerSync={steps}" if steps else "") + \
        "".join(f" +{option}" for option in options)
    return {"what": label, "seconds": seconds, "samples": samples, "samples_per_sec": samples / seconds,
            "training_samples_per_sec": samples / sum(h["seconds"] for h in result.history),
            "steady_samples_per_sec": sum(h["samples"] for h in later) / sum(h["seconds"] for h in later),
            "prepare_seconds": result.summary["prepare_seconds"], "accuracy": _accuracy(result.model, x_test, y_test),
            "cpu": cpu}


def process_cpu() -> dict[str, float]:
    """CPU seconds (user + system) used so far by this process and its descendants, by role.

    Roles: ``driver`` (this Python process: the parameter server's threads, py4j, the fit
    loop), ``jvm`` (Spark's JVM: scheduling and streaming the cached input to Python) and
    ``python workers`` (Spark's Python daemon and its forked workers, summed). Read from
    ``/proc`` (Linux); a worker that exited between two readings drops its CPU from the sum.
    """
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float, str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    command = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue  # exited meanwhile
            stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick, command)
    roles = {"driver": 0.0, "jvm": 0.0, "python workers": 0.0}
    for pid, (_, cpu, command) in stats.items():
        ancestor = pid
        while ancestor in stats and ancestor != os.getpid():
            ancestor = stats[ancestor][0]
        if ancestor != os.getpid():
            continue
        role = "driver" if pid == os.getpid() else "jvm" if "java" in command.split(" ")[0] else "python workers"
        roles[role] += cpu
    return roles


def round_trips(seconds: float = 3.0, rounds: int = 3) -> dict:
    """PS round trips/s on loopback for the 269k-parameter model, plain TCP and TLS, alternating.

    Each of ``rounds`` rounds measures both transports back to back (client thread in this
    process); the figures are medians over the rounds.
    """
    import keras

    from dlbridge.trainer.store import WeightStore

    store = WeightStore(student(), keras.optimizers.Adam(1e-3), locked=True)
    runs: dict[str, list[tuple[float, float]]] = {"plain": [], "tls": []}
    for _ in range(rounds):
        for transport_name in runs:
            runs[transport_name].append(_round_trip_rates(store, transport_name == "tls", seconds))
    out: dict = {"params": store.num_params, "rounds": rounds}
    for name, rates in runs.items():
        out[f"{name}_pull_then_push_per_sec"] = statistics.median(r[0] for r in rates)
        out[f"{name}_push_returning_weights_per_sec"] = statistics.median(r[1] for r in rates)
    return out


def _round_trip_rates(store, tls: bool, seconds: float) -> tuple[float, float]:
    """(PULL then PUSH without reply, PUSH returning weights) per second against a fresh server."""
    from dlbridge.trainer import protocol as p
    from dlbridge.trainer import transport
    from dlbridge.trainer.client import ServerConnection
    from dlbridge.trainer.server import ParameterServer

    identity = transport.new_identity() if tls else None
    secret = p.new_secret()
    server = ParameterServer(store, secret, "async", 1, "127.0.0.1", timeout=30.0, tls=identity)
    try:
        with ServerConnection("127.0.0.1", server.port, secret, store.num_params, 30.0,
                              identity.fingerprint if identity else None) as conn:
            grad = np.full(store.num_params, 1e-6, dtype=np.float32)
            separate = _rate(lambda: (conn.pull(), conn.push(grad, 128, want_weights=False)), seconds)
            combined = _rate(lambda: conn.push(grad, 128), seconds)
    finally:
        server.close()
    return separate, combined


def _rate(step, seconds: float) -> float:
    for _ in range(20):
        step()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        count += 1
    return count / (time.perf_counter() - started)


def _accuracy(model, x, y) -> float:
    return float((model.predict(x, batch_size=1024, verbose=0).argmax(axis=1) == y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--modes", default="hogwild,async,sync,hogwild:4",
                        help="comma-separated modes, each optionally :stepsPerSync")
    parser.add_argument("--repeats", type=int, default=3, help="rounds over all modes")
    parser.add_argument("--reference-passes", type=int, default=3,
                        help="model.fit passes per paired reference (their median is the reference)")
    parser.add_argument("--round-trips-only", action="store_true", help="only the parameter-server round trips")
    parser.add_argument("--skip-round-trips", action="store_true", help="only the paired fits")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    trips = {} if args.skip_round_trips else round_trips()
    logger.info("round trips: %s", trips)
    pairs = [] if args.round_trips_only else _paired_runs(args)
    for name in ("plain", "tls") if trips else ():
        print(f"round trips/s ({name}, median of {trips['rounds']}), {trips['params']:,} parameters: "
              f"pull+push {trips[f'{name}_pull_then_push_per_sec']:.0f}, "
              f"push returning weights {trips[f'{name}_push_returning_weights_per_sec']:.0f}")
    if pairs:
        _report(pairs)


def _paired_runs(args) -> list[tuple[dict, dict]]:
    """``(model.fit, trainer fit)`` per mode, the reference measured right before its trainer fit."""
    from pyspark.sql import SparkSession

    x_all, y_all = teacher_data(args.rows + 10_000)
    x, y, x_test, y_test = x_all[: args.rows], y_all[: args.rows], x_all[args.rows:], y_all[args.rows:]
    spark = (SparkSession.builder.master("local[2]").appName("bench-trainer")
             .config("spark.python.worker.reuse", "true").config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.execution.arrow.pyspark.enabled", "true").getOrCreate())
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "train.parquet")
            write_parquet(x, y, path)
            df = spark.read.parquet(path)
            started = time.perf_counter()
            trainer_run(df, "hogwild", x_test, y_test, 1, args.batch, tmp)  # start Python workers, warm the JVM
            print(f"warm-up fit, 1 epoch (fresh session: Python workers import TensorFlow): "
                  f"{time.perf_counter() - started:.1f} s")
            modes = args.modes.split(",")
            # Each round starts one mode later: a reference measured right after a trainer fit ran slower
            # or faster by where it stood in the round (2026-12-02: the first mode's paired references
            # were 34-40k samples/s in three runs, the third's 29-39k), so each mode takes each place.
            return [(single_process(x, y, x_test, y_test, args.epochs, args.batch, args.reference_passes),
                     trainer_run(df, mode, x_test, y_test, args.epochs, args.batch, tmp))
                    for r in range(args.repeats) for mode in modes[r % len(modes):] + modes[:r % len(modes)]]
    finally:
        spark.stop()


def _report(pairs: list[tuple[dict, dict]]) -> None:
    print("| what | model.fit samples/s (paired; median of its passes) | training samples/s | ratio | "
          "steady (epochs 2+) | ratio | "
          "whole fit incl. input caching | ratio | test accuracy (model.fit) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for reference, run in pairs:
        ref = reference["samples_per_sec"]
        passes = " / ".join(f"{r:,.0f}" for r in reference["rates"])
        print(f"| {run['what']} | {ref:,.0f} ({passes}) | {run['training_samples_per_sec']:,.0f} | "
              f"{run['training_samples_per_sec'] / ref:.2f} | {run['steady_samples_per_sec']:,.0f} | "
              f"{run['steady_samples_per_sec'] / ref:.2f} | {run['seconds']:.1f} s "
              f"({run['prepare_seconds']:.1f} s caching) | {run['samples_per_sec'] / ref:.2f} | "
              f"{run['accuracy']:.4f} ({reference['accuracy']:.4f}) |")
    print("\nCPU seconds per trainer fit, by process (whole fit, input caching included):")
    print("| what | wall s | driver (parameter server) | JVM | Python workers | total | CPU-s per 1,000 samples |")
    print("|---|---|---|---|---|---|---|")
    for _, run in pairs:
        cpu, total = run["cpu"], sum(run["cpu"].values())
        print(f"| {run['what']} | {run['seconds']:.1f} | {cpu['driver']:.1f} | {cpu['jvm']:.1f} | "
              f"{cpu['python workers']:.1f} | {total:.1f} | {1000 * total / run['samples']:.3f} |")
    print("\nMedian over rounds, per variant (ratios to the paired model.fit):")
    print("| what | rounds | training | steady | whole fit | accuracy - model.fit accuracy (worst) |")
    print("|---|---|---|---|---|---|")
    medians = {}
    for what in dict.fromkeys(run["what"] for _, run in pairs):
        mine = [(ref, run) for ref, run in pairs if run["what"] == what]
        ratios = medians[what] = {key: statistics.median(run[key] / ref["samples_per_sec"] for ref, run in mine)
                                  for key in ("training_samples_per_sec", "steady_samples_per_sec", "samples_per_sec")}
        worst = min(run["accuracy"] - ref["accuracy"] for ref, run in mine)
        print(f"| {what} | {len(mine)} | {ratios['training_samples_per_sec']:.2f} | "
              f"{ratios['steady_samples_per_sec']:.2f} | {ratios['samples_per_sec']:.2f} | {worst:+.4f} |")
    _report_pooled(pairs)
    costs = [(what, what.rsplit(" +", 1)[0]) for what in medians if " +" in what]
    if costs:
        print("\nCost of each option: 1 - (median ratio with it) / (median ratio without it); "
              "training = epochs' time, whole fit = including input caching, validation and end of fit:")
        print("| option | against | training | whole fit |")
        print("|---|---|---|---|")
        for what, base in costs:
            if base in medians:
                cost = {key: 1 - medians[what][key] / medians[base][key]
                        for key in ("training_samples_per_sec", "samples_per_sec")}
                print(f"| {what} | {base} | {cost['training_samples_per_sec']:+.1%} | {cost['samples_per_sec']:+.1%} |")


def _report_pooled(pairs: list[tuple[dict, dict]]) -> None:
    """Each variant's median training rate against the median of every ``model.fit`` pass of the run.

    A second view beside the paired ratios, not a replacement: single passes of the same
    ``model.fit`` ranged over 1.7x within one run on this project's 2-core machine (24,821 to
    42,206 samples/s, 2026-12-02), so one variant's three paired references can all fall high or low.
    """
    passes = [rate for reference, _ in pairs for rate in reference["rates"]]
    pooled = statistics.median(passes)
    print(f"\nAgainst the median of all {len(passes)} model.fit passes of this run ({pooled:,.0f} samples/s; "
          f"passes {min(passes):,.0f}-{max(passes):,.0f}):")
    print("| what | median training samples/s | ratio |")
    print("|---|---|---|")
    for what in dict.fromkeys(run["what"] for _, run in pairs):
        rate = statistics.median(run["training_samples_per_sec"] for _, run in pairs if run["what"] == what)
        print(f"| {what} | {rate:,.0f} | {rate / pooled:.2f} |")


if __name__ == "__main__":
    main()
