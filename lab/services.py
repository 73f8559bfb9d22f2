"""The lab's service namespace: three web backends and an SMTP server, in one process.

Started by the lab as ``ip netns exec <svc> python -m lab.services SPEC.json``. Each backend
answers every request with JSON naming itself and the load balancer that connected (the
haproxy node's address), so the lab sees which node served a request. The SMTP server writes
each message to ``<mail_dir>/<time>-<n>.eml`` and a ``.json`` record with the time it arrived
(write, then rename).
Prints ``READY`` once everything listens; stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any


class MailSink:
    """aiosmtpd handler: one JSON file per accepted message."""

    def __init__(self, mail_dir: Path) -> None:
        self.mail_dir = mail_dir
        self._count = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        received = time.time()
        record = {
            "received": received,
            "peer": session.peer[0],
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "data": envelope.content.decode("utf-8", "replace"),
        }
        stem = f"{received:.6f}-{next(self._count)}"
        # The message as received (.eml, opens in any mail reader), then the record the lab
        # reads (.json, renamed last: when it exists, so does the .eml).
        for name, text in ((f"{stem}.eml", record["data"]), (f"{stem}.json", json.dumps(record))):
            tmp = self.mail_dir / f".{name}.tmp"
            tmp.write_text(text)
            os.replace(tmp, self.mail_dir / name)
        return "250 OK"


def backend(name: str, site: str) -> Any:
    """An asyncio connection handler for one backend."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in lines[1:] if line)
        }
        body = json.dumps(
            {
                "backend": name,
                "site": site,
                "host": headers.get("host", ""),
                "path": parts[1] if len(parts) > 1 else "",
                "lb": writer.get_extra_info("peername")[0],
                "client": headers.get("x-forwarded-for", ""),
            }
        ).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        try:
            await writer.drain()
        finally:
            writer.close()

    return handle


async def serve(spec: dict[str, Any]) -> None:
    from aiosmtpd.controller import Controller

    servers = []
    for item in spec["backends"]:
        servers.append(
            await asyncio.start_server(
                backend(item["name"], item["site"]), item["address"], item["port"]
            )
        )
    mail_dir = Path(spec["mail_dir"])
    mail_dir.mkdir(parents=True, exist_ok=True)
    sink = MailSink(mail_dir)
    smtp = Controller(
        sink,
        hostname=spec["smtp"]["address"],
        port=spec["smtp"]["port"],
        server_hostname="smtp.halab.test",  # no getfqdn() lookup
        ready_timeout=10,
    )
    smtp.start()
    controllers = [smtp]
    submission = spec.get("submission")
    if submission is not None:
        controllers.append(_submission(sink, spec["smtp"]["address"], submission))
        controllers[-1].start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("READY", flush=True)
    try:
        await stop.wait()
    finally:
        for controller in controllers:
            controller.stop()
        for server in servers:
            server.close()


def _submission(sink: MailSink, address: str, spec: dict[str, Any]) -> Any:
    """Port 587 as a real relay has it: STARTTLS required, then AUTH with one login."""
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(spec["cert"], spec["key"])
    login = (spec["username"].encode(), spec["password"].encode())

    def authenticate(_server: Any, _session: Any, _envelope: Any, _mech: str, data: Any) -> Any:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == login
        return AuthResult(success=ok)

    return Controller(
        sink,
        hostname=address,
        port=spec["port"],
        server_hostname="smtp.halab.test",
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_require_tls=True,
        ready_timeout=10,
    )


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    asyncio.run(serve(spec))


if __name__ == "__main__":
    main()
