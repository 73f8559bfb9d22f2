"""Email through SMTP: one connection for every recipient, multipart text and HTML."""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import email.utils
import logging
import re
import ssl
from collections.abc import Collection, Iterable
from datetime import datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, Optional

import aiosmtplib

from ha_notify import aio, tls
from ha_notify.errors import ChannelError, ChannelTimeoutError, ConfigError, PartialDelivery

if TYPE_CHECKING:
    from ha_notify.config import ChannelConfig
    from ha_notify.event import Event
    from ha_notify.plugin import Context, ProbeResult

log = logging.getLogger(__name__)
SECURITY = ("starttls", "tls", "none")
_ADDRESS = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+$")


def thread_id(cluster: str) -> str:
    """One Message-ID per cluster that every mail refers to, so clients keep one thread."""
    slug = re.sub(r"[^A-Za-z0-9.-]+", "-", cluster).strip("-") or "cluster"
    return f"<thread.{slug}@ha-notify>"


def message_id(event: Event) -> str:
    """Fixed when the event is created, so a retry resends the very same message."""
    domain = re.sub(r"[^A-Za-z0-9.-]+", "-", event.node.fqdn).strip("-.") or "localhost"
    return f"<{event.id}@{domain}>"


QUIT_MARGIN = 0.15  # seconds between a QUIT given up and the run's final cut


class SMTP(aiosmtplib.SMTP):
    """aiosmtplib's client, except that close() really lets go of the socket.

    aiosmtplib closes on QUIT, on errors and on timeouts; over TLS its close() would wait
    for a close_notify that a hung server never sends (see aio.close_now).
    """

    def close(self) -> None:
        transport = self.transport
        super().close()
        aio.close_now(transport)

    async def data(self, *args: Any, **kwargs: Any) -> Any:
        """DATA, the message and its final dot: from here the server may have queued it, and
        a run cut before its answer would send it again (see aio.handed_over)."""
        aio.handed_over()
        return await super().data(*args, **kwargs)


async def hang_up(smtp: aiosmtplib.SMTP, polite: bool = True) -> None:
    """QUIT politely within 1 s (unless cut short), then release the connection.

    After a failed handshake aiosmtplib can report "not connected" while its transport is
    still open: close() is idempotent and always runs. A delivery cancelled by the deadline
    or a signal skips QUIT: the deadline is hard. The last turn lets the socket go before
    the caller's event loop may end.
    """
    # QUIT ends before the run is cut for good: cut during QUIT, a message the server took
    # would be recorded as not sent, and sent again.
    wait = min(1.0, aio.time_left() - QUIT_MARGIN)
    try:
        if polite and smtp.is_connected and wait > 0:
            await asyncio.wait_for(smtp.quit(), wait)
    except Exception:
        pass  # the server is gone or rude: closing below is all that is left to do
    finally:
        smtp.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)


def _refusals(pairs: Iterable[tuple[str, int, str]]) -> tuple[dict[str, str], dict[str, str]]:
    """Refused recipients split into (retry later: 4xx, given up: 5xx), with the reason."""
    retry: dict[str, str] = {}
    dead: dict[str, str] = {}
    for rcpt, code, message in pairs:
        (retry if code < 500 else dead)[rcpt] = f"{code} {message}"
    return retry, dead


class EmailChannel:
    """``type = "email"``: aiosmtplib, STARTTLS required unless told otherwise."""

    partial = True  # send() takes ``skip``: a retry goes only to recipients still waiting

    def __init__(self, config: ChannelConfig, context: Context) -> None:
        t = config.options
        self.name = config.name
        self.renderer = context.renderer
        self.host: str = t.get_str("host")
        self.security: str = t.get_str("security", "starttls", choices=SECURITY)
        default_port = {"starttls": 587, "tls": 465, "none": 25}[self.security]
        self.port: int = t.get_int("port", default_port, minimum=1)
        self.username: Optional[str] = t.get_str("username", None)
        self.password = t.secret("password")
        if self.password is not None and self.username is None:
            raise ConfigError(f"{t.where('username')}: missing; a password needs a username")
        self.sender: str = t.get_str("from")
        self.to: tuple[str, ...] = t.get_list("to")
        for key, addresses in (("from", (self.sender,)), ("to", self.to)):
            for address in addresses:
                if not _ADDRESS.match(address):
                    raise t.error(key, "an email address like ops@example.com", address)
        if not self.to:
            raise t.error("to", "at least one recipient")
        self.timeout: float = t.get_float("timeout", 15.0)
        self.ca_file: Optional[str] = t.get_str("ca_file", None)
        self.tls_verify: bool = t.get_bool("tls_verify", True)
        self.helo: Optional[str] = t.get_str("helo", None)

    def build(self, event: Event) -> EmailMessage:
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["Subject"] = self.renderer.subject(event)
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        # From the event, like the Message-ID: a retry resends the very same message.
        msg["Date"] = email.utils.format_datetime(datetime.fromisoformat(event.timestamp))
        msg["Message-ID"] = message_id(event)
        thread = thread_id(event.cluster)
        msg["In-Reply-To"] = thread
        msg["References"] = thread
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Auto-Response-Suppress"] = "All"
        msg["X-HA-Notify-Event"] = event.id
        msg["X-HA-Notify-State"] = event.state.upper()
        msg.set_content(self.renderer.render("body.txt", event), charset="utf-8")
        msg.add_alternative(self.renderer.render("body.html", event), subtype="html")
        return msg

    async def probe(self) -> list[ProbeResult]:
        """EHLO and the TLS handshake, and that a login we speak is offered: no mail (doctor)."""
        from ha_notify.channels import handshake

        return [await handshake.smtp(self)]

    def preview(self, event: Event) -> str:
        """The message as a person reads it: headers, the text part, then the HTML part."""
        msg = self.build(event)
        head = "\n".join(f"{k}: {v}" for k, v in msg.items() if k != "Content-Type")
        parts = [p.get_content() for p in msg.iter_parts() if isinstance(p, EmailMessage)]
        return f"{head}\n\n{parts[0].rstrip()}\n\n----- text/html -----\n{parts[1].rstrip()}"

    def _client(self) -> SMTP:
        if not self.tls_verify:
            log.warning(
                "channel %s: tls_verify = false: the SMTP server %s is NOT authenticated",
                self.name,
                self.host,
            )
        kwargs: dict[str, Any] = {
            "hostname": self.host,
            "port": self.port,
            "timeout": self.timeout,
            "local_hostname": self.helo,
        }
        if self.security == "none":
            kwargs.update(use_tls=False, start_tls=False)
        else:
            kwargs.update(
                use_tls=self.security == "tls",
                start_tls=self.security == "starttls",
                tls_context=tls.context(self.ca_file, self.tls_verify),
            )
        return SMTP(**kwargs)

    async def send(self, event: Event, skip: Collection[str] = ()) -> None:
        """Mail ``event`` to every recipient but those in ``skip`` (who have it or refused it)."""
        msg = self.build(event)
        recipients = [r for r in self.to if r not in skip]
        if not recipients:
            return
        try:
            await asyncio.wait_for(self._deliver(msg, recipients), self.timeout)
        except (asyncio.TimeoutError, aiosmtplib.SMTPTimeoutError) as exc:
            raise ChannelTimeoutError(
                f"SMTP {self.host}:{self.port} did not answer within {self.timeout:g}s"
            ) from exc

    async def _login(self, smtp: aiosmtplib.SMTP) -> None:
        """One mechanism, the best offered: a wrong password costs one failed login, not three."""
        assert self.username is not None and self.password is not None
        if not smtp.last_ehlo_response:
            await smtp.ehlo()
        offered = smtp.supported_auth_methods
        for mechanism, method in (
            ("plain", smtp.auth_plain),
            ("login", smtp.auth_login),
            ("cram-md5", smtp.auth_crammd5),
        ):
            if mechanism in offered:
                await method(self.username, self.password.reveal())
                return
        raise ChannelError(
            f"SMTP {self.host}:{self.port} offers no AUTH PLAIN, LOGIN or CRAM-MD5 "
            f"(offered: {', '.join(offered) or 'none'}); remove username/password or use "
            'security = "starttls"/"tls" (many servers offer AUTH only over TLS)',
            retryable=False,
        )

    async def _deliver(self, msg: EmailMessage, recipients: list[str]) -> None:
        smtp = self._client()
        polite = True
        try:
            errors, _reply = await self._transact(smtp, msg, recipients)
        except asyncio.CancelledError:
            polite = False
            raise
        finally:
            await hang_up(smtp, polite)
        if errors:
            pairs = [(r, resp.code, resp.message) for r, resp in errors.items()]
            retry, dead = _refusals(pairs)
            sent = tuple(r for r in recipients if r not in errors)
            refused = ", ".join(f"{r} ({why})" for r, why in {**retry, **dead}.items())
            raise PartialDelivery(
                f"SMTP {self.host}:{self.port} accepted {len(sent)} of {len(recipients)} "
                f"recipients; refused: {refused}",
                sent=sent,
                retry=retry,
                dead=dead,
            )

    async def _transact(
        self, smtp: aiosmtplib.SMTP, msg: EmailMessage, recipients: list[str]
    ) -> Any:
        where = f"SMTP {self.host}:{self.port}"
        try:
            await smtp.connect()
            if self.username is not None and self.password is not None:
                await self._login(smtp)
            return await smtp.send_message(msg, sender=self.sender, recipients=recipients)
        except aiosmtplib.SMTPAuthenticationError as exc:
            if exc.code < 500:  # 454 4.7.0: a temporary authentication failure
                raise ChannelError(f"{where}: login refused for now ({exc.code})") from exc
            raise ChannelError(
                f"{where} refused the login of {self.username!r} ({exc.code}); "
                "check username and password",
                retryable=False,
            ) from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            pairs = [(r.recipient, r.code, r.message) for r in exc.recipients]
            retry, dead = _refusals(pairs)
            refused = ", ".join(f"{r} ({why})" for r, why in {**retry, **dead}.items())
            raise PartialDelivery(
                f"{where} refused every recipient: {refused}", retry=retry, dead=dead
            ) from exc
        except ssl.SSLCertVerificationError as exc:
            raise ChannelError(tls.untrusted(where, exc), retryable=False) from exc
        except aiosmtplib.SMTPConnectError as exc:
            cert = tls.cert_error(exc)
            if cert is not None:  # implicit TLS: the handshake is part of connecting
                raise ChannelError(tls.untrusted(where, cert), retryable=False) from exc
            code = getattr(exc, "code", 0)
            if isinstance(code, int) and code >= 500:
                raise ChannelError(
                    f"{where} refused the connection: {exc}", retryable=False
                ) from exc
            raise ChannelError(f"{where}: cannot connect: {exc}") from exc
        except aiosmtplib.SMTPServerDisconnected as exc:
            cert = tls.cert_error(exc)
            if cert is not None:
                raise ChannelError(tls.untrusted(where, cert), retryable=False) from exc
            raise ChannelError(f"{where} closed the connection: {exc}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise ChannelError(
                f"{where} answered {exc.code} {exc.message}", retryable=exc.code < 500
            ) from exc
        except aiosmtplib.SMTPException as exc:
            text = str(exc)
            if "STARTTLS" in text:
                raise ChannelError(
                    f"{where} does not offer STARTTLS; refusing to send in plain text "
                    '(use security = "tls" for port 465, or security = "none" only on a '
                    "trusted network)",
                    retryable=False,
                ) from exc
            cert = tls.cert_error(exc)
            if cert is not None:
                raise ChannelError(tls.untrusted(where, cert), retryable=False) from exc
            raise ChannelError(f"{where}: {text}") from exc
        except OSError as exc:
            cert = tls.cert_error(exc)
            if cert is not None:
                raise ChannelError(tls.untrusted(where, cert), retryable=False) from exc
            raise ChannelError(f"{where}: {exc.strerror or exc}") from exc
