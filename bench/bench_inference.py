"""Inference benchmark: dlbridge's Keras UDF vs Spark's predict_batch_udf vs raw Keras, rows/s.

Run with ``dev/bench inference [--rows N ...]``. A 784-256-256-10 softmax MLP
(random weights, seeded) predicts over ``--rows`` rows on ``local[2]``; every
Spark figure is end to end with the ``noop`` writer consuming every output row:

* (a) ``dlbridge.inference.build_keras_udf`` on ``array<float>`` input, and on
  an ML ``Vector`` column converted with ``vector_to_array(col, "float32")``;
* (b) ``pyspark.ml.functions.predict_batch_udf`` in the documented form
  (``predict`` calls ``model.predict(x)``);
* (c) ``predict_batch_udf`` calling the model directly (``model(x, training=False)``);
* (d) raw Keras in this process on the same numpy rows (``model.predict`` and a
  ``tf.function`` forward pass over 1024-row slices, each the median of 3 passes started 2 s
  after the last Spark job; the better one is the reference);
* ``KerasModel.transform`` from Scala and from PySpark, on ``Vector`` and on ``array<float>``
  input (both packed into float32 rows on the JVM), once ``dlbridge.ml.KerasModel`` exists.

The input rows are ``--distinct`` random rows repeated: ``range(rows)`` joined
with a broadcast of the distinct rows (the "source only" lines measure what
producing them costs: for 784-value Vectors, a large share of the JVM's time).
Only the small table of distinct rows is cached (so PySpark's conversion of local
Python rows is not paid again by every job); the joined rows are not, except in
the ``KerasModel.transform`` "(vector, cached)" line, which reads a cached
in-memory frame of ``--cached-rows`` rows about ``rows / cached-rows`` times (a
union). The Spark paths are interleaved round by round so all see the same
machine load; they share the Python workers, so every TensorFlow path runs with the thread sizing
dlbridge sets in that worker (1 intra-op thread per task on local[2]).
"""
from __future__ import annotations

import argparse
import atexit
import functools
import os
import shutil
import statistics
import tempfile
import time
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

FEATURES = 784


def build_model(seed: int) -> Any:
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((FEATURES,)),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ], name="bench_mlp")


def distinct_tables(spark: SparkSession, x: np.ndarray) -> dict[str, DataFrame]:
    """The rows of ``x`` keyed ``k``, column ``features`` held as ``array<float>``, as an ML ``Vector``,
    and as ``binary`` (packed little-endian float32); cached, so that PySpark's conversion of the local
    Python rows (pickled rows unpickled on the JVM, ~1.2 s for 4,096 rows of 784 values) is paid once
    here and not again by every timed job that joins them."""
    from pyspark.ml.linalg import Vectors

    tables = {
        "array": spark.createDataFrame([(i, r.tolist()) for i, r in enumerate(x)], "k long, features array<float>"),
        "vector": spark.createDataFrame([(i, Vectors.dense(r.tolist())) for i, r in enumerate(x)], ["k", "features"]),
        "binary": spark.createDataFrame([(i, r.astype("<f4").tobytes()) for i, r in enumerate(x)],
                                        "k long, features binary"),
    }
    for table in tables.values():
        table.cache().count()
    return tables


def input_frames(spark: SparkSession, tables: dict[str, DataFrame], rows: int,
                 partitions: int) -> dict[str, DataFrame]:
    """Frames of ``rows`` rows cycling through the rows of ``tables`` (from :func:`distinct_tables`):
    ``range(rows)`` joined with a broadcast of each table, keyed by form."""
    distinct = tables["array"].count()
    ids = spark.range(0, rows, 1, partitions).select(F.col("id"), (F.col("id") % distinct).alias("k"))
    return {form: ids.join(F.broadcast(df), "k").drop("k") for form, df in tables.items()}


def passthrough(batches: Iterator[pa.Array]) -> Iterator[pa.Array]:
    """Builds dlbridge's output struct from zeros: the cost of moving rows to Python and back."""
    from dlbridge.inference.arrow_io import outputs_struct

    for batch in batches:
        yield outputs_struct(np.zeros((len(batch), 10), np.float32), True, "classification",
                             ("prediction", "probability"))


def transfer_only_udf() -> Any:
    from pyspark.sql.functions import arrow_udf

    return arrow_udf(passthrough, "prediction double, probability array<double>")


def noop_rows_per_s(df: DataFrame, rows: int) -> float:
    start = time.perf_counter()
    df.write.format("noop").mode("overwrite").save()
    return rows / (time.perf_counter() - start)


def dlbridge_udf(model_bytes: bytes, batch_size: int, threads: int | None) -> Any:
    from dlbridge.inference import build_keras_udf

    return build_keras_udf(model_bytes, task="classification", batch_size=batch_size,
                           outputs=("prediction", "probability"), intra_op_threads=threads)


def predict_batch_udfs(model_path: str, batch_size: int, threads: int | None) -> dict[str, Any]:
    """Spark's predict_batch_udf, documented form (model.predict) and direct-call form."""
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import ArrayType, FloatType

    def make(direct: bool) -> Callable[[], Callable[[np.ndarray], np.ndarray]]:
        def make_predict_fn():
            import keras
            import tensorflow as tf

            try:  # same policy as dlbridge's worker (no-op if TF already started in this worker)
                tf.config.threading.set_intra_op_parallelism_threads(threads or 1)
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:
                pass
            model = keras.saving.load_model(model_path, compile=False, safe_mode=True)
            if direct:
                return lambda x: model(x, training=False).numpy()
            return lambda x: model.predict(x, verbose=0)
        return make_predict_fn

    common = dict(return_type=ArrayType(FloatType()), batch_size=batch_size, input_tensor_shapes=[[FEATURES]])
    return {"documented": predict_batch_udf(make(False), **common),
            "direct": predict_batch_udf(make(True), **common)}


def raw_keras_rows_per_s(model: Any, x: np.ndarray, batch_size: int, passes: int = 3,
                         settle_seconds: float = 2.0) -> dict[str, float]:
    """Raw Keras in this process over ``x``: model.predict, and a tf.function forward pass.

    Each is the median of ``passes`` passes over ``x``, started ``settle_seconds`` after the
    caller's last Spark job, so that the JVM's work after a job (its garbage collection, the
    cleanup of the job's state) does not land on the reference's two cores.
    """
    import tensorflow as tf

    step = tf.function(lambda b: model(b, training=False),
                       input_signature=[tf.TensorSpec([None, FEATURES], tf.float32)])
    step(x[:batch_size])
    model.predict(x[:batch_size], batch_size=batch_size, verbose=0)
    time.sleep(settle_seconds)

    def predict() -> None:
        model.predict(x, batch_size=batch_size, verbose=0)

    def direct() -> None:
        for i in range(0, len(x), batch_size):
            step(x[i:i + batch_size]).numpy()

    rates: dict[str, list[float]] = {"model.predict": [], "tf.function forward": []}
    for _ in range(passes):
        for name, run in (("model.predict", predict), ("tf.function forward", direct)):
            start = time.perf_counter()
            run()
            rates[name].append(len(x) / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


def keras_model_stage_rows_per_s(spark: SparkSession, inputs: dict[str, tuple[DataFrame, int]], model_path: str,
                                  batch_size: int, rounds: int,
                                  reference: Callable[[], None]) -> dict[str, float]:
    """rows/s of ``KerasModel.transform`` (noop sink) per caller and input form, median over
    ``rounds`` interleaved rounds, keyed ``"<caller> (<form>)"``:

    * caller ``scala``: the JVM ``dlbridge.ml.KerasModel``, built and applied by JVM code, its
      Python backend being the companion process a JVM application starts;
    * caller ``pyspark``: the PySpark wrapper ``dlbridge.ml.KerasModel`` (in-process backend);
    * caller ``source only``: the input frame alone written to ``noop`` (what producing the rows
      costs, with no stage);
    * forms: the ``inputs`` frames with their row counts, e.g. an ML ``Vector`` and an
      ``array<float>`` column (both packed on the JVM into float32 rows, invalid rows checked as
      ``handleInvalid='error'``), and a cached in-memory ``Vector`` frame (Scala caller only).

    Each adds prediction (double) and probability (Vector), as a user gets by default. ``reference``
    (raw Keras) runs at the start of each timed round, so the ratio's two sides see the same
    machine; the reported raw Keras figure is the median over these and the UDF rounds. Each timed
    round starts one path further along, so that no path always runs first after the reference.
    """
    from dlbridge.ml import KerasModel

    jmodel = spark._jvm.dlbridge.ml.KerasModel.fromFile(model_path)  # starts the companion
    jmodel = jmodel.setInferenceBatchSize(batch_size)
    pymodel = KerasModel.fromFile(model_path).setInferenceBatchSize(batch_size)  # registers in-process
    callers = {"scala": lambda df: jmodel.transform(df._jdf).write().format("noop").mode("overwrite").save(),
               "pyspark": lambda df: pymodel.transform(df).write.format("noop").mode("overwrite").save(),
               "source only": lambda df: df.write.format("noop").mode("overwrite").save()}
    timings: dict[str, list[float]] = {
        f"{c} ({form})": [] for form in inputs for c in callers if c != "pyspark" or "cached" not in form}
    names = list(timings)
    for r in range(rounds + 1):  # the first round warms every path up and is dropped
        if r:
            reference()
        # each timed round starts at the next path, so no path always runs first after the reference
        for name in names[r % len(names):] + names[:r % len(names)]:
            caller, form = name[:-1].split(" (")
            df, rows = inputs[form]
            start = time.perf_counter()
            callers[caller](df)
            timings[name].append(rows / (time.perf_counter() - start))
            print(f"  KerasModel.transform {name:26s} {timings[name][-1]:>10,.0f} rows/s", flush=True)
    return {name: statistics.median(values[1:]) for name, values in timings.items()}


def jvm_class_available(spark: SparkSession, name: str) -> bool:
    """Whether the driver JVM can see class ``name`` (jars from spark.jars included)."""
    from py4j.java_gateway import JavaClass

    target: Any = spark._jvm  # type: ignore[union-attr]
    for part in name.split("."):
        target = getattr(target, part)
    return isinstance(target, JavaClass)  # py4j answers a JavaPackage for a missing class


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--raw-rows", type=int, default=200_000, help="rows for the in-process raw Keras run")
    parser.add_argument("--distinct", type=int, default=4096)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--arrow-batch", type=int, default=10_000, help="spark.sql.execution.arrow.maxRecordsPerBatch")
    parser.add_argument("--batch-size", type=int, default=1024, help="inference batch size (all paths)")
    parser.add_argument("--threads", type=int, default=None, help="TF intra-op threads per worker (default: task cpus)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--cached-rows", type=int, default=100_000,
                        help="rows of the cached in-memory Vector frame for KerasModel.transform, read "
                        "about rows / cached-rows times (0: no such line)")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                        help="a Spark conf for the session, repeatable, e.g. spark.python.unix.domain.socket.enabled=true")
    parser.add_argument("--skip", default="", help="comma-separated path names to skip, e.g. 'documented vector'")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    import dlbridge

    builder = (SparkSession.builder.master("local[2]").appName("dlbridge-bench-inference")
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false").config("spark.python.worker.reuse", "true")
               .config("spark.driver.memory", "4g")
               .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(args.arrow_batch)))
    for pair in args.conf:
        key, _, value = pair.partition("=")
        builder = builder.config(key, value)
    try:
        builder = builder.config("spark.jars", dlbridge.jar_path())
    except FileNotFoundError:
        pass
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")

    x = np.random.default_rng(0).random((args.distinct, FEATURES), dtype=np.float32)
    model = build_model(seed=0)
    model_dir = tempfile.mkdtemp(prefix="dlbridge-bench-")
    atexit.register(shutil.rmtree, model_dir, ignore_errors=True)  # removed however the run ends
    model_path = os.path.join(model_dir, "mlp.keras")
    model.save(model_path)
    with open(model_path, "rb") as f:
        model_bytes = f.read()
    print(f"model: 784-256-256-10 MLP, {model.count_params():,} params, .keras {len(model_bytes):,} bytes; "
          f"rows {args.rows:,}; arrow batch {args.arrow_batch}; inference batch {args.batch_size}; "
          f"partitions {args.partitions}; TF intra-op threads {args.threads or 'task cpus (1)'}; "
          f"confs {args.conf or 'none beyond spark.driver.memory=4g'}", flush=True)

    tables = distinct_tables(spark, x)
    frames = input_frames(spark, tables, args.rows, args.partitions)
    arrays, vectors = frames["array"], frames["vector"]
    from pyspark.ml.functions import vector_to_array

    ours = dlbridge_udf(model_bytes, args.batch_size, args.threads)
    pbu = predict_batch_udfs(model_path, args.batch_size, args.threads)
    as_array = vector_to_array("features", "float32")
    paths: dict[str, DataFrame] = {
        "source only (array)": arrays,
        "source only (vector->array)": vectors.withColumn("features", as_array),
        "dlbridge (array)": arrays.withColumn("out", ours("features")),
        "dlbridge (vector)": vectors.withColumn("out", ours(as_array)),
        "transfer only, no model (array)": arrays.withColumn("out", transfer_only_udf()("features")),
        "dlbridge (binary float32 rows)": frames["binary"].withColumn("out", ours("features")),
        "predict_batch_udf direct (array)": arrays.withColumn("out", pbu["direct"]("features")),
        "predict_batch_udf direct (vector)": vectors.withColumn("out", pbu["direct"](as_array)),
        "predict_batch_udf documented (array)": arrays.withColumn("out", pbu["documented"]("features")),
        "predict_batch_udf documented (vector)": vectors.withColumn("out", pbu["documented"](as_array)),
    }
    paths = {k: v for k, v in paths.items() if not any(s in k for s in skip)}
    # Warm-up on every partition, so each Python worker has started, set TF's threads (dlbridge's
    # UDF runs first) and loaded every model before anything is timed.
    warm = input_frames(spark, tables, 20_000 * args.partitions, args.partitions)["array"]
    for udf in (ours, pbu["direct"], pbu["documented"]):
        warm.withColumn("out", udf("features")).write.format("noop").mode("overwrite").save()
    raw_x = np.resize(x, (args.raw_rows, FEATURES))  # the same distinct rows, cycled
    results: dict[str, list[float]] = {name: [] for name in paths}
    raws: list[dict[str, float]] = []
    for r in range(args.rounds):
        for name, df in paths.items():
            results[name].append(noop_rows_per_s(df, args.rows))
            print(f"  round {r + 1}: {name:40s} {results[name][-1]:>10,.0f} rows/s", flush=True)
            if name == "dlbridge (array)":  # raw Keras in the middle of the round, while Spark is idle
                raws.append(raw_keras_rows_per_s(model, raw_x, args.batch_size))
                print(f"  round {r + 1}: raw Keras {raws[-1]}", flush=True)
    stages = None
    if jvm_class_available(spark, "dlbridge.ml.KerasModel"):
        inputs = {"vector": (vectors.select("features"), args.rows), "array": (arrays.select("features"), args.rows)}
        if args.cached_rows:  # an in-memory source, like raw Keras' numpy array (a plan of its own, so the
            # uncached frames above stay uncached), read as often as it takes to give about --rows rows
            cached = input_frames(spark, tables, args.cached_rows, args.partitions)["vector"].filter("id >= 0")
            cached = cached.select("features").cache()
            cached.count()
            repeats = max(1, round(args.rows / args.cached_rows))
            inputs["vector, cached"] = (functools.reduce(DataFrame.union, [cached] * repeats),
                                        repeats * args.cached_rows)
        def reference() -> None:
            raws.append(raw_keras_rows_per_s(model, raw_x, args.batch_size))
            print(f"  raw Keras {raws[-1]}", flush=True)

        stages = keras_model_stage_rows_per_s(spark, inputs, model_path, args.batch_size, args.rounds, reference)
    else:
        print("  KerasModel.transform: skipped (dlbridge.ml.KerasModel not on the classpath: run dev/build)")
    spark.stop()
    raw = {k: statistics.median(r[k] for r in raws) for k in raws[0]} if raws else {}
    report(results, raw, stages, args.rounds)


def report(results: dict[str, list[float]], raw: dict[str, float], stages: dict[str, float] | None,
           rounds: int) -> None:
    med = {name: statistics.median(v) for name, v in results.items()}
    print(f"\nrows/s (median of {rounds} round(s)):")
    for name, value in med.items():
        print(f"  {name:40s} {value:>10,.0f}")
    for name, value in raw.items():
        print(f"  raw Keras, one process, {name:16s} {value:>10,.0f}")
    for name, value in (stages or {}).items():
        what = "input frame alone," if name.startswith("source only") else "KerasModel.transform from"
        print(f"  {what} {name:24s} {value:>10,.0f}")
    raw_best = max(raw.values()) if raw else float("nan")
    # The targets are the stage's (issues 4 and 11): KerasModel.transform at >= 0.7x raw Keras's best
    # form, >= 1.5x the best predict_batch_udf form, and from Scala >= 0.95x from PySpark. The UDF
    # lines (build_keras_udf alone, on Spark's own Arrow conversion of each array) are orientation.
    best_pbu = {form: max((v for k, v in med.items() if k.startswith("predict_batch_udf") and k.endswith(f"({form})")),
                          default=None) for form in ("array", "vector")}
    for form in ("array", "vector"):
        ours = med.get(f"dlbridge ({form})")
        if ours is None:
            continue
        line = f"  {form:6s}: the UDF alone / raw Keras = {ours / raw_best:.2f}"
        if best_pbu[form]:
            line += f"; / best predict_batch_udf = {ours / best_pbu[form]:.2f}"
        print(line + " (orientation, no target)")
    if stages is not None:
        for form in ("vector", "array"):
            scala, pyspark = stages[f"scala ({form})"], stages[f"pyspark ({form})"]
            print(f"  KerasModel.transform {form:6s}: / raw Keras = {scala / raw_best:.3f} (Scala), "
                  f"{pyspark / raw_best:.3f} (PySpark) (target >= 0.7); "
                  f"Scala / PySpark = {scala / pyspark:.3f} (target >= 0.95)")
            if best_pbu[form]:
                print(f"  KerasModel.transform {form:6s}: / best predict_batch_udf = "
                      f"{min(scala, pyspark) / best_pbu[form]:.2f} (target >= 1.5)")
        sources = (stages.get("source only (array)"), stages.get("source only (vector)"))
        for caller in ("scala", "pyspark"):
            line = (f"  KerasModel.transform {caller:7s}: array / vector = "
                    f"{stages[f'{caller} (array)'] / stages[f'{caller} (vector)']:.3f}")
            if all(sources):
                line += f" (the input frames alone: {sources[0] / sources[1]:.2f})"
            print(line)
        if "scala (vector, cached)" in stages:
            print(f"  KerasModel.transform Scala, cached in-memory Vector source / raw Keras = "
                  f"{stages['scala (vector, cached)'] / raw_best:.3f} (on a source like raw Keras')")


if __name__ == "__main__":
    main()
