"""Bridge benchmark: companion start, warm per-call overhead, Scala- vs PySpark-invoked UDF rows/s.

Run with ``dev/bench bridge`` (after ``dev/build``). Everything is measured in
one run on ``local[2]``:

* companion start: the JVM's ``PythonBridge.backend`` starting ``python -m
  dlbridge.backend`` (bare, and importing TensorFlow at start);
* warm per-call overhead: the JVM ``PythonTransformer.transform`` (builds the
  plan: param validation + UDF construction over the bridge, no job);
* throughput: the registered ``plus_k`` function over N rows, consumed by the
  ``noop`` writer, invoked from Scala (JVM stage + companion backend) and from
  PySpark (the same function as a ``pandas_udf`` built in this process).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
UDFS = os.path.join(REPO, "tests", "python", "udfs")
os.environ["PYTHONPATH"] = os.pathsep.join([UDFS] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
sys.path.insert(0, UDFS)

from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

import dlbridge  # noqa: E402


def companion_start_seconds(spark: SparkSession, modules: str, repeats: int) -> list[float]:
    """Times PythonBridge.backend() starting a fresh companion importing ``modules``."""
    jvm, jss, jsc = spark._jvm, spark._jsparkSession, spark.sparkContext._jsc.sc()
    bridge = jvm.dlbridge.python.PythonBridge
    spark.conf.set("spark.dlbridge.python.modules", modules)
    times = []
    for _ in range(repeats):
        bridge.stop(jsc)
        start = time.perf_counter()
        bridge.backend(jss)
        times.append(time.perf_counter() - start)
    return times


def warm_transform_ms(spark: SparkSession, df, calls: int) -> list[float]:
    """Per-call time of the JVM PythonTransformer.transform (companion backend, warm)."""
    jvm = spark._jvm
    stage = jvm.dlbridge.ml.PythonTransformer().setFunction("plus_k").setParams('{"k": 2.5}')
    stage = stage.setInputCol("x").setOutputCol("y")
    stage.transform(df._jdf)  # warm-up
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        stage.transform(df._jdf)
        times.append((time.perf_counter() - start) * 1000)
    return times


def scala_rows_per_s(spark: SparkSession, df, rows: int) -> float:
    jvm = spark._jvm
    stage = jvm.dlbridge.ml.PythonTransformer().setFunction("plus_k").setParams('{"k": 2.5}')
    out = stage.setInputCol("x").setOutputCol("y").transform(df._jdf)
    start = time.perf_counter()
    out.write().format("noop").mode("overwrite").save()
    return rows / (time.perf_counter() - start)


def pyspark_rows_per_s(df, rows: int) -> float:
    from dlbridge.backend.udfs import build_udf
    from dlbridge.registry import lookup

    udf = build_udf(df.sparkSession, lookup("plus_k"), {"k": 2.5})
    out = df.withColumn("y", udf("x"))
    start = time.perf_counter()
    out.write.format("noop").mode("overwrite").save()
    return rows / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    spark = (
        SparkSession.builder.master("local[2]").config("spark.jars", dlbridge.jar_path())
        .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false").config("spark.python.worker.reuse", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    import dlbridge_test_udfs  # noqa: F401

    try:
        bare = companion_start_seconds(spark, "dlbridge_test_udfs", args.repeats)
        with_tf = companion_start_seconds(spark, "dlbridge_test_udfs,tensorflow", args.repeats)
        df = spark.range(0, args.rows, 1, 2).select(F.col("id").cast("double").alias("x")).cache()
        df.count()
        warm = warm_transform_ms(spark, df, 50)
        scala, pyspark = [], []
        for _ in range(args.repeats):  # interleaved so both see the same machine state
            scala.append(scala_rows_per_s(spark, df, args.rows))
            pyspark.append(pyspark_rows_per_s(df, args.rows))
    finally:
        spark.stop()
    med = statistics.median
    print(f"companion start (bare):        median {med(bare):.2f} s  (runs: {', '.join(f'{t:.2f}' for t in bare)})")
    print(f"companion start (+tensorflow): median {med(with_tf):.2f} s  (runs: {', '.join(f'{t:.2f}' for t in with_tf)})")
    print(f"warm transform() overhead:     median {med(warm):.1f} ms, p90 {sorted(warm)[int(0.9 * len(warm))]:.1f} ms "
          f"over {len(warm)} calls (target < 50 ms)")
    print(f"plus_k over {args.rows:,} rows, noop sink, median of {args.repeats}:")
    print(f"  invoked from Scala (JVM stage + companion): {med(scala):,.0f} rows/s")
    print(f"  invoked from PySpark (pandas_udf):          {med(pyspark):,.0f} rows/s")
    print(f"  ratio Scala / PySpark: {med(scala) / med(pyspark):.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
