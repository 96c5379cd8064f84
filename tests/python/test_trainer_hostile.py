"""Hostile traffic against a real parameter server (real sockets), and a TLS fit under attack (local[2])."""
from __future__ import annotations

import os
import pickle
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from dlbridge.trainer import TrainingOptions, fit, mlp_builder, transport
from dlbridge.trainer import protocol as p
from dlbridge.trainer.client import ServerConnection
from dlbridge.trainer.server import HANDSHAKE_DEADLINE, PENDING_LIMIT, ParameterServer, max_workers
from trainer_helpers import (accuracy, assert_no_leaks, digits_frames, port_of, run_in_thread, running_servers,
                             send_after_challenge, small_model, trainer_threads, wait_for)

SECRET = bytes(range(32))


def _serve(num_workers: int = 2, tls: bool = False) -> tuple[ParameterServer, bytes | None]:
    import keras

    from dlbridge.trainer.store import WeightStore

    identity = transport.new_identity() if tls else None
    store = WeightStore(small_model(), keras.optimizers.SGD(learning_rate=0.1), locked=True)
    server = ParameterServer(store, SECRET, "async", num_workers, "127.0.0.1", timeout=10.0, tls=identity)
    return server, identity.fingerprint if identity else None


@pytest.fixture(params=["plain", "tls"])
def served(request):
    server, pin = _serve(tls=request.param == "tls")
    try:
        yield server, pin
    finally:
        server.close()
        assert server.open_sockets() == 0
        assert_no_leaks(server.port)


def _worker(server: ParameterServer, pin: bytes | None, timeout: float = 10.0) -> ServerConnection:
    return ServerConnection("127.0.0.1", server.port, SECRET, server.store.num_params, timeout, pin)


def _still_serves(server: ParameterServer, pin: bytes | None) -> None:
    with _worker(server, pin) as conn:
        assert conn.pull()[1].shape == (server.store.num_params,)
    assert server.failure is None


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS")).split()[1]) / 1024


class _Payload:
    """Unpickling this would create a directory: the server must never do it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


def test_unauthenticated_garbage_fails_only_that_peer(tmp_path):
    server, _ = _serve()
    try:
        evil = pickle.dumps(_Payload(str(tmp_path / "pwned")))
        for data in (b"", os.urandom(256), evil, p.HEADER.pack(p.AUTH, len(evil)) + evil,
                     struct.pack("<Q", 2**62), p.HEADER.pack(p.AUTH, 2**32 - 1), p.HEADER.pack(99, 0)):
            assert send_after_challenge(server.port, data) == b""
        started = time.monotonic()
        with pytest.raises(p.ProtocolError, match="authentication failed"):  # final: no retries
            ServerConnection("127.0.0.1", server.port, p.new_secret(), server.store.num_params, 10.0)
        assert time.monotonic() - started < 2
        assert server.stats["rejected"] >= 7
        _still_serves(server, None)
        assert not os.path.exists(tmp_path / "pwned")
    finally:
        server.close()
    assert_no_leaks(server.port)


@pytest.mark.parametrize("kind, payload", [
    (99, b""),                                             # unknown kind
    (p.PUSH, p.PUSH_HEADER.pack(1, 1) + b"\0" * 12),        # wrong tensor length
    (p.PUSH, b"\1"),                                       # shorter than its header
    (p.HELLO, b"{not json"),
    (p.HELLO, b"[" * 50_000 + b"]" * 10_000),              # nests past the JSON parser's recursion limit
    (p.HELLO, b'{"num_params": 0}'),
    (p.HELLO, pickle.dumps({"num_params": 1})),
])
def test_authenticated_malformed_frames_fail_only_that_peer(kind, payload):
    server, _ = _serve()
    try:
        other = _worker(server, None)
        conn = _worker(server, None)
        p.send_frame(conn._sock, kind, payload)
        answer, message = p.recv_frame(conn._sock, p.MAX_CONTROL_FRAME)
        assert answer == p.ERROR and b"protocol error" in bytes(message)
        conn._sock.close()
        assert other.pull()[1].shape == (server.store.num_params,)  # the other peer carries on
        other.close()
        _still_serves(server, None)
    finally:
        server.close()


def test_oversize_authenticated_length_is_refused_before_allocation():
    server, _ = _serve()
    try:
        before = _rss_mb()
        with _worker(server, None) as conn:
            conn._sock.sendall(p.HEADER.pack(p.PUSH, 2**32 - 1))
            answer, message = p.recv_frame(conn._sock, p.MAX_CONTROL_FRAME)
        assert answer == p.ERROR and b"limit" in bytes(message)
        assert _rss_mb() - before < 50
        _still_serves(server, None)
    finally:
        server.close()


def _drip(port: int, first: bytes, every: float = 0.5) -> float:
    """Send ``first`` then one byte every ``every`` s; return the seconds until the server cuts us off."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        started = time.monotonic()
        sock.sendall(first)
        sock.settimeout(every)
        try:
            while time.monotonic() - started < 30:
                sock.sendall(b"\0")
                try:
                    if sock.recv(4096) == b"":
                        break
                except TimeoutError:
                    continue
        except (ConnectionResetError, BrokenPipeError):
            pass
        return time.monotonic() - started


def test_dripping_peer_is_cut_at_the_handshake_deadline(served):
    server, pin = served
    # Plain: an AUTH header announcing 64 bytes, then the body one byte at a time. TLS: a record
    # header announcing 512 bytes of ClientHello, then the record one byte at a time.
    held = _drip(server.port, b"\x16\x03\x01\x02\x00" if pin else p.HEADER.pack(p.AUTH, 64))
    assert HANDSHAKE_DEADLINE - 1 < held < HANDSHAKE_DEADLINE + 2
    _still_serves(server, pin)


def _idle_flood(port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        socks.append(sock)
    return socks


def test_flood_of_idle_connections_cannot_lock_out_workers(served):
    server, pin = served
    before = _rss_mb()
    flood = _idle_flood(server.port, 200)
    try:
        time.sleep(0.5)
        assert len(trainer_threads()) <= PENDING_LIMIT + 1  # pending handshakes + the acceptor
        started = time.monotonic()
        _still_serves(server, pin)  # refused while the flood holds the pending slots, retried, admitted
        assert time.monotonic() - started < HANDSHAKE_DEADLINE + 3
        assert _rss_mb() - before < 50
    finally:
        for sock in flood:
            sock.close()
    wait_for(lambda: len(trainer_threads()) == 1, 10, "handshake threads to end")


def test_many_authenticated_workers_at_once_and_busy_beyond_the_cap():
    server, _ = _serve(num_workers=70)
    try:
        conns: list[ServerConnection] = []
        errors: list[BaseException] = []

        def join() -> None:
            try:
                conn = _worker(server, None, timeout=60)
                conn.pull()
                conns.append(conn)
            except BaseException as e:  # noqa: BLE001 - handed to the test thread
                errors.append(e)

        threads = [threading.Thread(target=join) for _ in range(70)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        assert errors == [] and len(conns) == 70 and server.open_sockets() == 70
        for conn in conns:
            conn.close()
    finally:
        server.close()
    small, _ = _serve(num_workers=1)  # connection_limit(1) == 12
    try:
        held = [_worker(small, None) for _ in range(12)]
        with pytest.raises(RuntimeError, match="did not accept this worker.*all 12 connections"):
            _worker(small, None, timeout=1.0)
        held.pop().close()
        _still_serves(small, None)
        for conn in held:
            conn.close()
    finally:
        small.close()
    assert_no_leaks(small.port)


ACCEPT_ERROR_SERVER = """
import logging, os, resource, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
sys.path.insert(0, sys.argv[1])
import test_trainer_hostile as t
server, _ = t._serve()
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 4, hard))
print(server.port, flush=True)
sys.stdin.read()
server.close()
"""


def test_accept_errors_are_survived(tmp_path):
    """A server out of file descriptors (EMFILE) logs once, backs off, and accepts again once freed."""
    child = subprocess.Popen([sys.executable, "-c", ACCEPT_ERROR_SERVER, os.path.dirname(__file__)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(child.stdout.readline())
        flood = [socket.create_connection(("127.0.0.1", port)) for _ in range(12)]
        time.sleep(1.5)  # the acceptor hits EMFILE, backs off, retries
        for sock in flood:
            sock.close()
        with ServerConnection("127.0.0.1", port, SECRET, 49, timeout=20.0) as conn:  # small_model: 49
            assert conn.pull()[1].shape == (49,)
        child.stdin.close()
        assert child.wait(30) == 0
        log = child.stderr.read()
    finally:
        child.kill()
        child.wait()
    assert log.count("accept failed") == 1 and "Too many open files" in log, log
    assert "accepting connections again" in log, log


@pytest.fixture(scope="module")
def tls_spark():
    from conftest import build_spark

    session = build_spark(spark__authenticate="true", spark__network__crypto__enabled="true")
    try:
        yield session
    finally:
        session.stop()


def test_num_workers_beyond_the_limit_is_rejected_before_any_job(tls_spark):
    df = tls_spark.createDataFrame([([0.0, 1.0], 1.0)], ["features", "label"])
    tracker = tls_spark.sparkContext.statusTracker()
    jobs = tracker.getJobIdsForGroup()
    limit = max_workers()
    with pytest.raises(ValueError) as info:
        fit(df, "features", "label", mlp_builder([4], "classification"), TrainingOptions(numWorkers=limit + 1))
    message = str(info.value)
    assert f"numWorkers={limit + 1}" in message and f"Set numWorkers <= {limit}" in message and "ulimit" in message
    assert tracker.getJobIdsForGroup() == jobs


def _tls_server_hello(port: int) -> bytes:
    """Send a TLS ClientHello over a raw socket; return the first record the server answers."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(outgoing.read())
        return sock.recv(5)


def test_tls_fit_under_attack_matches_the_plain_fit(tls_spark):
    train, x_test, y_test = digits_frames(tls_spark)
    opts = TrainingOptions(mode="sync", epochs=40, batchSize=32, optimizerOptions='{"learning_rate": 0.005}',
                           verbose=0)  # 40 epochs (a few seconds): the fit must outlive the attack
    thread, out = run_in_thread(lambda: fit(train, "features", "label", mlp_builder([64], "classification"), opts))
    servers = wait_for(lambda: [s for s in running_servers() if s.stats["pushes"] > 0] or not thread.is_alive(),
                       300, "a training server")
    assert thread.is_alive(), out.get("error")
    server = servers[0]
    record = _tls_server_hello(server.port)
    assert record[0] == 0x16 and record != p.HEADER.pack(p.CHALLENGE, p.NONCE_BYTES)[:5]  # handshake record
    with pytest.raises(transport.PinMismatch):
        ServerConnection("127.0.0.1", server.port, SECRET, server.store.num_params, 10.0, pin=b"\0" * 32)
    before = _rss_mb()
    flood = _idle_flood(server.port, 200)
    dripped = _drip(server.port, b"\x16\x03\x01\x02\x00")
    for sock in flood:
        sock.close()
    assert dripped < HANDSHAKE_DEADLINE + 2 and _rss_mb() - before < 50
    assert thread.is_alive(), "the fit ended before the attack did: make it longer"
    thread.join(300)
    assert not thread.is_alive() and "error" not in out, out.get("error")
    tls_result = out["result"]
    assert tls_result.summary["tls"] is True
    assert_no_leaks(port_of(tls_result))
    conf = tls_spark.sparkContext._conf  # the live SparkConf: the same fit without TLS, for comparison
    conf.set("spark.network.crypto.enabled", "false")
    try:
        plain = fit(train, "features", "label", mlp_builder([64], "classification"), opts)
    finally:
        conf.set("spark.network.crypto.enabled", "true")
    assert plain.summary["tls"] is False
    tls_acc, plain_acc = accuracy(tls_result.model, x_test, y_test), accuracy(plain.model, x_test, y_test)
    assert tls_acc >= 0.85 and abs(tls_acc - plain_acc) <= 0.03, (tls_acc, plain_acc)
    assert np.isfinite(tls_result.history[-1]["loss"])
