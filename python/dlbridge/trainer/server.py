"""The parameter server: one per fit, on the driver, on an ephemeral port."""
from __future__ import annotations

import logging
import selectors
import socket
import threading
import weakref
from typing import Any, Callable

from dlbridge.trainer import protocol as p
from dlbridge.trainer.store import WeightStore
from dlbridge.trainer.sync import SyncAborted, SyncCoordinator

logger = logging.getLogger("dlbridge.trainer")

HANDSHAKE_TIMEOUT = 10.0
MAX_CONNECTIONS = 64
THREAD_PREFIX = "dlbridge-ps"
_ACTIVE: "weakref.WeakSet[ParameterServer]" = weakref.WeakSet()


def active_servers() -> list["ParameterServer"]:
    """Parameter servers currently running in this process (for tests and diagnostics)."""
    return [s for s in list(_ACTIVE) if not s.closed]


class ParameterServer:
    """Serves a :class:`WeightStore` to authenticated workers over TCP.

    Parameters
    ----------
    store : WeightStore
        Weights and optimizer.
    secret : bytes
        The per-fit secret every connection must prove it holds.
    mode : str
        ``"hogwild"``, ``"async"`` or ``"sync"``.
    num_workers : int
        Workers of a ``sync`` barrier (ignored otherwise).
    bind_host : str
        Address to listen on (the driver's address).
    timeout : float
        Seconds a connection may stay silent, and a sync round may wait.
    """

    def __init__(self, store: WeightStore, secret: bytes, mode: str, num_workers: int,
                 bind_host: str, timeout: float) -> None:
        self.store = store
        self.mode = mode
        self.timeout = timeout
        self.closed = False
        self.failure: BaseException | None = None
        self.on_abort: Callable[[str], None] | None = None
        self.stats = {"connections": 0, "rejected": 0, "pushes": 0, "pulls": 0}
        self._secret = secret
        self._sync = SyncCoordinator(store, num_workers, timeout) if mode == "sync" else None
        self._max_frame = p.PUSH_HEADER.size + 4 * store.num_params + p.MAX_CONTROL_FRAME
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
        self._listener = socket.create_server((bind_host, 0), family=family)
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"{THREAD_PREFIX}-{self.port}-accept",
                                          daemon=True)
        self._acceptor.start()
        _ACTIVE.add(self)

    def close(self, reason: str | None = None) -> None:
        """Stop accepting, drop every connection, join every thread. Idempotent.

        A ``reason`` marks an abnormal stop (the fit is failing): :attr:`on_abort`
        is called first so that the driver can cancel its Spark jobs at once.
        """
        with self._lock:
            if self.closed:
                return
            self.closed = True
            conns = list(self._conns)
        if reason is not None:
            self._run_abort_hook(reason)
        reason = reason or "parameter server closed"
        if self._sync:
            self._sync.abort(reason)
        self._wake_w.send(b"x")
        self._acceptor.join(self.timeout)
        for conn in conns:
            _shutdown(conn)
        for thread in list(self._threads):
            thread.join(self.timeout)
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive or self._acceptor.is_alive():
            logger.error("parameter server on port %d: threads still alive after close: %s", self.port, alive)

    def _run_abort_hook(self, reason: str) -> None:
        hook, self.on_abort = self.on_abort, None
        if hook is None:
            return
        try:
            hook(reason)
        except Exception:  # noqa: BLE001 - cancelling is best effort; the workers fail on their own too
            logger.exception("parameter server on port %d: abort hook failed", self.port)

    def open_sockets(self) -> int:
        """Connections currently open (0 after :meth:`close`)."""
        with self._lock:
            return len(self._conns)

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self.closed:
                for key, _ in selector.select():
                    if key.fileobj is self._listener and not self.closed:
                        self._accept_one()

    def _accept_one(self) -> None:
        try:
            conn, addr = self._listener.accept()
        except BlockingIOError:
            return
        with self._lock:
            if self.closed or len(self._conns) >= MAX_CONNECTIONS:
                conn.close()
                self.stats["rejected"] += 1
                return
            self._conns.add(conn)
            self.stats["connections"] += 1
            thread = threading.Thread(target=self._serve, args=(conn, addr), daemon=True,
                                      name=f"{THREAD_PREFIX}-{self.port}-conn")
            self._threads.add(thread)
        thread.start()

    def _serve(self, conn: socket.socket, addr: Any) -> None:
        state: dict[str, Any] = {}
        try:
            conn.setblocking(True)
            conn.settimeout(HANDSHAKE_TIMEOUT)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                p.server_handshake(conn, self._secret)
            except (p.ProtocolError, ConnectionError, OSError, ValueError) as e:
                self._reject(addr, e)
                return
            conn.settimeout(self.timeout)
            self._session(conn, state)
        except SyncAborted as e:
            _send_error(conn, str(e))
        except (p.ProtocolError, ValueError) as e:
            logger.warning("parameter server on port %d: protocol error from %s: %s", self.port, addr, e)
            _send_error(conn, f"protocol error: {e}")
        except (ConnectionError, OSError) as e:
            if not self.closed:
                logger.info("parameter server on port %d: connection from %s lost: %s", self.port, addr, e)
        except Exception as e:  # noqa: BLE001 - recorded, reported to the worker and to fit
            logger.exception("parameter server on port %d failed serving %s", self.port, addr)
            self.failure = e
            _send_error(conn, f"parameter server failure: {type(e).__name__}: {e}")
            self._run_abort_hook(f"parameter server failure: {e!r}")
        finally:
            self._finish(conn, state)

    def _reject(self, addr: Any, error: BaseException) -> None:
        with self._lock:
            self.stats["rejected"] += 1
        logger.warning("parameter server on port %d: rejected connection from %s: %s", self.port, addr, error)

    def _finish(self, conn: socket.socket, state: dict[str, Any]) -> None:
        if self._sync and "partition" in state:
            self._sync.worker_lost(state["partition"], state["generation"])
        with self._lock:
            self._conns.discard(conn)
            self._threads.discard(threading.current_thread())
        conn.close()

    def _session(self, conn: socket.socket, state: dict[str, Any]) -> None:
        while not self.closed:
            kind, payload = p.recv_frame(conn, self._max_frame)
            if kind == p.BYE:
                return
            if kind == p.PULL:
                self._send_weights(conn)
            elif kind == p.PUSH:
                self._on_push(conn, payload, state)
            elif kind == p.HELLO:
                self._on_hello(conn, p.parse_json(payload), state)
            elif kind == p.DONE:
                if self._sync and "partition" in state:
                    self._sync.done(state["partition"], state["generation"])
                p.send_frame(conn, p.ACK)
            else:
                raise p.ProtocolError(f"unexpected frame kind {kind}")

    def _on_hello(self, conn: socket.socket, message: dict[str, Any], state: dict[str, Any]) -> None:
        if message.get("num_params") != self.store.num_params:
            raise p.ProtocolError(f"worker model has {message.get('num_params')} parameters; "
                                  f"the server holds {self.store.num_params}")
        if self._sync:
            partition = int(message["partition"])
            state["generation"] = self._sync.hello(partition, int(message["epoch"]), int(message.get("stage_attempt_key", 0)))
            state["partition"] = partition
        p.send_json(conn, p.ACK, {"mode": self.mode, "num_params": self.store.num_params})

    def _on_push(self, conn: socket.socket, payload: memoryview, state: dict[str, Any]) -> None:
        if len(payload) < p.PUSH_HEADER.size:
            raise p.ProtocolError("PUSH frame shorter than its header")
        flags, samples = p.PUSH_HEADER.unpack(payload[: p.PUSH_HEADER.size])
        values = p.floats(payload, p.PUSH_HEADER.size, self.store.num_params)
        delta = bool(flags & p.IS_DELTA)
        weights = None
        if self._sync:
            if "partition" not in state:
                raise p.ProtocolError("sync mode: PUSH before HELLO")
            weights = self._sync.push(state["partition"], state["generation"], values, samples, delta)
        else:
            self.store.apply(values, delta=delta)
        self.stats["pushes"] += 1
        if flags & p.WANT_WEIGHTS:
            self._send_weights(conn, weights)
        else:
            p.send_frame(conn, p.ACK)

    def _send_weights(self, conn: socket.socket, weights: tuple[int, Any] | None = None) -> None:
        version, flat = weights or self.store.read()
        self.stats["pulls"] += 1
        p.send_frame(conn, p.WEIGHTS, p.WEIGHTS_HEADER.pack(version), memoryview(flat).cast("B"))


def _shutdown(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already disconnected: the serving thread closes it


def _send_error(conn: socket.socket, message: str) -> None:
    try:
        p.send_frame(conn, p.ERROR, message.encode("utf-8")[: p.MAX_CONTROL_FRAME])
    except OSError:
        pass  # the peer is gone; nothing more to tell it
