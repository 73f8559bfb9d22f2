"""A webhook receiver for the fleet lab: every POST becomes one JSON file in a folder.

Started as ``python -m lab.webhook_sink FOLDER ADDRESS PORT`` (inside the fleet's namespace).
Each request is written to ``FOLDER/<n>.json`` (write, then rename) as ``{"received": time,
"path": ..., "body": <the JSON it carried>}``, numbered in arrival order, and answered 200.
Prints ``READY`` once it listens; stops on SIGTERM.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any


def handler(folder: Path) -> type[BaseHTTPRequestHandler]:
    count = itertools.count(1)
    lock = threading.Lock()

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                parsed: Any = json.loads(body)
            except ValueError:
                parsed = body.decode("utf-8", "replace")
            record = {"received": time.time(), "path": self.path, "body": parsed}
            with lock:
                name = f"{next(count):06d}.json"
                tmp = folder / f".{name}.tmp"
                tmp.write_text(json.dumps(record))
                os.replace(tmp, folder / name)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Sink


def main() -> None:
    folder, address, port = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    folder.mkdir(parents=True, exist_ok=True)
    server = HTTPServer((address, port), handler(folder))  # one at a time: keeps the order
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print("READY", flush=True)
    server.serve_forever(poll_interval=0.1)
    server.server_close()


if __name__ == "__main__":
    main()
