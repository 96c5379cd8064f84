"""Worker-side connection to the parameter server."""
from __future__ import annotations

import socket
from typing import Any

import numpy as np

from dlbridge.trainer import protocol as p


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
        Seconds any single connect, send or receive may take.
    """

    def __init__(self, host: str, port: int, secret: bytes, num_params: int, timeout: float) -> None:
        self.address = f"{host}:{port}"
        self.num_params = num_params
        self._max_frame = p.WEIGHTS_HEADER.size + 4 * num_params + p.MAX_CONTROL_FRAME
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise RuntimeError(
                f"Cannot reach the dlbridge parameter server at {self.address}: {e}. "
                "It runs on the Spark driver; check that executors can connect to "
                "spark.driver.host and that the fit is still running."
            ) from e
        try:
            self._sock.settimeout(timeout)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            p.client_handshake(self._sock, secret)
        except (OSError, ConnectionError) as e:
            self._sock.close()
            raise RuntimeError(f"The dlbridge parameter server at {self.address} did not complete the "
                               f"authentication handshake: {e!r}. Is another service using that port?") from e
        except BaseException:
            self._sock.close()
            raise

    def hello(self, message: dict[str, Any]) -> dict[str, Any]:
        """Register this worker (JSON); returns the server's JSON answer."""
        p.send_json(self._sock, p.HELLO, message)
        return p.parse_json(self._expect(p.ACK))

    def pull(self) -> tuple[int, np.ndarray]:
        """Current weights as ``(version, flat float32 array)``."""
        p.send_frame(self._sock, p.PULL)
        return self._weights()

    def push(self, values: np.ndarray, samples: int, delta: bool = False,
             want_weights: bool = True) -> tuple[int, np.ndarray] | None:
        """Send a flat gradient (or weight delta); optionally receive fresh weights."""
        flags = (p.WANT_WEIGHTS if want_weights else 0) | (p.IS_DELTA if delta else 0)
        data = np.ascontiguousarray(values, dtype="<f4")
        p.send_frame(self._sock, p.PUSH, p.PUSH_HEADER.pack(flags, samples), memoryview(data).cast("B"))
        if want_weights:
            return self._weights()
        self._expect(p.ACK)
        return None

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

    def _expect(self, kind: int) -> memoryview:
        try:
            got, payload = p.recv_frame(self._sock, self._max_frame)
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
