#!/usr/bin/env python3
"""The soak run's HTTP origin: a small app server the soak kills and restarts.

    origin.py PORT PIDFILE

GET /healthz -> 200 "ok". GET /api/<anything> -> 200 with Cache-Control: no-store, the
body "app <path>\n" and X-Origin-Pid (so the soak can tell which incarnation answered).
POST /api/<anything> -> 200 with the body's SHA-256 in hex. Keep-alive (HTTP/1.1).
Writes its pid to PIDFILE once listening.
"""

import hashlib
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, body, ctype="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Origin-Pid", str(os.getpid()))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        if self.path == "/healthz":
            self._send(200, b"ok\n")
        elif self.path.startswith("/api/"):
            self._send(200, f"app {self.path}\n".encode())
        else:
            self._send(404, b"not found\n")

    def do_HEAD(self):
        self.do_GET()

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if self.path.startswith("/api/"):
            self._send(200, hashlib.sha256(body).hexdigest().encode())
        else:
            self._send(404, b"not found\n")


def main():
    port, pidfile = int(sys.argv[1]), sys.argv[2]
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)  # SO_REUSEADDR: rebinds at once
    with open(pidfile + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(pidfile + ".tmp", pidfile)
    server.serve_forever()


if __name__ == "__main__":
    main()
