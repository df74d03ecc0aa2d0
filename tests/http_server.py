"""A real HTTP server on 127.0.0.1 for download tests, with switchable faults.

Each path serves bytes with one behaviour:

- ``normal``: Content-Length and HTTP Range support (206 answers);
- ``drop-once``: the first full request gets the headers and half the body,
  then the connection is cut; later requests behave normally;
- ``stall``: headers and a few bytes, then silence;
- ``slow``: the body in small chunks with pauses (for concurrent downloads);
- ``html``: a web page with no download form (like Drive's quota page);
- ``html-confirm``: a Google-Drive-like confirmation page whose form leads to
  the same path with ``confirm=t``, which then serves the file;
- an integer: that HTTP status with no body.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


@dataclass
class Route:
    data: bytes
    mode: str | int = "normal"
    requests: list[dict] = field(default_factory=list)


class LoopbackServer:
    """Serve ``routes`` on 127.0.0.1 at a free port until :meth:`stop`."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                server._handle(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, path: str, data: bytes, mode: str | int = "normal") -> str:
        self.routes[path] = Route(data, mode)
        return self.base + path

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parsed = urlparse(handler.path)
        route = self.routes.get(parsed.path)
        if route is None:
            handler.send_error(404)
            return
        range_header = handler.headers.get("Range")
        route.requests.append({"range": range_header, "query": parsed.query})
        if isinstance(route.mode, int):
            handler.send_response(route.mode)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if route.mode == "html":
            page = (
                b"<html><body>Quota exceeded: too many users have viewed this file.</body></html>"
            )
            handler.send_response(200)
            handler.send_header("Content-Type", "text/html; charset=utf-8")
            handler.send_header("Content-Length", str(len(page)))
            handler.end_headers()
            handler.wfile.write(page)
            return
        if route.mode == "html-confirm" and parse_qs(parsed.query).get("confirm") != ["t"]:
            page = (
                '<html><body><form id="download-form" action="'
                + parsed.path
                + '" method="get"><input type="hidden" name="confirm" value="t">'
                '<input type="hidden" name="uuid" value="abc-123"></form></body></html>'
            ).encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "text/html; charset=utf-8")
            handler.send_header("Content-Length", str(len(page)))
            handler.end_headers()
            handler.wfile.write(page)
            return
        data, start = route.data, 0
        if range_header:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
        body = data[start:]
        handler.send_response(206 if start else 200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(body)))
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.end_headers()
        if route.mode == "drop-once" and len(route.requests) == 1:
            handler.wfile.write(body[: len(body) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        if route.mode == "stall":
            handler.wfile.write(body[:100])
            handler.wfile.flush()
            time.sleep(3)
            return
        if route.mode == "slow":
            for offset in range(0, len(body), 32 * 1024):
                handler.wfile.write(body[offset : offset + 32 * 1024])
                handler.wfile.flush()
                time.sleep(0.02)
            return
        handler.wfile.write(body)
