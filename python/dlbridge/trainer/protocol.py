"""Wire protocol between the parameter server and its workers.

A frame is a 5-byte header (``<BI``: kind, payload length) followed by the
payload. Tensors travel as one flat little-endian float32 buffer; small
control messages are JSON objects. Nothing is ever unpickled or evaluated.

Every connection starts with a mutual HMAC-SHA256 challenge/response over a
per-fit 32-byte secret:

1. server -> client ``CHALLENGE``: 32 random bytes ``sn``;
2. client -> server ``AUTH``: 32 random bytes ``cn`` + ``HMAC(secret, b"c" + sn + cn)``;
3. server -> client ``AUTH_OK``: ``HMAC(secret, b"s" + sn + cn)``.

Both sides compare with :func:`hmac.compare_digest`; before authentication a
frame may not exceed :data:`MAX_HANDSHAKE_FRAME` bytes. Instead of ``AUTH_OK``
the server may answer ``ERROR`` (wrong secret: final) or ``BUSY`` (no free
connection slot: the client may retry later). With TLS on (see
:mod:`dlbridge.trainer.transport`) all of this runs inside the TLS session.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import struct
from typing import Any, Callable

import numpy as np

PROTOCOL_TAG = b"dlbridge-ps-1"
HEADER = struct.Struct("<BI")
MAX_HANDSHAKE_FRAME = 128
MAX_CONTROL_FRAME = 64 * 1024
NONCE_BYTES = 32

# Frame kinds.
CHALLENGE, AUTH, AUTH_OK = 1, 2, 3
HELLO, PULL, PUSH, DONE, BYE, PULL_STATE, REPORT, EPOCH = 10, 11, 12, 13, 14, 15, 16, 17
WEIGHTS, ACK, ERROR, BUSY, STATE, UPDATE = 20, 21, 22, 23, 24, 25

# PUSH payload: flags, samples, then float32 values. Flag bits:
PUSH_HEADER = struct.Struct("<BI")
WANT_WEIGHTS = 1
IS_DELTA = 2
WANT_UPDATE = 4  # sync mode, a gradient: reply UPDATE, the round's averaged gradient (the worker applies it)
# WEIGHTS payload: server version (number of updates), then float32 values.
# UPDATE payload: the round's number, then the float32 averaged gradient.
# STATE payload (the answer to PULL_STATE): version, float32 weights, then the optimizer's
# variables' raw little-endian bytes, in the order of the optimizer's ``variables``.
# REPORT payload (a sync worker at the end of its epoch): the last round it applied, then
# its weights and optimizer state as in STATE.
WEIGHTS_HEADER = struct.Struct("<Q")
# EPOCH payload (a task of a chained run, see dlbridge.trainer.epoch_board): the JSON control message's
# length, the message (partition, task attempt and, after an epoch, its statistics), then the worker
# model's non-trainable state as raw little-endian float32. The answer is an ACK with {"epoch": next, 0: stop}.
EPOCH_HEADER = struct.Struct("<I")


class ProtocolError(RuntimeError):
    """A peer broke the protocol: bad frame, failed authentication, or an ERROR frame."""


class Busy(ProtocolError):
    """The server authenticated this client but has no free connection slot; retrying may succeed."""


def new_secret() -> bytes:
    """A fresh 256-bit secret for one fit."""
    return os.urandom(32)


def client_mac(secret: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    """The MAC a client proves it holds the secret with."""
    return hmac.new(secret, PROTOCOL_TAG + b"c" + server_nonce + client_nonce, hashlib.sha256).digest()


def server_mac(secret: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    """The MAC the server proves it holds the secret with."""
    return hmac.new(secret, PROTOCOL_TAG + b"s" + server_nonce + client_nonce, hashlib.sha256).digest()


def recv_exact(sock: socket.socket, size: int, into: bytearray | None = None) -> memoryview:
    """Read exactly ``size`` bytes or raise ``ConnectionError`` on EOF.

    With ``into`` (at least ``size`` bytes) the bytes land in that reusable buffer
    instead of a fresh one: the returned view is then valid only until the next
    read into it.
    """
    view = memoryview(into)[:size] if into is not None and len(into) >= size else memoryview(bytearray(size))
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            raise ConnectionError(f"peer closed the connection after {got} of {size} bytes")
        got += n
    return view


def recv_frame(sock: socket.socket, max_size: int, into: bytearray | None = None) -> tuple[int, memoryview]:
    """Read one frame; refuse a declared length above ``max_size`` before reading it.

    ``into`` is a reusable payload buffer (see :func:`recv_exact`): a connection that
    reads a 1 MB tensor per step then allocates none.
    """
    kind, size = HEADER.unpack(recv_exact(sock, HEADER.size))
    if size > max_size:
        raise ProtocolError(f"frame of kind {kind} declares {size} bytes; the limit is {max_size}")
    return kind, recv_exact(sock, size, into) if size else memoryview(b"")


def send_frame(sock: socket.socket, kind: int, *parts: bytes | memoryview) -> None:
    """Send one frame made of the concatenation of ``parts``."""
    size = sum(len(p) for p in parts)
    small = [HEADER.pack(kind, size)] + [bytes(p) for p in parts if len(p) < 4096]
    if len(small) == len(parts) + 1:
        sock.sendall(b"".join(small))
        return
    sock.sendall(HEADER.pack(kind, size))
    for part in parts:
        sock.sendall(part)


def send_json(sock: socket.socket, kind: int, message: dict[str, Any]) -> None:
    """Send a small JSON control message."""
    send_frame(sock, kind, json.dumps(message).encode("utf-8"))


def parse_json(payload: memoryview) -> dict[str, Any]:
    """Decode a JSON control payload, which must be an object."""
    try:
        message = json.loads(bytes(payload).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ProtocolError("control frame is not UTF-8 JSON (or nests too deeply)") from e
    if not isinstance(message, dict):
        raise ProtocolError("control frame is not a JSON object")
    return message


def epoch_frame(message: dict[str, Any], state: bytes) -> tuple[bytes, bytes, bytes]:
    """The parts of an ``EPOCH`` frame carrying ``message`` and ``state``."""
    text = json.dumps(message).encode("utf-8")
    return EPOCH_HEADER.pack(len(text)), text, state


def parse_epoch_frame(payload: memoryview) -> tuple[dict[str, Any], bytes]:
    """The JSON message and the state bytes of an ``EPOCH`` frame."""
    if len(payload) < EPOCH_HEADER.size:
        raise ProtocolError("EPOCH frame shorter than its header")
    (size,) = EPOCH_HEADER.unpack(payload[: EPOCH_HEADER.size])
    end = EPOCH_HEADER.size + size
    if size > MAX_CONTROL_FRAME or end > len(payload):
        raise ProtocolError(f"EPOCH frame declares a {size}-byte message in {len(payload)} bytes")
    return parse_json(payload[EPOCH_HEADER.size:end]), bytes(payload[end:])


def floats(payload: memoryview, offset: int, expected: int) -> np.ndarray:
    """View ``expected`` little-endian float32 values of ``payload`` from ``offset``."""
    if len(payload) - offset != 4 * expected:
        raise ProtocolError(
            f"tensor payload holds {len(payload) - offset} bytes; expected {4 * expected} "
            f"({expected} float32 values)"
        )
    return np.frombuffer(payload, dtype="<f4", count=expected, offset=offset)


def server_handshake(sock: socket.socket, secret: bytes, admit: Callable[[], str | None] = lambda: None) -> None:
    """Authenticate a freshly accepted connection or raise ``ProtocolError``.

    ``admit`` is called once the client has proved it holds the secret; a reason it
    returns is sent as ``BUSY`` (and raised as :class:`Busy`) instead of ``AUTH_OK``.
    """
    server_nonce = os.urandom(NONCE_BYTES)
    send_frame(sock, CHALLENGE, server_nonce)
    kind, payload = recv_frame(sock, MAX_HANDSHAKE_FRAME)
    if kind != AUTH or len(payload) != NONCE_BYTES + 32:
        raise ProtocolError(f"expected an AUTH frame of {NONCE_BYTES + 32} bytes")
    client_nonce = bytes(payload[:NONCE_BYTES])
    expected = client_mac(secret, server_nonce, client_nonce)
    if not hmac.compare_digest(expected, bytes(payload[NONCE_BYTES:])):
        send_frame(sock, ERROR, b"authentication failed")
        raise ProtocolError("authentication failed: wrong secret")
    refusal = admit()
    if refusal is not None:
        send_frame(sock, BUSY, refusal.encode("utf-8")[:MAX_HANDSHAKE_FRAME])
        raise Busy(refusal)
    send_frame(sock, AUTH_OK, server_mac(secret, server_nonce, client_nonce))


def client_handshake(sock: socket.socket, secret: bytes) -> None:
    """Authenticate to the server (and the server to us) or raise ``ProtocolError``."""
    kind, payload = recv_frame(sock, MAX_HANDSHAKE_FRAME)
    if kind != CHALLENGE or len(payload) != NONCE_BYTES:
        raise ProtocolError("expected a CHALLENGE frame from the parameter server")
    server_nonce = bytes(payload)
    client_nonce = os.urandom(NONCE_BYTES)
    send_frame(sock, AUTH, client_nonce, client_mac(secret, server_nonce, client_nonce))
    kind, payload = recv_frame(sock, MAX_HANDSHAKE_FRAME)
    if kind in (ERROR, BUSY):
        error = Busy if kind == BUSY else ProtocolError
        raise error(f"parameter server refused the connection: {bytes(payload).decode('utf-8', 'replace')}")
    expected = server_mac(secret, server_nonce, client_nonce)
    if kind != AUTH_OK or not hmac.compare_digest(expected, bytes(payload)):
        raise ProtocolError("the parameter server failed to authenticate (wrong secret?)")
