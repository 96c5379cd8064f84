"""Keras fits on a real Spark standalone cluster (a master and two 1-core workers on 127.0.0.1):
the digits accuracy bar from Scala (spark-submit, sync) and PySpark in every mode, then faults injected
from outside by pid (an executor JVM, a Python worker) and hostile traffic to the parameter server.

Each scenario is recorded in RELIABILITY.md (see reliability.py). The Scala apps run first: while
the module's PySpark session is up it holds both cores of the cluster.
"""
from __future__ import annotations

import os
import signal
from typing import Callable, Iterator

import pytest
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.sql import SparkSession

from conftest import build_spark
from dlbridge.ml import KerasEstimator
from hostile import IDLE_CONNECTIONS, HostileTraffic
from keras_helpers import digits, digits_csv, example_accuracy, spark_submit
from processes import EpochWatcher, connected_to, executor_of, executor_pids, listening_ports, rss_bytes
from standalone import standalone  # noqa: F401 (the module-scoped cluster fixture)
from trainer_helpers import run_in_thread, wait_for

BAR = 0.95
FIT_TIMEOUT = 600.0  # a fit that recovers from a lost executor waits for a new one (JVM + Python + TF start)
MODES = ["hogwild", "async", "sync"]
# hogwild at 12 epochs gave 0.9489-0.9651 over 13 runs (one below BAR, two at 0.9516); async at 14 gave 0.9570-0.9677.
EPOCHS = {"hogwild": 14, "async": 14, "sync": 18}
CLUSTER_CONF = {"spark__task__maxFailures": "4", "spark__driver__host": "127.0.0.1",
                "spark__driver__bindAddress": "127.0.0.1", "spark__executor__memory": "1g",
                "spark__executor__cores": "1", "spark__cores__max": "2"}


def _submit_options() -> list[str]:
    return [arg for key, value in CLUSTER_CONF.items() for arg in ("--conf", f"{key.replace('__', '.')}={value}")]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sync"])  # every mode from PySpark below; the Scala app's path is the same
def test_scala_app_reaches_the_bar(standalone, reliability, tmp_path, mode) -> None:  # noqa: F811
    with reliability.scenario(f"Scala DigitsExample (spark-submit), {mode}", "none", "standalone") as row:
        stdout = spark_submit("dlbridge.examples.DigitsExample", digits_csv(), str(tmp_path / "p"),
                              str(EPOCHS[mode]), mode, master=standalone.master_url, options=_submit_options())
        row.accuracy, reloaded = example_accuracy(stdout, "Scala")
        assert row.accuracy >= BAR and abs(row.accuracy - reloaded) < 1e-9, (row.accuracy, reloaded)


@pytest.fixture(scope="module")
def cluster(standalone) -> Iterator[SparkSession]:  # noqa: F811
    """A PySpark session on the standalone master, with 4 attempts per task."""
    session = build_spark(standalone.master_url, **CLUSTER_CONF)
    try:
        _wait_for_executors(session, 2)
        yield session
    finally:
        session.stop()


@pytest.fixture(scope="module")
def data(cluster):
    return digits(cluster)


def _wait_for_executors(spark: SparkSession, count: int, timeout: float = 300.0) -> None:
    status = spark.sparkContext._jsc.sc().getExecutorMemoryStatus()
    wait_for(lambda: spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1 >= count, timeout,
             f"{count} executors to register with the driver (have {status.size() - 1})")


def _estimator(mode: str) -> KerasEstimator:
    return KerasEstimator(hiddenLayers=[64], epochs=EPOCHS[mode], batchSize=32, optimizer="adam",
                          optimizerOptions={"learning_rate": 0.005}, mode=mode, numWorkers=2, seed=1, verbose=1)


def _accuracy(model, test) -> float:
    return MulticlassClassificationEvaluator(metricName="accuracy").evaluate(model.transform(test))


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_pyspark_fit_reaches_the_bar(cluster, data, reliability, mode) -> None:
    train, test = data
    with reliability.scenario(f"PySpark KerasEstimator.fit, {mode}", "none", "standalone") as row:
        model = _estimator(mode).fit(train)
        row.accuracy = _accuracy(model, test)
        assert row.accuracy >= BAR
    assert len(model.summary["history"]) == EPOCHS[mode]


def _server_port(baseline: set[int]) -> int:
    """The parameter server's port: a port this process started listening on during the fit, with
    executor-side Python workers connected to it."""
    def find() -> int | None:
        for port in listening_ports(os.getpid()) - baseline:
            if any(executor_of(pid) for pid in connected_to(port)):
                return port
        return None

    return wait_for(find, 300, "the parameter server to have workers connected")


def _training_worker(port: int) -> int:
    """A Python worker (forked by an executor's pyspark.daemon) connected to the server on ``port``."""
    return wait_for(lambda: next((pid for pid in connected_to(port) if executor_of(pid)), None), 300,
                    f"a Python worker connected to port {port}")


def _fit_with_fault(cluster, data, reliability, mode: str, what: str, inject: Callable[[int], str]) -> None:
    """Fit; once epoch 1 is logged, ``inject`` a fault into a training worker; require the bar."""
    train, test = data
    _wait_for_executors(cluster, 2)
    baseline = listening_ports(os.getpid())
    with reliability.scenario(f"PySpark fit, {mode}, {what} in epoch 2", what, "standalone") as row, \
            EpochWatcher() as epochs:
        thread, out = run_in_thread(lambda: _estimator(mode).fit(train))
        epochs.wait_finished(1, 300)
        row.injected = inject(_training_worker(_server_port(baseline)))
        thread.join(FIT_TIMEOUT)
        assert not thread.is_alive(), f"the fit did not finish within {FIT_TIMEOUT:.0f}s of the fault"
        if "error" in out:
            raise out["error"]
        row.accuracy = _accuracy(out["result"], test)
        assert row.accuracy >= BAR


def _kill_executor(python_worker: int) -> str:
    executor = executor_of(python_worker)
    os.kill(executor, signal.SIGKILL)
    return f"SIGKILL of executor JVM pid {executor} (CoarseGrainedExecutorBackend) mid-task"


def _kill_python_worker(python_worker: int) -> str:
    os.kill(python_worker, signal.SIGKILL)
    return f"SIGKILL of the training Python worker pid {python_worker} (forked by pyspark.daemon) mid-task"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["hogwild", "sync"])
def test_executor_killed_mid_fit(cluster, data, reliability, mode) -> None:
    before = set(executor_pids(cluster.sparkContext.applicationId))
    _fit_with_fault(cluster, data, reliability, mode, "executor JVM killed", _kill_executor)
    after = set(executor_pids(cluster.sparkContext.applicationId))
    assert after - before, "the standalone worker should have launched a replacement executor"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sync"])  # the barrier mode: a lost worker fails the whole stage attempt
def test_python_worker_killed_mid_fit(cluster, data, reliability, mode) -> None:
    _fit_with_fault(cluster, data, reliability, mode, "Python worker killed", _kill_python_worker)


@pytest.mark.slow
def test_hostile_traffic_during_a_fit(cluster, data, reliability, tmp_path) -> None:
    train, test = data
    _wait_for_executors(cluster, 2)
    baseline = listening_ports(os.getpid())
    with reliability.scenario("PySpark fit, hogwild, hostile traffic to the parameter server",
                              HostileTraffic.DESCRIPTION, "standalone") as row, EpochWatcher() as epochs:
        thread, out = run_in_thread(lambda: _estimator("hogwild").setEpochs(64).fit(train))  # outlives the attack
        epochs.wait_finished(1, 300)
        rss_before = rss_bytes(os.getpid())
        with HostileTraffic(_server_port(baseline), str(tmp_path)) as attack:
            attack.run()
            assert thread.is_alive(), "the fit ended before the attack did: make it longer"
            thread.join(FIT_TIMEOUT)
        growth = max(attack.peak_rss, rss_bytes(os.getpid())) - rss_before
        row.notes = (f"driver RSS growth under attack {growth / 2**20:.1f} MiB; answers to garbage "
                     f"{attack.answers_to_garbage}; idle connections the server let us open "
                     f"{attack.idle_opened}/{IDLE_CONNECTIONS}")
        assert not thread.is_alive(), f"the fit did not finish within {FIT_TIMEOUT:.0f}s under attack"
        if "error" in out:
            raise out["error"]
        row.accuracy = _accuracy(out["result"], test)
        assert row.accuracy >= BAR
        assert growth < 100 * 2**20, f"driver RSS grew by {growth / 2**20:.0f} MiB under attack"
        assert attack.answers_to_garbage == [b""] * len(attack.answers_to_garbage), attack.answers_to_garbage
        assert not os.path.exists(attack.marker), "the server unpickled a payload"
