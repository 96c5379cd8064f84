"""The parameter server: one per fit, on the driver, on an ephemeral port.

Each accepted connection gets a thread. Until it has authenticated (the HMAC
handshake of :mod:`dlbridge.trainer.protocol`, inside TLS when the fit asked
for it) a connection holds one of :data:`PENDING_LIMIT` unauthenticated slots and
must finish the whole handshake within :data:`HANDSHAKE_DEADLINE` seconds of
``accept``; beyond that limit new connections are closed at once, so a flood of
idle or dripping peers can never take the slots of workers. Authenticated
connections have their own cap, :func:`connection_limit` of ``numWorkers``;
an authenticated worker beyond it is answered ``BUSY`` and retries (see
:mod:`dlbridge.trainer.client`). Workers that are refused or cut off during the
handshake retry with backoff within their timeout.

An ``accept`` error (``EMFILE`` when the process runs out of file descriptors,
``ENOBUFS``...) is survived: it is logged once, the acceptor backs off for
:data:`ACCEPT_BACKOFF` seconds and keeps accepting; recovery is logged too.
A malformed frame (unknown kind, wrong length, bad JSON, oversize length prefix)
fails only the connection that sent it; frames are size-checked before any
allocation.
"""
from __future__ import annotations

import logging
import resource
import selectors
import socket
import threading
import time
from typing import Any, Callable

from dlbridge.trainer import protocol as p
from dlbridge.trainer import transport
from dlbridge.trainer.epoch_board import BoardClosed, EpochBoard, EpochReport
from dlbridge.trainer.store import WeightStore
from dlbridge.trainer.sync import SyncAborted, SyncCoordinator

logger = logging.getLogger("dlbridge.trainer")

HANDSHAKE_DEADLINE = 5.0
PENDING_LIMIT = 16
CONNECTIONS_PER_WORKER = 4  # a training and a validation task, and one retried or speculative copy of each
SPARE_CONNECTIONS = 8
MAX_CONNECTIONS = 4096  # one thread each
FD_RESERVE = 256  # descriptors the driver process keeps for Spark, py4j and TensorFlow
ACCEPT_BACKOFF = 0.2
THREAD_PREFIX = "dlbridge-ps"


def connection_limit(num_workers: int) -> int:
    """Authenticated connections a server for ``num_workers`` workers admits at once."""
    return CONNECTIONS_PER_WORKER * num_workers + SPARE_CONNECTIONS


def max_workers() -> int:
    """The largest ``numWorkers`` a parameter server in this process can serve.

    Bounded by :data:`MAX_CONNECTIONS` threads and by the process's open-file limit
    (``ulimit -n``) less :data:`FD_RESERVE`.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    sockets = MAX_CONNECTIONS if soft == resource.RLIM_INFINITY else min(MAX_CONNECTIONS, soft - FD_RESERVE)
    return max(0, (sockets - PENDING_LIMIT - SPARE_CONNECTIONS) // CONNECTIONS_PER_WORKER)


def check_capacity(num_workers: int) -> None:
    """Raise ``ValueError`` if a server in this process cannot serve ``num_workers`` workers."""
    limit = max_workers()
    if num_workers > limit:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        raise ValueError(
            f"Option numWorkers={num_workers} is more than the parameter server on this driver can serve: "
            f"the limit is {limit} ({CONNECTIONS_PER_WORKER} connections per worker, at most "
            f"{MAX_CONNECTIONS} connections, open-file limit {soft}). Set numWorkers <= {limit}, or raise "
            "the driver process's open-file limit (ulimit -n).")


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
        Workers of the fit: the size of a ``sync`` barrier, and the base of
        :func:`connection_limit`.
    bind_host : str
        Address to listen on (the driver's address).
    timeout : float
        Seconds an authenticated connection may stay silent, and a sync round may wait.
    tls : transport.TlsIdentity, optional
        Speak TLS with this certificate on every connection. Defaults to ``None`` (plain TCP).
    state_bytes : int
        Bytes of the model's non-trainable state, which a task of a chained run
        reports at each epoch's end (the ``EPOCH`` frame's size limit). Defaults to ``0``.

    Attributes
    ----------
    board : EpochBoard or None
        The chained run in progress (:mod:`dlbridge.trainer.chained` sets it);
        ``EPOCH`` frames are refused while it is ``None``.
    """

    def __init__(self, store: WeightStore, secret: bytes, mode: str, num_workers: int,
                 bind_host: str, timeout: float, tls: transport.TlsIdentity | None = None,
                 state_bytes: int = 0) -> None:
        self.store = store
        self.mode = mode
        self.timeout = timeout
        self.closed = False
        self.failure: BaseException | None = None
        self.on_abort: Callable[[str], None] | None = None
        self.stats = {"connections": 0, "rejected": 0, "pushes": 0, "pulls": 0}
        self._secret = secret
        self._tls = tls
        self._limit = connection_limit(num_workers)
        self._sync = SyncCoordinator(store, num_workers, timeout) if mode == "sync" else None
        # the largest frame a worker sends: a PUSH, or in sync mode a REPORT of weights and optimizer state
        self._report_state_size = store.optimizer_state_size if mode == "sync" else 0
        self._max_frame = (p.WEIGHTS_HEADER.size + 4 * store.num_params + self._report_state_size
                           + state_bytes + p.MAX_CONTROL_FRAME)
        self.board: EpochBoard | None = None
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._pending = self._authenticated = 0
        self._threads: set[threading.Thread] = set()
        self._stopping = threading.Event()
        self._warned: set[str] = set()
        family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
        self._listener = socket.create_server((bind_host, 0), family=family, backlog=128)
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"{THREAD_PREFIX}-{self.port}-accept",
                                          daemon=True)
        self._acceptor.start()

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
        if self.board is not None:
            self.board.close(reason)
        self._stopping.set()
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
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self._listener, selectors.EVENT_READ)
                selector.register(self._wake_r, selectors.EVENT_READ)
                while not self.closed:
                    for key, _ in selector.select():
                        if key.fileobj is self._listener and not self.closed:
                            self._accept_one()
        except Exception as e:  # noqa: BLE001 - a broken acceptor fails the fit at once instead of hanging it
            logger.exception("parameter server on port %d: the accept loop failed", self.port)
            self.failure = e
            self._run_abort_hook(f"parameter server failure: {e!r}")

    def _accept_one(self) -> None:
        try:
            conn, addr = self._listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as e:  # EMFILE, ENFILE, ENOBUFS, ENOMEM: survive, back off, keep accepting
            self._warn_once("accept", "parameter server on port %d: accept failed (%s); backing off %.1fs "
                            "and retrying until it recovers", self.port, e, ACCEPT_BACKOFF)
            self._stopping.wait(ACCEPT_BACKOFF)
            return
        if "accept" in self._warned:
            self._warned.discard("accept")
            logger.warning("parameter server on port %d: accepting connections again", self.port)
        with self._lock:
            if self.closed or self._pending >= PENDING_LIMIT:
                conn.close()
                self.stats["rejected"] += 1
                full = not self.closed
            else:
                full = False
                self._conns.add(conn)
                self._pending += 1
                self.stats["connections"] += 1
                thread = threading.Thread(target=self._serve, args=(conn, addr, time.monotonic()), daemon=True,
                                          name=f"{THREAD_PREFIX}-{self.port}-conn")
                self._threads.add(thread)
        if full:
            self._warn_once("pending", "parameter server on port %d: %d connections are still "
                            "authenticating; closing new ones until they finish", self.port, PENDING_LIMIT)
        else:
            thread.start()

    def _warn_once(self, what: str, message: str, *args: Any) -> None:
        if what not in self._warned:
            self._warned.add(what)
            logger.warning(message, *args)

    def _serve(self, conn: socket.socket, addr: Any, accepted: float) -> None:
        state: dict[str, Any] = {"conn": conn}
        try:
            if not self._authenticate(state, addr, accepted + HANDSHAKE_DEADLINE):
                return
            state["conn"].settimeout(self.timeout)
            self._session(state["conn"], state)
        except (SyncAborted, BoardClosed) as e:
            _send_error(state["conn"], str(e))
        except (p.ProtocolError, ValueError) as e:
            logger.warning("parameter server on port %d: protocol error from %s: %s", self.port, addr, e)
            _send_error(state["conn"], f"protocol error: {e}")
        except (ConnectionError, OSError) as e:
            if not self.closed:
                logger.info("parameter server on port %d: connection from %s lost: %s", self.port, addr, e)
        except Exception as e:  # noqa: BLE001 - recorded, reported to the worker and to fit
            logger.exception("parameter server on port %d failed serving %s", self.port, addr)
            self.failure = e
            _send_error(state["conn"], f"parameter server failure: {type(e).__name__}: {e}")
            self._run_abort_hook(f"parameter server failure: {e!r}")
        finally:
            self._finish(state)

    def _authenticate(self, state: dict[str, Any], addr: Any, deadline: float) -> bool:
        """Run TLS (if on) and the HMAC handshake, all before ``deadline``; ``False`` if refused."""
        try:
            conn = state["conn"]
            conn.setblocking(True)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                conn = state["conn"] = self._replace(conn, transport.server_wrap(self._tls, conn))
                _arm(conn, deadline)
                conn.do_handshake()  # one deadline for the whole TLS handshake (CPython's _ssl)
            p.server_handshake(_Deadline(conn, deadline), self._secret, lambda: self._admit(state))
        except p.Busy as e:
            logger.info("parameter server on port %d: refused %s: %s", self.port, addr, e)
            return False
        except (p.ProtocolError, OSError, ValueError) as e:
            self._reject(addr, e)
            return False
        return True

    def _admit(self, state: dict[str, Any]) -> str | None:
        """Move a connection that proved the secret from the pending to the authenticated slots."""
        with self._lock:
            if self._authenticated >= self._limit:
                return f"all {self._limit} connections of this fit are in use; retry later"
            self._pending -= 1
            self._authenticated += 1
            state["authenticated"] = True
            return None

    def _replace(self, old: socket.socket, new: socket.socket) -> socket.socket:
        with self._lock:
            self._conns.discard(old)
            self._conns.add(new)
        if self.closed:
            _shutdown(new)
        return new

    def _reject(self, addr: Any, error: BaseException) -> None:
        with self._lock:
            self.stats["rejected"] += 1
        logger.warning("parameter server on port %d: rejected connection from %s: %s", self.port, addr,
                       error if str(error) else type(error).__name__)

    def _finish(self, state: dict[str, Any]) -> None:
        if self._sync and "partition" in state:
            self._sync.worker_lost(state["partition"], state["generation"])
        if "chained" in state:
            board, partition, attempt = state["chained"]
            board.detach(partition, attempt)
        conn = state["conn"]
        with self._lock:
            self._conns.discard(conn)
            if state.get("authenticated"):
                self._authenticated -= 1
            else:
                self._pending -= 1
            self._threads.discard(threading.current_thread())
        conn.close()

    def _session(self, conn: socket.socket, state: dict[str, Any]) -> None:
        buffer = bytearray(p.PUSH_HEADER.size + 4 * self.store.num_params)  # every PUSH of this connection
        while not self.closed:
            kind, payload = p.recv_frame(conn, self._max_frame, buffer)
            if kind == p.BYE:
                return
            if kind == p.PULL:
                self._send_weights(conn)
            elif kind == p.PULL_STATE:
                version, weights, optimizer = self.store.read_with_optimizer()
                self.stats["pulls"] += 1
                p.send_frame(conn, p.STATE, p.WEIGHTS_HEADER.pack(version), memoryview(weights).cast("B"), optimizer)
            elif kind == p.PUSH:
                self._on_push(conn, payload, state)
            elif kind == p.REPORT:
                self._on_report(payload, state)
                p.send_frame(conn, p.ACK)
            elif kind == p.HELLO:
                self._on_hello(conn, p.parse_json(payload), state)
            elif kind == p.EPOCH:
                self._on_epoch(conn, payload, state)
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
        _require_ints(message, "partition", "epoch")
        answer = {"mode": self.mode, "num_params": self.store.num_params}
        if self._sync:
            _require_ints(message, "task_attempt_id")
            partition = int(message["partition"])
            state["generation"] = self._sync.join(partition, int(message["epoch"]), int(message["task_attempt_id"]),
                                                  bool(message.get("present", True)))
            state["partition"] = partition  # from here, a lost connection aborts the generation
            answer["everyone_present"] = self._sync.wait_for_all(partition, state["generation"])
        p.send_json(conn, p.ACK, answer)

    def _on_epoch(self, conn: socket.socket, payload: memoryview, session: dict[str, Any]) -> None:
        board = self.board
        if board is None:
            raise p.ProtocolError("EPOCH frame outside a chained run")
        message, state = p.parse_epoch_frame(payload)
        _require_ints(message, "partition", "task_attempt_id")
        partition, attempt = int(message["partition"]), int(message["task_attempt_id"])
        finished = message.get("finished")
        session["chained"] = (board, partition, attempt)  # detached from the board when this connection ends
        report = None
        if finished is not None:
            if not isinstance(finished, dict):
                raise p.ProtocolError("an EPOCH frame's 'finished' must be an object")
            _require_ints(finished, "epoch", "samples", "pushes", "correct")
            loss_sum, missing = finished.get("loss_sum"), finished.get("missing")
            if not isinstance(loss_sum, (int, float)) or isinstance(loss_sum, bool) or not isinstance(missing, bool):
                raise p.ProtocolError("an EPOCH frame's statistics need a number 'loss_sum' and a boolean 'missing'")
            report = EpochReport(partition, int(finished["epoch"]), int(finished["samples"]), float(loss_sum),
                                 int(finished["pushes"]), int(finished["correct"]), missing, state)
        attempt_number = message.get("attempt", 0)
        if not isinstance(attempt_number, int) or isinstance(attempt_number, bool):
            raise p.ProtocolError("an EPOCH frame's 'attempt' must be an integer")
        p.send_json(conn, p.ACK, {"epoch": board.next_epoch(partition, attempt, report, attempt_number)})

    def _on_push(self, conn: socket.socket, payload: memoryview, state: dict[str, Any]) -> None:
        if len(payload) < p.PUSH_HEADER.size:
            raise p.ProtocolError("PUSH frame shorter than its header")
        flags, samples = p.PUSH_HEADER.unpack(payload[: p.PUSH_HEADER.size])
        values = p.floats(payload, p.PUSH_HEADER.size, self.store.num_params)
        delta = bool(flags & p.IS_DELTA)
        if self._sync and not delta and not flags & p.WANT_UPDATE:
            raise p.ProtocolError("a sync mode gradient PUSH must ask for the round's averaged gradient")
        if flags & p.WANT_UPDATE and (delta or not self._sync):
            raise p.ProtocolError("only a sync mode gradient PUSH can ask for the round's averaged gradient")
        weights = None
        if self._sync:
            if "partition" not in state:
                raise p.ProtocolError("sync mode: PUSH before HELLO")
            weights = self._sync.push(state["partition"], state["generation"], values, samples, delta)
        else:
            self.store.apply(values, delta=delta)
        self.stats["pushes"] += 1
        if flags & p.WANT_UPDATE:
            number, update = weights
            p.send_frame(conn, p.UPDATE, p.WEIGHTS_HEADER.pack(number), memoryview(update).cast("B"))
        elif flags & p.WANT_WEIGHTS:
            self._send_weights(conn, weights)
        else:
            p.send_frame(conn, p.ACK)

    def _on_report(self, payload: memoryview, state: dict[str, Any]) -> None:
        if not self._sync or "partition" not in state:
            raise p.ProtocolError("REPORT is for sync mode workers, after HELLO")
        weights_end = p.WEIGHTS_HEADER.size + 4 * self.store.num_params
        if len(payload) != weights_end + self._report_state_size:
            raise p.ProtocolError(f"REPORT of {len(payload)} bytes; expected "
                                  f"{weights_end + self._report_state_size} (weights and optimizer state)")
        (applied_round,) = p.WEIGHTS_HEADER.unpack(payload[: p.WEIGHTS_HEADER.size])
        self._sync.report(state["partition"], state["generation"], applied_round,
                          p.floats(payload[:weights_end], p.WEIGHTS_HEADER.size, self.store.num_params),
                          payload[weights_end:])

    def _send_weights(self, conn: socket.socket, weights: tuple[int, Any] | None = None) -> None:
        version, flat = weights or self.store.read()
        self.stats["pulls"] += 1
        p.send_frame(conn, p.WEIGHTS, p.WEIGHTS_HEADER.pack(version), memoryview(flat).cast("B"))


class _Deadline:
    """A socket view whose reads and writes all share one deadline (for the handshake)."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock, self._deadline = sock, deadline

    def recv_into(self, buffer: memoryview, size: int) -> int:
        _arm(self._sock, self._deadline)
        return self._sock.recv_into(buffer, size)

    def sendall(self, data: bytes | memoryview) -> None:
        _arm(self._sock, self._deadline)
        self._sock.sendall(data)


def _arm(sock: socket.socket, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError(f"handshake not completed within {HANDSHAKE_DEADLINE:.0f}s of accept")
    sock.settimeout(remaining)


def _shutdown(conn: socket.socket) -> None:
    try:
        socket.socket.shutdown(conn, socket.SHUT_RDWR)  # the plain socket call, also on a TLS socket
    except OSError:
        pass  # already disconnected: the serving thread closes it


def _require_ints(message: dict[str, Any], *names: str) -> None:
    bad = [n for n in names if not isinstance(message.get(n), int) or isinstance(message.get(n), bool)]
    if bad:
        raise p.ProtocolError(f"control message needs integer fields {', '.join(bad)}")


def _send_error(conn: socket.socket, message: str) -> None:
    try:
        p.send_frame(conn, p.ERROR, message.encode("utf-8")[: p.MAX_CONTROL_FRAME])
    except OSError:
        pass  # the peer is gone; nothing more to tell it
