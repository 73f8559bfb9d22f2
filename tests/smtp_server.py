"""A real SMTP server (aiosmtpd) on loopback, with server-side faults chosen per test."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Optional

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.silent import Silent, tcp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    session: int


@dataclass
class Recorder:
    """aiosmtpd handler: records messages; delays and refusals are set per test."""

    delay: float = 0.0
    refuse: set[str] = field(default_factory=set)
    # Scripted answers, used up one per command: "451 4.7.1 greylisted, try later", ...
    rcpt_answers: dict[str, list[str]] = field(default_factory=dict)
    mail_answers: list[str] = field(default_factory=list)
    data_answers: list[str] = field(default_factory=list)
    auth_answers: list[str] = field(default_factory=list)
    data_hang: bool = False  # never answer DATA (a relay that hangs after the message)
    # Keep the message, then hold the answer to DATA until this is set (a slow relay).
    data_gate: Optional[threading.Event] = None
    messages: list[Received] = field(default_factory=list)
    sessions: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def _wait(self) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        await self._wait()
        session.host_name = hostname
        if not getattr(session, "counted", False):
            session.counted = True
            with self.lock:
                self.sessions += 1
        return responses

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        await self._wait()
        if self.mail_answers:
            return self.mail_answers.pop(0)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        await self._wait()
        if address in self.refuse:
            return "550 5.1.1 no such user"
        if self.rcpt_answers.get(address):
            return self.rcpt_answers[address].pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await self._wait()
        if self.data_hang:
            await asyncio.Event().wait()
        if self.data_answers:
            return self.data_answers.pop(0)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        with self.lock:
            self.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), msg, id(session))
            )
        if self.data_gate is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.data_gate.wait)
        return "250 OK queued"

    def by_recipient(self) -> dict[str, list[str]]:
        """Message-IDs each recipient received, in order."""
        got: dict[str, list[str]] = {}
        for r in self.messages:
            for rcpt in r.rcpt_tos:
                got.setdefault(rcpt, []).append(str(r.message["Message-ID"]))
        return got

    def by_message_id(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.messages:
            counts[str(r.message["Message-ID"])] = counts.get(str(r.message["Message-ID"]), 0) + 1
        return counts


class SMTPServer:
    """Controller wrapper: plain, AUTH, STARTTLS or implicit TLS, on 127.0.0.1."""

    def __init__(
        self,
        *,
        starttls: Any = None,  # ssl.SSLContext offering STARTTLS
        implicit_tls: Any = None,  # ssl.SSLContext for TLS from the first byte
        users: Optional[dict[str, str]] = None,
        port: Optional[int] = None,
    ) -> None:
        self.recorder = Recorder()
        self.port = port or free_port()
        kwargs: dict[str, Any] = {}
        if starttls is not None:
            kwargs.update(tls_context=starttls, require_starttls=False)
        if users is not None:

            def authenticator(
                server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
            ) -> AuthResult:
                if self.recorder.auth_answers:
                    answer = self.recorder.auth_answers.pop(0)
                    return AuthResult(success=False, handled=False, message=answer)
                ok = (
                    isinstance(auth_data, LoginPassword)
                    and users.get(auth_data.login.decode()) == auth_data.password.decode()
                )
                return AuthResult(success=ok, handled=False)

            kwargs.update(authenticator=authenticator, auth_require_tls=starttls is not None)
        self.controller = Controller(
            self.recorder,
            hostname="127.0.0.1",
            port=self.port,
            ssl_context=implicit_tls,
            server_hostname="localhost",
            **kwargs,
        )

    @property
    def messages(self) -> list[Received]:
        return self.recorder.messages

    def start(self) -> SMTPServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


class SilentServer(Silent):
    """Accepts TCP connections and never says a word (a hung mail relay)."""

    def __init__(self) -> None:
        super().__init__(tcp())

    def start(self) -> SilentServer:
        return self

    def stop(self) -> None:
        self.close()
