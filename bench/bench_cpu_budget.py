"""Where the CPU of ``KerasModel.transform`` goes: CPU seconds per row, by process and thread, per job.

Run with ``dev/bench cpu_budget [--form vector|array] [--rows N] [--rounds R] [--jar PATH] [--conf K=V]``.
The bench's model and input (``bench_inference``: a 784-256-256-10 MLP, ``--distinct`` random rows
repeated through a broadcast join) go through the PySpark ``KerasModel`` on ``local[2]`` into the
``noop`` writer, as in ``dev/bench inference``, with the Arrow batch (1,024 rows), Unix socket and
shared memory of its usual command (``--conf spark.dlbridge.inference.sharedMemory.enabled=false``
measures the rows sent in the batches). Around each timed job the script reads the CPU time of every thread of the
driver JVM and of the Python workers (``/proc/<pid>/task/<tid>/stat``) and prints it per row, grouped
by thread name: the JVM's task threads, its JIT compilers, its garbage collector's threads, the
workers' main threads and TensorFlow's compute threads.

The groups add up to the machine's two cores, so they show which part a change saves and what it
costs elsewhere. Run it alone: it counts the threads of every PySpark worker on the machine. ``--jar`` runs another build of the dlbridge jar: run two builds one after the other,
several times each, to compare them in one sitting (BENCHMARKS.md, "Inference").
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import tempfile
import time

import numpy as np
from pyspark.sql import SparkSession

from bench_inference import FEATURES, build_model, distinct_tables, input_frames

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def thread_cpu(pids: list[int]) -> dict[tuple[int, str], tuple[str, float]]:
    """CPU seconds (user + system) of every thread of ``pids``, keyed (pid, tid), with the thread's name."""
    out: dict[tuple[int, str], tuple[str, float]] = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            out[(pid, tid)] = (name, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return out


def python_workers() -> list[int]:
    """The PIDs of PySpark's Python worker processes (and their daemon) on this machine."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if b"pyspark.daemon" in f.read():
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def group(pid: int, name: str, jvm: int) -> str:
    """A thread's group: JVM threads by their name with digits dropped, Python threads by process kind."""
    if pid != jvm:
        return "Python workers: " + ("TensorFlow compute" if name.startswith("tf_") else f"thread {name!r}")
    if name.startswith("Executor task"):
        return "JVM: task threads"
    if name.startswith("python-udf-pipe"):
        return "JVM: task writer threads (pipelined runner)"
    if name.startswith("C1 Compiler") or name.startswith("C2 Compiler"):
        return "JVM: JIT compilers"
    if name.startswith("G1 Conc") or name.startswith("G1 Main"):
        return "JVM: G1 concurrent marking"
    if name.startswith("GC Thread") or name.startswith("G1 Refine"):
        return "JVM: GC workers"
    return "JVM: " + re.sub(r"\d+", "#", name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--form", choices=("vector", "array"), default="vector")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--distinct", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=3, help="timed jobs, after 2 untimed ones")
    parser.add_argument("--jar", default=None, help="the dlbridge jar to run (default: the built one)")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    import dlbridge
    from dlbridge.ml import KerasModel

    builder = (SparkSession.builder.master("local[2]").appName("dlbridge-bench-cpu-budget")
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
               .config("spark.python.worker.reuse", "true").config("spark.driver.memory", "4g")
               .config("spark.sql.execution.arrow.maxRecordsPerBatch", "1024")
               .config("spark.python.unix.domain.socket.enabled", "true")
               .config("spark.dlbridge.inference.sharedMemory.enabled", "true")
               .config("spark.jars", args.jar or dlbridge.jar_path()))
    for pair in args.conf:
        key, _, value = pair.partition("=")
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    model_dir = tempfile.mkdtemp(prefix="dlbridge-bench-")
    try:
        jvm = int(spark._jvm.java.lang.ProcessHandle.current().pid())  # type: ignore[union-attr]
        x = np.random.default_rng(0).random((args.distinct, FEATURES), dtype=np.float32)
        path = os.path.join(model_dir, "mlp.keras")
        build_model(seed=0).save(path)
        frame = input_frames(spark, distinct_tables(spark, x), args.rows, 2)[args.form].select("features")
        stage = KerasModel.fromFile(path).setInferenceBatchSize(1024)

        def job() -> None:
            stage.transform(frame).write.format("noop").mode("overwrite").save()

        print(f"KerasModel.transform (PySpark) on {args.form}, {args.rows:,} rows a job, jar {args.jar or 'built'}, "
              f"confs {args.conf or 'none'}", flush=True)
        for _ in range(2):
            job()
        for r in range(args.rounds):
            pids = [jvm, *python_workers()]
            before = thread_cpu(pids)
            start = time.perf_counter()
            job()
            wall = time.perf_counter() - start
            after = thread_cpu(pids)
            spent: collections.Counter[str] = collections.Counter()
            for key, (name, seconds) in after.items():
                spent[group(key[0], name, jvm)] += seconds - before.get(key, (name, 0.0))[1]
            total = sum(spent.values())
            per_row = 1e6 / args.rows
            print(f"round {r + 1}: {args.rows / wall:,.0f} rows/s; CPU {total * per_row:.2f} us/row "
                  f"({total / wall:.2f} cores busy)", flush=True)
            for name, seconds in spent.most_common():
                if seconds * per_row >= 0.01:
                    print(f"    {name:45s} {seconds * per_row:6.2f} us/row", flush=True)
    finally:
        spark.stop()
        shutil.rmtree(model_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
