"""Attacks on a running server, concurrent fits, a server killed mid-fit (real Spark local[2])."""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from dlbridge.trainer import TrainingOptions, fit, mlp_builder
from dlbridge.trainer import protocol as p
from dlbridge.trainer.client import ServerConnection
from trainer_helpers import (send_after_challenge, accuracy, assert_no_leaks, diabetes_frames, digits_frames, port_of, run_in_thread,
                             running_servers, wait_for)


@pytest.fixture(scope="module")
def digits(spark):
    train, x_test, y_test = digits_frames(spark)
    return train.cache(), x_test, y_test


def _digits_fit(digits, **options):
    train, _, _ = digits
    opts = TrainingOptions(batchSize=32, optimizerOptions='{"learning_rate": 0.005}', verbose=0, **options)
    return lambda: fit(train, "features", "label", mlp_builder([64], "classification"), opts)


class _Payload:
    """Unpickling this would create a directory: the server must never do it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


def _authenticated_garbage(server, kind: int, payload: bytes) -> int:
    conn = ServerConnection("127.0.0.1", server.port, server._secret, server.store.num_params, 10.0)
    try:
        p.send_frame(conn._sock, kind, payload)
        answer, _ = p.recv_frame(conn._sock, p.MAX_CONTROL_FRAME)
        return answer
    finally:
        conn._sock.close()


@pytest.mark.slow
def test_attacks_are_rejected_while_a_fit_completes(digits, tmp_path):
    thread, out = run_in_thread(_digits_fit(digits, epochs=40))  # long enough to outlive the attacks
    server = wait_for(lambda: [s for s in running_servers() if s.stats["pushes"] > 0], 120, "a training server")[0]
    marker = str(tmp_path / "pwned")
    evil = pickle.dumps(_Payload(marker))
    with pytest.raises(RuntimeError):
        ServerConnection("127.0.0.1", server.port, p.new_secret(), server.store.num_params, 10.0)
    assert send_after_challenge(server.port, os.urandom(256)) == b""  # garbage
    assert send_after_challenge(server.port, p.HEADER.pack(p.AUTH, 2**32 - 1)) == b""  # oversize length
    assert send_after_challenge(server.port, evil) == b""  # raw pickle
    assert send_after_challenge(server.port, p.HEADER.pack(p.AUTH, len(evil)) + evil) == b""  # framed pickle
    # Even an authenticated peer cannot get a pickle (or anything else) interpreted.
    assert _authenticated_garbage(server, p.PUSH, evil) == p.ERROR
    assert _authenticated_garbage(server, p.HELLO, evil) == p.ERROR
    assert server.stats["rejected"] >= 5
    assert thread.is_alive() and not server.closed, "the fit ended before the attacks did: make it longer"
    thread.join(300)
    assert not thread.is_alive() and "error" not in out, out.get("error")
    assert not os.path.exists(marker)
    result = out["result"]
    assert accuracy(result.model, digits[1], digits[2]) >= 0.9
    assert_no_leaks(port_of(result))


@pytest.mark.slow
def test_two_concurrent_fits(spark, digits):
    train, names, x_test, y_test, y_mean = diabetes_frames(spark)
    regression = TrainingOptions(mode="async", epochs=20, batchSize=16, verbose=0,
                                 optimizerOptions='{"learning_rate": 0.003}')
    first = run_in_thread(_digits_fit(digits, mode="hogwild", epochs=8))
    second = run_in_thread(lambda: fit(train, names, "target", mlp_builder([16], "regression"), regression))
    for thread, out in (first, second):
        thread.join(300)
        assert not thread.is_alive() and "error" not in out, out.get("error")
    classifier, regressor = first[1]["result"], second[1]["result"]
    assert port_of(classifier) != port_of(regressor)
    assert accuracy(classifier.model, digits[1], digits[2]) >= 0.9
    mse = float(np.mean((regressor.model.predict(x_test.astype(np.float32), verbose=0)[:, 0] - y_test) ** 2))
    assert mse < 0.8 * float(np.mean((y_test - y_mean) ** 2))
    assert_no_leaks(port_of(classifier))
    assert_no_leaks(port_of(regressor))


@pytest.mark.parametrize("mode", ["hogwild", "sync"])
def test_server_killed_mid_fit_fails_clearly_without_hanging(digits, mode):
    thread, out = run_in_thread(_digits_fit(digits, mode=mode, epochs=200))
    server = wait_for(lambda: [s for s in running_servers() if s.stats["pushes"] > 20], 120, "a training server")[0]
    killed = time.monotonic()
    server.close("killed by the test")
    thread.join(120)
    assert not thread.is_alive(), "fit hung after its server died"
    assert time.monotonic() - killed < 30  # the driver cancels its jobs at once
    error = out.get("error")
    assert isinstance(error, RuntimeError), error
    assert "parameter server was stopped" in str(error) and f"({mode} mode)" in str(error)
    assert_no_leaks(server.port)


def test_a_killed_driver_resumes_from_its_last_checkpoint(digits, tmp_path):
    """A PySpark driver is SIGKILLed after its checkpoint of epoch 2; a new fit resumes at epoch 3."""
    from checkpoint_driver import HIDDEN, OPTIONS
    from processes import cmdline, descendants

    epochs, directory = 4, tmp_path / "checkpoints"
    train, x_test, y_test = digits
    options = TrainingOptions(epochs=epochs, verbose=0, **OPTIONS)
    with open(tmp_path / "driver.log", "wb") as log:
        driver = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "checkpoint_driver.py"),
                                   str(directory), str(epochs)], stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
    try:  # the uninterrupted fit runs meanwhile; the driver is killed as soon as epoch 2 is checkpointed
        thread, whole = run_in_thread(lambda: fit(train, "features", "label",
                                                  mlp_builder(HIDDEN, "classification"), options))
        wait_for(lambda: (directory / "epoch-000002.npz").exists() or driver.poll() is not None, 300,
                 "the driver's checkpoint of epoch 2")
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
        tree = descendants(driver.pid)
        assert any("java" in cmdline(pid) for pid in tree), [cmdline(pid) for pid in tree]
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(30)
        wait_for(lambda: not any(cmdline(pid) for pid in tree), 60,  # '' once a process is gone (or a zombie)
                 f"the killed driver's JVM and Python workers {tree} to exit")
    finally:
        _kill_session(driver)  # only when something above failed: the test asserted the tree is gone
    thread.join(300)
    assert "result" in whole, whole.get("error")
    saved = sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))
    assert len(saved) == 1, saved  # one complete checkpoint, no partial or older file
    killed_at = int(saved[0][len("epoch-"):-len(".npz")])
    assert 2 <= killed_at < epochs

    resumed = fit(train, "features", "label", mlp_builder(HIDDEN, "classification"),
                  TrainingOptions(epochs=epochs, checkpointDir=str(directory), verbose=0, **OPTIONS))
    assert resumed.summary["resumed_from_epoch"] == killed_at
    assert [h["epoch"] for h in resumed.history] == list(range(killed_at + 1, epochs + 1))
    uninterrupted = whole["result"]
    assert abs(resumed.history[-1]["loss"] - uninterrupted.history[-1]["loss"]) < 0.15
    assert abs(accuracy(resumed.model, x_test, y_test) - accuracy(uninterrupted.model, x_test, y_test)) < 0.05
    assert accuracy(resumed.model, x_test, y_test) > 0.85
    assert os.listdir(directory) == [f"epoch-{epochs:06d}.npz"]
    assert_no_leaks(port_of(resumed))


def _kill_session(process: subprocess.Popen) -> None:
    """SIGKILL whatever is left of the session that ``process`` leads (it was started with start_new_session)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(30)
