"""Data sets, models and leak checks shared by the trainer tests."""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TCP_GONE = {"06", "07"}  # TIME_WAIT, CLOSE: no socket object behind them


def digits_frames(spark, seed: int = 0):
    """Digits (scaled to [0, 1]) as train/test DataFrames with an ML Vector and a double label."""
    from pyspark.ml.linalg import Vectors
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    rows = [(Vectors.dense(a), float(b)) for a, b in zip(x_tr, y_tr)]
    return spark.createDataFrame(rows, ["features", "label"]), x_te, y_te


def diabetes_frames(spark, seed: int = 0):
    """Diabetes, standardised, as a DataFrame of ten numeric columns plus the target."""
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    x, y = load_diabetes(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=seed)
    mean, std = x_tr.mean(0), x_tr.std(0)
    y_mean, y_std = y_tr.mean(), y_tr.std()
    x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    y_tr, y_te = (y_tr - y_mean) / y_std, (y_te - y_mean) / y_std
    names = [f"f{i}" for i in range(x.shape[1])]
    rows = [tuple(float(v) for v in a) + (float(b),) for a, b in zip(x_tr, y_tr)]
    return spark.createDataFrame(rows, names + ["target"]), names, x_te, y_te, float(np.mean(y_tr))


def small_model(input_dim: int = 4, outputs: int = 1, activation: str | None = None, seed: int = 1):
    """A tiny tanh MLP with deterministic initial weights (also an allow-listed module:function factory)."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((input_dim,)), keras.layers.Dense(8, activation="tanh"),
                             keras.layers.Dense(outputs, activation=activation)])


def trainer_threads() -> list[str]:
    """Names of live threads that belong to a parameter server or to a chained run's driver side."""
    return [t.name for t in threading.enumerate() if t.name.startswith(("dlbridge-ps", "dlbridge-epochs"))]


def open_tcp_on_port(port: int) -> list[str]:
    """Live TCP sockets (any process) whose local or remote port is ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                local, remote, state = fields[1], fields[2], fields[3]
                ports = {int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)}
                if port in ports and state not in TCP_GONE:
                    found.append(line.strip())
    return found


def assert_no_leaks(port: int | None = None, wait: float = 5.0) -> None:
    """No parameter-server thread, and no TCP socket on ``port`` (any process), is left."""
    deadline = time.monotonic() + wait
    while True:  # executors close their side asynchronously; allow them a moment
        leftovers = (trainer_threads(), open_tcp_on_port(port) if port else [])
        if not any(leftovers) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert leftovers[0] == [], f"parameter-server threads left: {leftovers[0]}"
    assert leftovers[1] == [], f"sockets left on port {port}: {leftovers[1]}"


def running_servers() -> list[Any]:
    """Parameter servers running in this process, reached through their accept threads.

    (Not ``gc.get_objects()``: it can grab tuples other threads are still building,
    which then fail with ``SystemError``.)
    """
    found = []
    for thread in threading.enumerate():
        if thread.name.startswith("dlbridge-ps") and thread.name.endswith("-accept"):
            server = getattr(getattr(thread, "_target", None), "__self__", None)
            if server is not None and not server.closed:
                found.append(server)
    return found


def port_of(result: Any) -> int:
    """The server port recorded in a TrainingResult."""
    return int(result.summary["address"].rsplit(":", 1)[1])


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of a classifier on numpy data."""
    return float((model.predict(x.astype(np.float32), verbose=0).argmax(axis=1) == y).mean())


def run_in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``target`` in a thread; its result or exception lands in the returned dict."""
    out: dict[str, Any] = {}

    def body() -> None:
        try:
            out["result"] = target()
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            out["error"] = e

    thread = threading.Thread(target=body, name="test-fit", daemon=True)
    thread.start()
    return thread, out


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Wait until ``predicate()`` is truthy (test helper; polls every 50 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def send_after_challenge(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes right after the server's challenge; return what it answers before closing."""
    import socket

    from dlbridge.trainer import protocol as p

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        p.recv_frame(sock, p.MAX_HANDSHAKE_FRAME)
        chunks = []
        try:
            sock.sendall(data)
            while chunk := sock.recv(4096):
                chunks.append(chunk)
        except ConnectionResetError:
            pass  # the server closed with our unread bytes pending: a reset is a refusal too
        return b"".join(chunks)
