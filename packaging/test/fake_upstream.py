#!/usr/bin/python3
"""A tiny Ollama stand-in for the package test, on Debian's python3 and its stdlib only.

POST /api/generate streams CHUNKS NDJSON lines, DELAY seconds apart, with chunked transfer
encoding, so the test can see whether the gateway passes them on one by one. GET /api/tags
and GET / answer like Ollama. Every request's method, path and header names (and whether an
Authorization header reached it) are appended to RECORD as JSON lines.

    fake_upstream.py PORT RECORD [CHUNKS] [DELAY]
"""

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
RECORD = sys.argv[2]
CHUNKS = int(sys.argv[3]) if len(sys.argv) > 3 else 5
DELAY = float(sys.argv[4]) if len(sys.argv) > 4 else 0.4


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _record(self) -> None:
        with open(RECORD, "a", encoding="utf-8") as f:
            f.write(
                json.dumps(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": sorted(k.lower() for k in self.headers),
                        "authorization": self.headers.get("Authorization"),
                        "x_api_key": self.headers.get("X-Api-Key"),
                    }
                )
                + "\n"
            )

    def _json(self, status: int, doc: object) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._record()
        if self.path == "/api/tags":
            self._json(200, {"models": [{"name": "llama3:latest", "model": "llama3:latest"}]})
        elif self.path == "/":
            body = b"Ollama is running"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        self._record()
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        if self.path != "/api/generate":
            self._json(404, {"error": "not found"})
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(CHUNKS):
            last = i == CHUNKS - 1
            line = (
                json.dumps(
                    {
                        "model": request.get("model", ""),
                        "response": "" if last else f"tok{i} ",
                        "done": last,
                        "sent_at": time.time(),
                    }
                ).encode()
                + b"\n"
            )
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()
            if not last:
                time.sleep(DELAY)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def log_message(self, format: str, *args: object) -> None:  # the stdlib names it "format"
        sys.stderr.write("fake-upstream: " + (format % args) + "\n")


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
