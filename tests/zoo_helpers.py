"""Helpers for the model-zoo tests: a loopback HTTP server and zoo-shaped archives.

Nothing here reaches the network: the server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import os
import tarfile
import threading
import urllib.parse


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves the files of `server.folder` by name; `server.truncate` (a fraction)
    sends only part of each file and then closes the connection, with or without
    having announced the full Content-Length."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        server = self.server
        name = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        server.requests.append(name)
        path = os.path.join(server.folder, name)
        if "/" in name or not os.path.isfile(path):
            self.send_error(404, f"no {name}")
            return
        size = os.path.getsize(path)
        send = size if server.truncate is None else int(size * server.truncate)
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        if server.send_length:
            self.send_header("Content-Length", str(size))
        self.end_headers()
        with open(path, "rb") as f:
            remaining = send
            while remaining:
                chunk = f.read(min(1 << 20, remaining))
                if not chunk:
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)
        self.close_connection = True

    def log_message(self, *args):  # keep the test output quiet
        pass


@contextlib.contextmanager
def serve(folder, truncate: float | None = None, send_length: bool = True):
    """Serves `folder` on a free loopback port in a thread; yields `(server, base_url)`.
    `server.requests` lists the file names asked for."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.folder = os.fspath(folder)
    server.truncate = truncate
    server.send_length = send_length
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_link(tar: tarfile.TarFile, name: str, target: str, hard: bool = False) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    tar.addfile(info)


def write_archive(path, files: dict, extra=None, compresslevel: int = 1) -> str:
    """A `.tgz`/`.tar.gz` with `files` ({archive name: local path}) and, through
    `extra(tar)`, any hand-made members."""
    with tarfile.open(path, "w:gz", compresslevel=compresslevel) as tar:
        for name, local in files.items():
            tar.add(local, arcname=name)
        if extra is not None:
            extra(tar)
    return os.fspath(path)
