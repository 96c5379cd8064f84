"""The check, once per fit, that the executors' Python has the driver's dlbridge, TensorFlow and Keras.

A fit trains in the executors' Python workers, so an executor whose interpreter
lacks one of these packages, or has another version, would fail (or train with
other code) after the input was read and the parameter server started. Before
any of that, :func:`check_executors` runs one small Spark job of one task per
task slot; each task reports what its Python worker finds, and the fit stops
with an error naming each executor that differs and what it lacks.

An executor's interpreter and packages are fixed for its life (an archive in
``spark.archives`` is unpacked when it starts), so the job runs only when the
application's executors, or the interpreter PySpark starts on them, differ from
those of the last check that passed: on the first fit, and after executors were
added or replaced. Every other fit pays one look-up of the executor list.

The probe reads ``dlbridge.__version__`` (a light import) and the installed
distributions of TensorFlow and Keras from their package metadata, without
importing them (importing TensorFlow takes seconds per Python worker). The
probe itself is pickled by value and needs only the standard library and
pyarrow on the executors, so it runs, and reports, even where dlbridge is
missing.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterator, List, Tuple

logger = logging.getLogger(__name__)

# The packages the executors' Python workers need for a fit, by import name.
PACKAGES = ("dlbridge", "tensorflow", "keras")

# Application id -> (interpreter, executors) of its last check that passed; most recent last, bounded.
_VERIFIED: "OrderedDict[str, Tuple[str, Tuple[str, ...]]]" = OrderedDict()
_VERIFIED_APPS = 8
_lock = threading.Lock()


def _describer() -> Callable[[], Dict[str, Any]]:
    """The probe's report function. A closure, so cloudpickle ships it by value (not as dlbridge code)."""
    def describe() -> Dict[str, Any]:
        import importlib.metadata
        import importlib.util
        import os
        import re
        import socket
        import sys

        distributions = {"dlbridge": ("dlbridge",), "keras": ("keras",),
                         "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel",
                                        "tensorflow-macos", "tf-nightly")}
        found: Dict[str, Any] = {}
        for module, names in distributions.items():
            try:
                if importlib.util.find_spec(module) is None:
                    found[module] = None
                    continue
                if module == "dlbridge":
                    import dlbridge
                    found[module] = str(getattr(dlbridge, "__version__", "installed without a version"))
                    continue
                found[module] = "installed without package metadata"
                for name in names:
                    try:
                        found[module] = importlib.metadata.version(name)
                        break
                    except importlib.metadata.PackageNotFoundError:
                        continue
            except Exception as e:  # noqa: BLE001 - reported to the driver, which fails the fit
                found[module] = f"cannot be imported ({type(e).__name__}: {e})"
        log_url = os.environ.get("SPARK_LOG_URL_STDERR", "")
        executor = re.search(r"executorId=([^&]+)", log_url)
        return {"packages": found, "host": socket.gethostname(), "python": sys.executable,
                "workdir": os.getcwd(), "executor": executor.group(1) if executor else None}
    return describe


def _probe(describe: Callable[[], Dict[str, Any]]) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """The ``mapInArrow`` function of the check job: one JSON report per task."""
    def probe(batches: Iterator[Any]) -> Iterator[Any]:
        import json

        import pyarrow as pa

        for _ in batches:
            pass
        yield pa.RecordBatch.from_pylist([{"report": json.dumps(describe())}])
    return probe


def driver_environment() -> Dict[str, Any]:
    """What the driver's own Python finds: the report every executor must match (its ``packages``)."""
    return _describer()()


def executor_environments(spark: Any) -> List[Dict[str, Any]]:
    """The reports of the executors' Python workers: one Spark job, one task per task slot.

    With every slot free (as at the start of a fit) Spark spreads the tasks over
    all executors; reports from the same executor and interpreter are merged.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
        A classic SparkSession.

    Returns
    -------
    list of dict
        ``{"packages", "host", "python", "workdir", "executor"}`` per executor and interpreter.
    """
    sc = spark.sparkContext
    slots = max(1, sc.defaultParallelism)
    previous = sc.getLocalProperty("spark.job.description")
    sc.setJobDescription("dlbridge: check the executors' Python packages")
    try:
        rows = spark.range(0, slots, 1, slots).mapInArrow(_probe(_describer()), "report string").collect()
    finally:
        sc.setLocalProperty("spark.job.description", previous)  # type: ignore[arg-type]
    reports = {}
    for row in rows:
        report = json.loads(row["report"])
        reports[(report["host"], report["executor"], report["workdir"], report["python"])] = report
    return list(reports.values())


def mismatches(expected: Dict[str, Any], reports: List[Dict[str, Any]]) -> List[str]:
    """One line per executor whose packages differ from ``expected`` (the driver's), naming what differs."""
    lines = []
    for report in reports:
        problems = []
        for package in PACKAGES:
            want, have = expected.get(package), report["packages"].get(package)
            if have == want:
                continue
            state = "not installed" if have is None else (have if have.startswith(("cannot", "installed "))
                                                          else f"version {have}")
            problems.append(f"{package} {state} (the driver has {want})")
        if problems:
            who = f"executor {report['executor']}" if report["executor"] else "an executor"
            lines.append(f"{who} on host {report['host']} (Python {report['python']}, working directory "
                         f"{report['workdir']}): {'; '.join(problems)}")
    return lines


def _executors(spark: Any) -> Tuple[str, Tuple[str, ...]]:
    """The interpreter PySpark starts on the executors and the executors' addresses (the driver's included)."""
    sc = spark.sparkContext
    infos = sc._jsc.sc().statusTracker().getExecutorInfos()
    return str(sc.pythonExec), tuple(sorted(f"{info.host()}:{info.port()}" for info in infos))


def check_executors(spark: Any, what: str = "the fit") -> None:
    """Raises ``RuntimeError`` unless every executor's Python has the driver's dlbridge, TensorFlow and Keras.

    Runs the check job unless the application's executors and their
    interpreter are those of its last check that passed.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
        The session whose executors will train.
    what : str
        What stops when the check fails, for the message. Defaults to ``"the fit"``.

    Raises
    ------
    RuntimeError
        Naming each executor that differs (id, host, interpreter, working
        directory), what it lacks or has instead, and the fix.
    """
    app, executors = spark.sparkContext.applicationId, _executors(spark)
    with _lock:
        if _VERIFIED.get(app) == executors:
            _VERIFIED.move_to_end(app)
            return
    started = time.monotonic()
    expected = driver_environment()["packages"]
    lines = mismatches(expected, executor_environments(spark))
    logger.debug("dlbridge: executors' Python packages checked in %.3fs", time.monotonic() - started)
    if not lines:
        with _lock:
            _VERIFIED[app] = executors
            _VERIFIED.move_to_end(app)
            while len(_VERIFIED) > _VERIFIED_APPS:
                _VERIFIED.popitem(last=False)
        return
    wanted = ", ".join(f"{p} {expected.get(p)}" for p in PACKAGES)
    raise RuntimeError(
        f"The executors' Python does not have the driver's packages ({wanted}), so {what} stops before "
        "training:\n  " + "\n  ".join(lines) + "\nFix: give the executors the driver's environment, e.g. a "
        "virtualenv with the dlbridge wheel installed, packed with venv-pack and shipped with "
        "spark.archives=<venv>.tar.gz#env and spark.pyspark.python=./env/bin/python (README, \"Install\"), "
        f"or pip install dlbridge=={expected.get('dlbridge')} into the interpreter the executors run "
        "(spark.pyspark.python / PYSPARK_PYTHON)."
    )
