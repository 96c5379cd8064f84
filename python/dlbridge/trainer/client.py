"""Worker-side connection to the parameter server.

Opening a connection retries with backoff (:data:`FIRST_BACKOFF` doubling to
:data:`MAX_BACKOFF`, jittered) while the server refuses it for now: a connection
closed or cut during the handshake (the server's unauthenticated slots are full,
or its handshake deadline passed under load) or a ``BUSY`` answer. It gives up
when the worker's timeout is spent. A refused connection (nothing listening), a
wrong secret or a TLS certificate that differs from the pinned one fail at once.
"""
from __future__ import annotations

import random
import socket
import ssl
import time
from typing import Any

import numpy as np

from dlbridge.trainer import protocol as p
from dlbridge.trainer import transport

FIRST_BACKOFF = 0.05
MAX_BACKOFF = 1.0
# Failures of an attempt that a later attempt may not meet. Refused connects never get here:
# they fail at once (nothing listens there).
_RETRYABLE = (p.Busy, ConnectionError, ssl.SSLError)


class ServerConnection:
    """One persistent, authenticated connection to a parameter server.

    Parameters
    ----------
    host, port : str, int
        Address of the server.
    secret : bytes
        The per-fit secret.
    num_params : int
        Number of float32 values in the flat weight vector.
    timeout : float
        Seconds the whole connect (with its retries) may take, and any single
        send or receive afterwards.
    pin : bytes, optional
        SHA-256 of the server's TLS certificate: connect over TLS and refuse any
        other certificate. Defaults to ``None`` (plain TCP).
    """

    def __init__(self, host: str, port: int, secret: bytes, num_params: int, timeout: float,
                 pin: bytes | None = None) -> None:
        self.address = f"{host}:{port}"
        self.num_params = num_params
        self._max_frame = p.WEIGHTS_HEADER.size + 4 * num_params + p.MAX_CONTROL_FRAME
        self._buffer = bytearray(p.WEIGHTS_HEADER.size + 4 * num_params)  # every WEIGHTS frame lands here
        deadline, delay, attempts = time.monotonic() + timeout, FIRST_BACKOFF, 1
        while True:
            try:
                self._sock = self._open(host, port, secret, pin, deadline)
                break
            except _RETRYABLE as e:
                if time.monotonic() + delay >= deadline:
                    raise RuntimeError(
                        f"The dlbridge parameter server at {self.address} did not accept this worker within "
                        f"{timeout:.0f}s ({attempts} attempts; last: {e!r}). It may be overloaded or under "
                        "attack; check the driver log.") from e
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay, attempts = min(2 * delay, MAX_BACKOFF), attempts + 1
        self._timeout = timeout
        self._sock.settimeout(timeout)

    def _open(self, host: str, port: int, secret: bytes, pin: bytes | None, deadline: float) -> socket.socket:
        """One attempt: connect, TLS (if pinned), HMAC handshake; every step within ``deadline``."""
        try:
            sock = socket.create_connection((host, port), timeout=max(deadline - time.monotonic(), 0.01))
        except OSError as e:
            raise RuntimeError(
                f"Cannot reach the dlbridge parameter server at {self.address}: {e}. "
                "It runs on the Spark driver; check that executors can connect to "
                "spark.driver.host and that the fit is still running."
            ) from e
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if pin is not None:
                sock = transport.client_wrap(sock, pin)
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            p.client_handshake(sock, secret)
            return sock
        except _RETRYABLE:
            sock.close()
            raise
        except OSError as e:
            sock.close()
            raise RuntimeError(f"The dlbridge parameter server at {self.address} did not complete the "
                               f"authentication handshake: {e!r}. Is another service using that port?") from e
        except BaseException:
            sock.close()
            raise

    def hello(self, message: dict[str, Any]) -> dict[str, Any]:
        """Register this worker (JSON); returns the server's JSON answer."""
        p.send_json(self._sock, p.HELLO, message)
        return p.parse_json(self._expect(p.ACK))

    def pull(self) -> tuple[int, np.ndarray]:
        """Current weights as ``(version, flat float32 array)``.

        The array views this connection's receive buffer: it is valid until the next
        :meth:`pull` or :meth:`push`; copy it to keep it longer.
        """
        p.send_frame(self._sock, p.PULL)
        return self._weights()

    def pull_state(self, optimizer_bytes: int) -> tuple[np.ndarray, memoryview]:
        """Current weights and the server's optimizer state, read together (``sync`` workers, each epoch).

        Returns the flat float32 weights and the optimizer variables' bytes (see
        :meth:`dlbridge.trainer.store.WeightStore.read_with_optimizer`), both
        valid until the next receive on this connection, like :meth:`pull`'s.

        Raises
        ------
        ProtocolError
            If the state is not ``optimizer_bytes`` long: the server's optimizer
            differs from this worker's.
        """
        p.send_frame(self._sock, p.PULL_STATE)
        payload = self._expect(p.STATE, p.WEIGHTS_HEADER.size + 4 * self.num_params + optimizer_bytes)
        start = p.WEIGHTS_HEADER.size + 4 * self.num_params
        if len(payload) != start + optimizer_bytes:
            raise p.ProtocolError(f"optimizer state from {self.address} holds {len(payload) - start} bytes; this "
                                  f"worker's optimizer holds {optimizer_bytes}")
        return p.floats(payload[:start], p.WEIGHTS_HEADER.size, self.num_params), payload[start:]

    def push(self, values: np.ndarray, samples: int, delta: bool = False,
             want_weights: bool = True) -> tuple[int, np.ndarray] | None:
        """Send a flat gradient (or weight delta); optionally receive fresh weights (as :meth:`pull`)."""
        flags = (p.WANT_WEIGHTS if want_weights else 0) | (p.IS_DELTA if delta else 0)
        self._send_push(flags, values, samples)
        if want_weights:
            return self._weights()
        self._expect(p.ACK)
        return None

    def push_for_update(self, gradient: np.ndarray, samples: int) -> tuple[int, np.ndarray]:
        """``sync`` mode: send a flat gradient; receive ``(round number, the round's averaged gradient)``.

        The worker applies the update itself. The array views this connection's
        receive buffer, as :meth:`pull`'s does.
        """
        self._send_push(p.WANT_UPDATE, gradient, samples)
        payload = self._expect(p.UPDATE)
        (number,) = p.WEIGHTS_HEADER.unpack(payload[: p.WEIGHTS_HEADER.size])
        return number, p.floats(payload, p.WEIGHTS_HEADER.size, self.num_params)

    def report(self, applied_round: int, weights: np.ndarray, optimizer_state: bytes) -> None:
        """``sync`` mode, at the end of the epoch: this worker's weights and optimizer state after ``applied_round``."""
        data = np.ascontiguousarray(weights, dtype="<f4")
        p.send_frame(self._sock, p.REPORT, p.WEIGHTS_HEADER.pack(applied_round), memoryview(data).cast("B"),
                     optimizer_state)
        self._expect(p.ACK)

    def next_epoch(self, message: dict[str, Any], state: bytes = b"") -> int:
        """A task of a chained run: report an epoch's end (``message["finished"]``), get the epoch to train next.

        Returns the epoch, or 0 when the task stops. The wait has no timeout: the
        driver answers once every partition has reported (and the epoch was
        recorded), and a fit that ends or fails closes the connection.
        """
        self._sock.settimeout(None)
        try:
            p.send_frame(self._sock, p.EPOCH, *p.epoch_frame(message, state))
            answer = p.parse_json(self._expect(p.ACK))
        finally:
            self._sock.settimeout(self._timeout)
        epoch = answer.get("epoch")
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise p.ProtocolError(f"expected the next epoch from {self.address}, got {answer!r}")
        return epoch

    def _send_push(self, flags: int, values: np.ndarray, samples: int) -> None:
        data = np.ascontiguousarray(values, dtype="<f4")
        p.send_frame(self._sock, p.PUSH, p.PUSH_HEADER.pack(flags, samples), memoryview(data).cast("B"))

    def done(self, message: dict[str, Any]) -> None:
        """Tell the server this worker's data for the epoch is exhausted."""
        p.send_json(self._sock, p.DONE, message)
        self._expect(p.ACK)

    def close(self) -> None:
        """Say goodbye (best effort) and close the socket."""
        try:
            p.send_frame(self._sock, p.BYE)
        except OSError:
            pass  # the server may already be gone; closing is all that is left
        finally:
            self._sock.close()

    def __enter__(self) -> "ServerConnection":
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._sock.close()  # no BYE: the server must see this worker as lost

    def _weights(self) -> tuple[int, np.ndarray]:
        payload = self._expect(p.WEIGHTS)
        (version,) = p.WEIGHTS_HEADER.unpack(payload[: p.WEIGHTS_HEADER.size])
        return version, p.floats(payload, p.WEIGHTS_HEADER.size, self.num_params)

    def _expect(self, kind: int, max_size: int | None = None) -> memoryview:
        try:
            got, payload = p.recv_frame(self._sock, max(max_size or 0, self._max_frame), self._buffer)
        except (OSError, ConnectionError) as e:
            raise RuntimeError(
                f"Lost the dlbridge parameter server at {self.address}: {e}. The fit was "
                "stopped or the driver died; see the driver log for the cause."
            ) from e
        if got == p.ERROR:
            raise p.ProtocolError(f"parameter server at {self.address}: {bytes(payload).decode()}")
        if got != kind:
            raise p.ProtocolError(f"expected frame kind {kind} from {self.address}, got {got}")
        return payload
