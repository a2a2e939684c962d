"""A loopback HTTP server for download tests: serves files from a folder, answers ``Range`` requests (206), and can
drop a file's first transfer halfway or ignore ranges, as real servers do."""
from __future__ import annotations

import contextlib
import http.server
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator


@dataclass
class Behaviour:
    """What the server does: ``drop_after`` (file name -> bytes sent before closing the first transfer of that
    file), ``ranges`` (whether it honours Range), and what it was asked: (path, Range header or None) per GET."""

    drop_after: dict[str, int] = field(default_factory=dict)
    ranges: bool = True
    requests: list[tuple[str, str | None]] = field(default_factory=list)


def _handler(root: Path, behaviour: Behaviour) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802  (http.server's name)
            name = self.path.lstrip("/").split("?")[0]
            behaviour.requests.append((name, self.headers.get("Range")))
            path = root / name
            if not path.is_file():
                self.send_error(404, "Not Found")
                return
            data = path.read_bytes()
            start = 0
            wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if wanted and behaviour.ranges:
                start = int(wanted[1])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            cut = behaviour.drop_after.pop(name, None)
            body = data[start:] if cut is None else data[start:start + cut]
            self.wfile.write(body)
            if cut is not None:
                self.close_connection = True

        def log_message(self, *args: object) -> None:  # quiet
            pass

    return Handler


@dataclass
class Server:
    root: Path
    url: str
    behaviour: Behaviour


@contextlib.contextmanager
def serving(root: Path) -> Iterator[Server]:
    """A loopback server over the folder ``root`` (created): put files there, fetch ``server.url + "/NAME"``."""
    root.mkdir(parents=True, exist_ok=True)
    behaviour = Behaviour()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(root, behaviour))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(root, f"http://127.0.0.1:{server.server_address[1]}", behaviour)
    finally:
        server.shutdown()
        server.server_close()
