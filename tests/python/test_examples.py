"""The examples run end to end: the Java app (spark-submit), the spark-shell script and the
PySpark script each train on digits, evaluate, save, reload and predict. (The Scala app runs in
test_keras_cross_language.py.) Two epochs keep them quick; accuracy is checked loosely here and
strictly (>= 0.95 at 14 epochs) in the stage tests."""
from __future__ import annotations

import os
import sys

from conftest import REPO, dlbridge_jar
from keras_helpers import digits_csv, example_accuracy, examples_jar, progress_epochs, run_process, spark_submit


def check_accuracy(stdout: str, language: str) -> None:
    accuracy, reloaded = example_accuracy(stdout, language)
    assert accuracy >= 0.8 and abs(accuracy - reloaded) < 1e-9, (accuracy, reloaded)


def test_java_app(tmp_path) -> None:
    stdout = spark_submit("dlbridge.examples.JavaDigitsExample", digits_csv(), str(tmp_path / "p"), "2")
    check_accuracy(stdout, "Java")


def test_spark_shell_script(tmp_path) -> None:
    """Also: spark-shell shows the per-epoch progress lines (its own log level is WARN)."""
    done = run_process([
        os.path.join(os.environ["SPARK_HOME"], "bin", "spark-shell"), "--master", "local[2]",
        "--conf", "spark.ui.enabled=false", "--jars", f"{dlbridge_jar()},{examples_jar()}",
        "--conf", f"spark.driver.args={digits_csv()} {tmp_path / 'p'} 2",
        "-I", os.path.join(REPO, "examples", "spark-shell", "digits.scala"),
    ])
    check_accuracy(done.stdout, "spark-shell")
    assert progress_epochs(done.stdout + done.stderr, "kerasEst_") == [(1, 2), (2, 2)], done.stderr[-3000:]


def test_pyspark_script(tmp_path) -> None:
    """Also: the PySpark driver's console shows the per-epoch progress lines and no INFO log."""
    done = run_process([sys.executable, os.path.join(REPO, "examples", "python", "digits.py"), str(tmp_path / "p"), "2"])
    check_accuracy(done.stdout, "PySpark")
    assert progress_epochs(done.stderr, "KerasEstimator_") == [(1, 2), (2, 2)], done.stderr[-3000:]
    assert " INFO " not in done.stderr, done.stderr[-3000:]
