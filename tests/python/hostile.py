"""Hostile traffic against a parameter server's port, from outside (plain sockets, no secret)."""
from __future__ import annotations

import os
import pickle
import socket
import threading

import pytest

from dlbridge.trainer import protocol as p
from dlbridge.trainer.client import ServerConnection
from processes import rss_bytes
from trainer_helpers import send_after_challenge

IDLE_CONNECTIONS = 200
DRIPPERS = 5
DRIP_INTERVAL = 2.0


class _MakeDir:
    """Unpickling this would create a directory: a server must never do it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


class HostileTraffic:
    """Attacks the server on ``port`` and holds the attacking connections open until exit.

    A pickle payload that the server unpickled would create :attr:`marker` in ``directory``.

    While active, a thread samples this process's RSS into :attr:`peak_rss`.
    """

    DESCRIPTION = (f"a connection with no secret held open; a wrong secret; 256 random bytes; a pickle payload; "
                   f"a 2^62 length prefix; {DRIPPERS} connections dripping 1 byte every {DRIP_INTERVAL:.0f}s; "
                   f"{IDLE_CONNECTIONS} idle connections opened at once")

    def __init__(self, port: int, directory: str) -> None:
        self.port = port
        self.marker = os.path.join(directory, "unpickled")  # what unpickling the payload would create
        self.answers_to_garbage: list[bytes] = []
        self.idle_opened = 0
        self.peak_rss = rss_bytes(os.getpid())
        self._sockets: list[socket.socket] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._sample_rss, name="hostile-rss", daemon=True)]

    def run(self) -> None:
        """Send every attack once; the held connections stay open until :meth:`__exit__`."""
        self._sockets += self._open(1)  # no secret: connect and wait
        with pytest.raises(RuntimeError, match="handshake|refused"):
            ServerConnection("127.0.0.1", self.port, p.new_secret(), 1, 10.0).close()
        evil = pickle.dumps(_MakeDir(self.marker))
        for payload in (os.urandom(256), evil, p.HEADER.pack(p.AUTH, len(evil)) + evil,
                        bytes([p.AUTH]) + (2**62).to_bytes(8, "little")):
            self.answers_to_garbage.append(send_after_challenge(self.port, payload))
        for i in range(DRIPPERS):
            thread = threading.Thread(target=self._drip, name=f"hostile-drip-{i}", daemon=True)
            self._threads.append(thread)
            thread.start()
        idle = self._open(IDLE_CONNECTIONS)
        self.idle_opened = len(idle)
        self._sockets += idle

    def _open(self, count: int) -> list[socket.socket]:
        opened = []
        for _ in range(count):
            try:
                opened.append(socket.create_connection(("127.0.0.1", self.port), timeout=10))
            except OSError:
                break  # refused or backlog full: the server is shedding load, which is allowed
        return opened

    def _drip(self) -> None:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
                while not self._stop.wait(DRIP_INTERVAL):
                    sock.sendall(b"\x01")
        except OSError:
            return  # the server dropped the dripping connection, as it should

    def _sample_rss(self) -> None:
        while not self._stop.wait(0.25):
            self.peak_rss = max(self.peak_rss, rss_bytes(os.getpid()))

    def __enter__(self) -> "HostileTraffic":
        self._threads[0].start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for sock in self._sockets:
            sock.close()
        for thread in self._threads:
            thread.join(DRIP_INTERVAL + 15)
