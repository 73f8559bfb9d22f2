"""A real HTTP server on 127.0.0.1 that records requests and answers as each test says.

Per path, a test sets fixed answers (status, body, headers) or a responder function that
sees the request (to verify a signature, say). ``hold(n)`` makes every answer wait until
``n`` requests have arrived, which shows that a client sent them concurrently; ``hang``
answers only when the server stops (for client timeouts).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Optional, Union
from urllib.parse import parse_qs, urlsplit

import pytest

from ha_notify.channels import Channel, Context, build
from ha_notify.config import parse
from ha_notify.event import Event, Node
from ha_notify.notify.render import Renderer

GUARD = 10.0  # seconds a held or hanging answer waits at most: a hang guard, not a limit
Body = Union[bytes, str, dict[str, Any], list[Any]]


@dataclass
class Request:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    arrived: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    """What the server sends back."""

    status: int = 200
    body: Body = b""
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body).encode("utf-8")


Responder = Callable[[Request], Answer]


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (one refusing the certificate) is not a test failure; on
        Python 3.9 the default traceback went to a pytest capture already closed."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class Recorder:
    """The server: ``url(path)``, ``answer(path, ...)``, ``respond(path, fn)``, ``requests``."""

    def __init__(self, tls: Optional[ssl.SSLContext] = None) -> None:
        self.tls = tls
        self.requests: list[Request] = []
        self.answered: list[float] = []  # when each answer started to be written
        self._answers: dict[str, list[Answer]] = {}
        self._responders: dict[str, Responder] = {}
        self._hold = 0
        self.held_in_vain = False  # a held answer gave up waiting for the others
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/hook") -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, *answers: Answer) -> None:
        """Answer ``path`` with these, in turn; the last one repeats."""
        self._answers[path] = list(answers)

    def respond(self, path: str, responder: Responder) -> None:
        self._responders[path] = responder

    def hold(self, count: int) -> None:
        """Send no answer before ``count`` requests have arrived."""
        self._hold = count

    def on(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def start(self) -> Recorder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def _choose(self, request: Request) -> Answer:
        if request.path in self._responders:
            return self._responders[request.path](request)
        answers = self._answers.get(request.path, [Answer(200, b"ok")])
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        request = Request(
            method=handler.command,
            path=parts.path,
            query={k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=handler.rfile.read(length),
            arrived=time.monotonic(),
        )
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()
            if self._hold and not self._cond.wait_for(
                lambda: len(self.requests) >= self._hold or self._stopping.is_set(), GUARD
            ):
                self.held_in_vain = True
        answer = self._choose(request)
        if answer.hang:
            self._stopping.wait(GUARD)
            return
        with self._cond:
            self.answered.append(time.monotonic())
        body = answer.encoded()
        handler.send_response(answer.status)
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                recorder._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture(name="server")
def server_fixture() -> Iterator[Recorder]:
    """A recording HTTP server on 127.0.0.1 for one test (import it to use ``server``)."""
    recorder = Recorder().start()
    yield recorder
    recorder.stop()


NODE = Node("lb1", "lb1.example.com", ("192.0.2.11",), True)


def event(state: str = "master", **changes: Any) -> Event:
    """A typical failover event (override any field)."""
    fields: dict[str, Any] = {
        "state": state,
        "name": "VI_1",
        "cluster": "haproxy-test",
        "node": NODE,
        "previous": "backup",
        "priority": 100,
        "seq": 3,
    }
    fields.update(changes)
    return Event(**fields)


def channel(tmp_path: Path, table: dict[str, Any], language: str = "en") -> Channel:
    """Build one channel from its table as the config loader would (file mode 600)."""
    path = tmp_path / "config.toml"
    path.touch(mode=0o600)
    cfg = parse(
        {
            "general": {"state_dir": str(tmp_path / "state"), "language": language},
            "channels": {"x": table},
        },
        path,
    )
    return build(cfg.channels[0], Context(Renderer(language), cfg.general))


def send(ch: Channel, ev: Optional[Event] = None) -> None:
    """Deliver once, synchronously."""
    asyncio.run(ch.send(ev or event()))
