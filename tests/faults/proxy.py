"""A TCP proxy on loopback whose connections a test can cut (a database outage)."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time


class Proxy:
    """Forwards 127.0.0.1:<port> to a server; `cut()` drops every connection and refuses
    new ones (accepting and closing them, counted) until `restore()`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down = False
        self.refused: list[float] = []  # monotonic times of refused connection attempts
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._closing = False
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept_loop)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _accept_loop(self) -> None:
        while not self._closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down:
                self.refused.append(time.monotonic())
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            self._spawn(self._pump, client, upstream)

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                readable, _, _ = select.select([a, b], [], [], 0.5)
                if self._closing:
                    break
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()

    def connections(self) -> int:
        with self._lock:
            return sum(1 for a, _ in self._pairs if a.fileno() != -1)

    def cut(self) -> int:
        """Drop every open connection and refuse new ones; returns how many were cut."""
        self.down = True
        with self._lock:
            pairs, self._pairs = self._pairs, []
        cut = 0
        for a, b in pairs:
            cut += a.fileno() != -1
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
        return cut

    def restore(self) -> None:
        self.down = False

    def close(self) -> None:
        self._closing = True
        self.cut()
        self.listener.close()
        for thread in self._threads:
            thread.join(timeout=2)
