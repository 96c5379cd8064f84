"""Shared helpers of the Keras stage tests: digits data and spark-submit of the example apps."""
from __future__ import annotations

import glob
import os
import re
import subprocess
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conftest import REPO, dlbridge_jar


def digits_csv() -> str:
    import sklearn.datasets

    return os.path.join(os.path.dirname(sklearn.datasets.__file__), "data", "digits.csv.gz")


def digits(spark: SparkSession) -> Tuple[DataFrame, DataFrame]:
    """``features`` (Vector of 64 pixels in [0, 1]) and ``label``, split 80/20, cached."""
    from pyspark.ml.feature import VectorAssembler

    raw = spark.read.option("inferSchema", "true").csv(digits_csv())
    pixels = raw.columns[:64]
    scaled = raw.select([(F.col(c) / 16.0).alias(c) for c in pixels] + [F.col(raw.columns[64]).cast("double").alias("label")])
    data = VectorAssembler(inputCols=pixels, outputCol="features").transform(scaled).select("features", "label")
    train, test = data.randomSplit([0.8, 0.2], seed=7)
    return train.cache(), test.cache()


def examples_jar() -> str:
    jars = glob.glob(os.path.join(REPO, "examples", "target", "scala-2.13", "dlbridge-examples_2.13-*.jar"))
    if not jars or not dlbridge_jar():
        raise AssertionError("The jars are not built: run dev/test (or dev/build) first.")
    return jars[0]


def run_process(command: List[str], timeout: int = 900) -> subprocess.CompletedProcess:
    """Runs a command (its ``stdout`` and ``stderr`` captured as text); fails the test with its output
    tail if it exits non-zero."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{command[0]} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


def run(command: List[str], timeout: int = 900) -> str:
    """The stdout of :func:`run_process`."""
    return run_process(command, timeout).stdout


def spark_submit(main_class: str, *args: str, options: Sequence[str] = (), master: str = "local[2]") -> str:
    """The stdout of :func:`submit_process`."""
    return submit_process(main_class, *args, options=options, master=master).stdout


def submit_process(main_class: str, *args: str, options: Sequence[str] = (),
                   master: str = "local[2]") -> subprocess.CompletedProcess:
    """spark-submit of an example app on ``master`` with the dlbridge jar (plus spark-submit ``options``)."""
    return run_process([
        os.path.join(os.environ["SPARK_HOME"], "bin", "spark-submit"), "--master", master,
        "--conf", "spark.ui.enabled=false", "--jars", dlbridge_jar() or "", *options, "--class", main_class,
        examples_jar(), *args,
    ])


EXAMPLE_RESULT = re.compile(r"test accuracy (\d\.\d+), after save/load (\d\.\d+)")


def example_accuracy(stdout: str, language: str) -> tuple[float, float]:
    """The test accuracy an example app printed, before and after save/load."""
    for line in stdout.splitlines():
        found = EXAMPLE_RESULT.search(line) if f"dlbridge digits ({language})" in line else None
        if found:
            return float(found.group(1)), float(found.group(2))
    raise AssertionError(f"no test accuracy line from the {language} example:\n{stdout[-2000:]}")


PROGRESS_LINE = re.compile(r"^dlbridge fit (\S+) epoch (\d+)/(\d+) - loss \d+\.\d{4}( - val_\w+ \d+\.\d{4})* "
                           r"- \d+ samples/s - (?:\d+\.\d|0\.\d\d)s - ETA \d+(?:s|m\d\ds|h\d\dm)$", re.M)


def progress_epochs(console: str, uid_prefix: Optional[str] = None) -> List[Tuple[int, int]]:
    """The (k, n) of every per-epoch progress line on ``console``; each line names a stage whose uid
    starts with ``uid_prefix`` (when given)."""
    found = PROGRESS_LINE.findall(console.replace("\r", "\n"))  # spark-shell's progress bar ends lines in \r
    assert all(uid_prefix is None or uid.startswith(uid_prefix) for uid, *_ in found), found
    return [(int(k), int(n)) for _, k, n, _ in found]


def assert_quiet(console: str) -> None:
    """What the project's runs must not print (dev/conf/log4j2.properties, TensorFlow's log policy):
    Spark's INFO log and TensorFlow's C++ notices. Needs SPARK_CONF_DIR from dev/env.sh."""
    assert os.environ.get("SPARK_CONF_DIR", "").endswith(os.path.join("dev", "conf")), \
        "SPARK_CONF_DIR is not the project's dev/conf: run the tests with dev/test or after `source dev/env.sh`"
    noisy = [line for line in console.splitlines() if re.search(
        r" INFO |Using Spark's default log4j profile|oneDNN custom operations|absl::InitializeLog|cpu_feature_guard", line)]
    assert not noisy, "\n".join(noisy[:20])


def fit_and_load_in_one_app(submit: Callable[..., str], root: Path, model: Any) -> str:
    """Saves PySpark's fitted pipeline ``model`` as ``root/python-pipeline``, then runs the Scala example app
    once (``submit``, its spark-submit) for both directions: ``fit`` saves its own pipeline as
    ``root/scala-pipeline`` with its result in ``root/scala-result``; ``load`` runs PySpark's, its result in
    ``root/python-pipeline-in-scala``. Returns the app's stdout."""
    model.write().overwrite().save(str(root / "python-pipeline"))
    return submit("fit", str(root / "scala-pipeline"), str(root / "scala-result"),
                  "load", str(root / "python-pipeline"), str(root / "python-pipeline-in-scala"))
