#!/usr/bin/env python3
"""A small HTTP/1.1 file server for bench/fetch.sh: serves one directory,
sends bodies with os.sendfile (zero copy) so the server is not what limits
the measured clients. Usage: serve.py DIR PORTFILE (writes its port there)."""
import http.server
import os
import socketserver
import sys

ROOT = sys.argv[1]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        path = os.path.join(ROOT, os.path.basename(self.path))
        try:
            f = open(path, "rb")
        except OSError:
            self.send_error(404)
            return
        with f:
            size = os.fstat(f.fileno()).st_size
            start = 0
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes=") and rng.endswith("-"):
                start = int(rng[6:-1])
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(size - start))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.flush()
            offset = start
            while offset < size:
                sent = os.sendfile(self.connection.fileno(), f.fileno(), offset, size - offset)
                if sent == 0:
                    break
                offset += sent
        self.close_connection = True

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


with Server(("127.0.0.1", 0), Handler) as httpd:
    with open(sys.argv[2], "w") as pf:
        pf.write(str(httpd.server_address[1]))
    httpd.serve_forever()
