"""A keep-alive HTTP/1.1 front for a test server that loses the keep-alive race on purpose.

A server closes an idle keep-alive connection when its timeout ends; a client that reuses the
connection at that moment has its request met by the close ("Remote end closed connection
without response", or a reset). The relay makes that moment deterministic: the first request
of a connection is relayed to the upstream server and answered; each later request on the
same connection (a reuse) is dropped by closing the connection, in turn

- ``unsent``: before the upstream sees it (the server was closing an idle connection), and
- ``lost``: after the upstream has done the work, with the response thrown away (the close
  raced the answer): a client that sends again must not label twice or lose the label.
"""

from __future__ import annotations

import http.client
import socket
import socketserver
import threading
from collections import Counter
from typing import Any

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


def read_request(rfile: Any) -> tuple[str, str, list[tuple[str, str]], bytes] | None:
    line = rfile.readline(65537)
    if not line:
        return None
    method, target, _version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    headers: list[tuple[str, str]] = []
    while True:
        raw = rfile.readline(65537).decode("latin-1").rstrip("\r\n")
        if not raw:
            break
        name, _, value = raw.partition(":")
        headers.append((name.strip(), value.strip()))
    length = next((int(v) for n, v in headers if n.lower() == "content-length"), 0)
    return method, target, headers, rfile.read(length) if length else b""


class KeepAliveRaceRelay:
    """Listens on 127.0.0.1 (``.url``); relays to ``upstream`` (host, port)."""

    def __init__(self, upstream: tuple[str, int], *, drop_reused: bool = True) -> None:
        self.upstream = upstream
        self.drop_reused = drop_reused
        self.counts: Counter[str] = Counter()  # relayed, unsent, lost
        self.lock = threading.Lock()
        relay = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                served = 0
                while True:
                    request = read_request(self.rfile)
                    if request is None:
                        return
                    if served and relay.drop_reused:
                        relay.drop(request, self.connection)
                        return
                    self.wfile.write(relay.forward(*request))
                    self.wfile.flush()
                    served += 1

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> KeepAliveRaceRelay:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def drop(self, request: tuple[str, str, list[tuple[str, str]], bytes], conn: Any) -> None:
        with self.lock:
            dropped = self.counts["unsent"] + self.counts["lost"]
            kind = "unsent" if dropped % 2 == 0 else "lost"
            self.counts[kind] += 1
        if kind == "lost":
            self.forward(*request)  # the server does the work; its answer never arrives
        conn.shutdown(socket.SHUT_RDWR)

    def forward(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> bytes:
        upstream = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            upstream.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() not in HOP_BY_HOP:
                    upstream.putheader(name, value)
            upstream.putheader("Content-Length", str(len(body)))
            upstream.putheader("Connection", "close")
            upstream.endheaders(body)
            response = upstream.getresponse()
            content = response.read()
        finally:
            upstream.close()
        with self.lock:
            self.counts["relayed"] += 1
        head = [f"HTTP/1.1 {response.status} {response.reason}"]
        head += [f"{n}: {v}" for n, v in response.getheaders() if n.lower() not in HOP_BY_HOP]
        head += [f"Content-Length: {len(content)}", "Connection: keep-alive", "", ""]
        return "\r\n".join(head).encode("latin-1") + content
