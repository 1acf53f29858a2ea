"""A loopback TCP forwarder a test can cut or stall: the network between one client and a real server failing
(refused connections, dropped ones) or hanging (bytes accepted, never delivered), while the server and its other
clients carry on, as in a partition."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.ports import free_port


class TcpCut:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host, self.target_port, self.port = host, target_port, free_port()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._flowing = threading.Event()
        self._flowing.set()
        self.restore()

    def stall(self) -> None:
        """Keep every connection open but deliver nothing, either way: a server that hangs."""
        self._flowing.clear()

    def resume(self) -> None:
        """Deliver again what was held and what follows."""
        self._flowing.set()

    def restore(self) -> None:
        """Accept and forward connections again."""
        listener = socket.create_server((self.host, self.port), reuse_port=False)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and drop the open ones: nothing sent now reaches the server."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, []
        for sock in [listener, *sockets]:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            server = socket.create_connection((self.host, self.target_port))
            with self._lock:
                self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=_pipe, args=(source, sink, self._flowing), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket, flowing: threading.Event) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            flowing.wait()
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
