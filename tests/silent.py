"""A listener that accepts connections and never says a word.

It plays a hung mail relay, a hung haproxy stats socket, or a client holding a connection
open while haproxy reloads.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from pathlib import Path


class Silent:
    """Accepts on ``sock`` in a thread and keeps every connection open until ``close``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.listen(64)
        name = sock.getsockname()
        self.port = int(name[1]) if isinstance(name, tuple) else 0
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.keep(conn)

    def keep(self, conn: socket.socket) -> None:
        self.conns.append(conn)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() above
        self.sock.close()
        for conn in self.conns:
            conn.close()


class SilentTLS(Silent):
    """Completes the TLS handshake, then never says a word nor answers close_notify."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__(tcp())

    def keep(self, conn: socket.socket) -> None:
        super().keep(conn)
        threading.Thread(target=self._handshake, args=(conn,), daemon=True).start()

    def _handshake(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            # wrap_socket takes the descriptor over: close() must close the wrapped socket.
            self.conns.append(self.context.wrap_socket(conn, server_side=True))


def tcp() -> socket.socket:
    """A TCP socket bound to a free port on 127.0.0.1."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def unix(path: Path) -> socket.socket:
    """A unix stream socket bound at ``path``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    return sock
