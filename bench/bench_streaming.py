"""Streaming inference benchmark: KerasModel.transform on a file-source stream vs the same files in batch.

Run with ``dev/bench streaming [--rows N --files F --rounds R]``. The 784-256-256-10 MLP of
``bench_inference`` (random weights, seeded) scores ``--rows`` rows held in ``--files`` Parquet
files per form, with the features as an ML ``Vector`` and as ``array<float>`` (one directory each).
A warm-up batch pass per form starts the Python workers first. Per round and per form:

* batch: ``KerasModel.transform(spark.read.parquet(dir))`` written to the ``noop`` sink;
* streaming: the same stage on ``spark.readStream...parquet(dir)`` with one file per micro-batch
  and the ``availableNow`` trigger, into the ``noop`` sink (time from ``start`` to termination,
  so the micro-batch planning overhead counts);
* raw Keras: a ``tf.function`` forward pass over the same rows in this process (the reference).

Every figure is rows/s; the report gives the median of the rounds and the ratios
streaming/batch and streaming/raw Keras, measured in the same run.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

import numpy as np
from pyspark.ml.functions import array_to_vector
from pyspark.sql import SparkSession

from bench_inference import FEATURES, build_model, raw_keras_rows_per_s


def write_files(spark: SparkSession, work: str, rows: int, files: int) -> None:
    """``files`` Parquet files of ``rows`` seeded random rows in all, in ``work/arr`` (columns ``id``
    and ``features`` as ``array<float>``, written with pyarrow) and ``work/vec`` (the same rows with
    ``features`` as an ML ``Vector``, converted by Spark), so that each form's scan reads only its
    own column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(work, "arr"))
    for i, part in enumerate(np.array_split(np.arange(rows), files)):
        x = rng.random((len(part), FEATURES), dtype=np.float32)
        features = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), FEATURES).cast(pa.list_(pa.float32()))
        pq.write_table(pa.table({"id": pa.array(part), "features": features}), os.path.join(work, "arr", f"part-{i}.parquet"))
    (spark.read.parquet(os.path.join(work, "arr")).withColumn("features", array_to_vector("features"))
     .write.parquet(os.path.join(work, "vec")))


def batch_rows_per_s(spark: SparkSession, model, directory: str, rows: int) -> float:
    started = time.perf_counter()
    model.transform(spark.read.parquet(directory)).write.format("noop").mode("overwrite").save()
    return rows / (time.perf_counter() - started)


def streaming_rows_per_s(spark: SparkSession, model, directory: str, rows: int, checkpoint: str) -> float:
    schema = spark.read.parquet(directory).schema
    stream = spark.readStream.schema(schema).option("maxFilesPerTrigger", 1).parquet(directory)
    started = time.perf_counter()
    query = (model.transform(stream).writeStream.format("noop").option("checkpointLocation", checkpoint)
             .trigger(availableNow=True).start())
    query.awaitTermination()
    seconds = time.perf_counter() - started
    processed = sum(p["numInputRows"] for p in query.recentProgress)
    if processed != rows:
        raise RuntimeError(f"the stream processed {processed} rows, expected {rows}")
    return rows / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=40000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import dlbridge
    from dlbridge.ml import KerasModel

    spark = (SparkSession.builder.master("local[2]").appName("dlbridge-bench-streaming")
             .config("spark.jars", dlbridge.jar_path()).config("spark.ui.enabled", "false")
             .config("spark.python.worker.reuse", "true").config("spark.driver.memory", "6g").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    work = tempfile.mkdtemp(prefix="dlbridge-bench-streaming-")
    try:
        keras_model = build_model(seed=0)
        sample = np.random.default_rng(1).random((min(args.rows, 50_000), FEATURES), dtype=np.float32)
        keras_model.save(os.path.join(work, "model.keras"))
        stage = KerasModel.fromFile(os.path.join(work, "model.keras"))
        write_files(spark, work, args.rows, args.files)
        for form in ("vec", "arr"):
            batch_rows_per_s(spark, stage, os.path.join(work, form), args.rows)  # warm-up: Python workers start
        results: dict[str, list[float]] = {}
        for r in range(args.rounds):
            raw = raw_keras_rows_per_s(keras_model, sample, 1024)
            results.setdefault("raw Keras", []).append(max(raw.values()))
            for form in ("vec", "arr"):
                directory = os.path.join(work, form)
                results.setdefault(f"batch {form}", []).append(batch_rows_per_s(spark, stage, directory, args.rows))
                results.setdefault(f"streaming {form}", []).append(streaming_rows_per_s(
                    spark, stage, directory, args.rows, os.path.join(work, f"ck-{form}-{r}")))
        report(results, args)
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)


def report(results: dict[str, list[float]], args: argparse.Namespace) -> None:
    medians = {name: statistics.median(values) for name, values in results.items()}
    print(f"rows={args.rows} files={args.files} rounds={args.rounds}; median rows/s (all rounds):")
    for name, values in results.items():
        print(f"  {name:16s} {medians[name]:>10,.0f}   rounds: {', '.join(f'{v:,.0f}' for v in values)}")
    for form in ("vec", "arr"):
        print(f"  {form}: streaming/batch {medians[f'streaming {form}'] / medians[f'batch {form}']:.2f}, "
              f"streaming/raw Keras {medians[f'streaming {form}'] / medians['raw Keras']:.2f}")


if __name__ == "__main__":
    main()
