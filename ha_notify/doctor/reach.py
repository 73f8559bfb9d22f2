"""Can each channel reach its server? A handshake, never a message (unless ``--send``).

SMTP: connect, EHLO, STARTTLS or implicit TLS with certificate verification, and whether a
login mechanism ha-notify speaks is offered; no login, no MAIL FROM. HTTP channels: a TCP
connection and, for https, a verified TLS handshake to the URL's host and port; no request.
Only a URL's scheme, host and port are ever shown: its path is often the token.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import urlsplit

from ha_notify import aio, tls
from ha_notify.config import Secret
from ha_notify.doctor import Finding, fail, ok, warn

if TYPE_CHECKING:
    from ha_notify.channels.smtp import EmailChannel
    from ha_notify.doctor.local import Environment

DEFAULT_TIMEOUT = 10.0


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _untrusted(name: str, where: str, cert: ssl.SSLCertVerificationError) -> Finding:
    message = tls.untrusted(where, cert)
    detail, _, fix = message.partition("; ")
    return fail(
        f"channel {name}", detail, fix.replace("ca_file", f"ca_file in [channels.{name}]", 1)
    )


def _unreachable(name: str, where: str, exc: BaseException) -> Finding:
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return fail(
        f"channel {name}",
        f"{where}: cannot connect: {reason}",
        f"check host and port in [channels.{name}], and that this node may reach {where} "
        "(firewall, DNS)",
    )


async def probe_smtp(channel: EmailChannel) -> Finding:
    import aiosmtplib

    from ha_notify.channels.smtp import SMTP, hang_up

    name = f"channel {channel.name}"
    where = f"SMTP {channel.host}:{channel.port}"
    context = tls.context(channel.ca_file, channel.tls_verify)
    smtp = SMTP(
        hostname=channel.host,
        port=channel.port,
        timeout=channel.timeout,
        local_hostname=channel.helo,
        use_tls=channel.security == "tls",
        start_tls=False,
        tls_context=context,
    )
    try:
        await smtp.connect()
        await smtp.ehlo()
        if channel.security == "starttls":
            if not smtp.supports_extension("starttls"):
                return fail(
                    name,
                    f"{where} does not offer STARTTLS",
                    'use security = "tls" (port 465), or a server that offers STARTTLS',
                )
            await smtp.starttls(tls_context=context)
            await smtp.ehlo()
        if channel.username is not None:
            offered = set(smtp.supported_auth_methods)
            if not offered & {"plain", "login", "cram-md5"}:
                return fail(
                    name,
                    f"{where} offers no AUTH PLAIN, LOGIN or CRAM-MD5 "
                    f"(offered: {', '.join(sorted(offered)) or 'none'})",
                    'remove username/password, or use security = "starttls"/"tls"',
                )
    except Exception as exc:
        cert = tls.cert_error(exc)
        if cert is not None:
            return _untrusted(channel.name, where, cert)
        if isinstance(exc, (asyncio.TimeoutError, aiosmtplib.SMTPTimeoutError)):
            return fail(
                name,
                f"{where} did not answer within {channel.timeout:g}s",
                "check that the server is up and not firewalled (DROP)",
            )
        return _unreachable(channel.name, where, exc)
    finally:
        await hang_up(smtp)
    return _tls_verdict(
        name,
        channel.security != "none",
        channel.tls_verify,
        channel.host,
        f"{where}: EHLO ok, {channel.security.upper()} handshake verified"
        if channel.security != "none"
        else f"{where}: EHLO ok",
    )


def _tls_verdict(name: str, tls: bool, verify: bool, host: str, detail: str) -> Finding:
    if tls and not verify:
        return warn(
            name,
            detail.replace("verified", "NOT verified (tls_verify = false)"),
            "remove tls_verify = false and set ca_file to the server's CA",
        )
    if not tls and not _loopback(host):
        return warn(
            name,
            detail + " (plain text: no TLS)",
            'use security = "starttls" or https://: the network can read every alert',
        )
    return ok(name, detail)


def endpoints(channel: Any) -> list[str]:
    """The URLs an HTTP channel posts to (Secrets revealed here, never printed)."""
    found: list[str] = []
    for attr in ("url", "urls", "api_url"):
        value = getattr(channel, attr, None)
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if isinstance(v, Secret):
                v = v.reveal()
            if isinstance(v, str) and v:
                found.append(v)
    return found


async def probe_http(channel: Any) -> list[Finding]:
    from ha_notify.channels.web import origin

    name = f"channel {channel.name}"
    urls = endpoints(channel)
    if not urls:
        return [warn(name, "no URL to probe for this channel type", "use doctor --send")]
    timeout = float(getattr(channel.http, "timeout", DEFAULT_TIMEOUT))
    verify = bool(channel.http.tls_verify)
    found = []
    for url in urls:
        parts = urlsplit(url)
        host = parts.hostname or ""
        where = origin(url)
        use_tls = parts.scheme == "https"
        port = parts.port or (443 if use_tls else 80)
        context: Optional[ssl.SSLContext] = None
        if use_tls:
            context = tls.context(channel.http.ca_file, verify)
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    host, port, ssl=context, server_hostname=host if use_tls else None
                ),
                timeout,
            )
            aio.close_now(writer.transport)  # only the handshake was the point
        except asyncio.TimeoutError:
            found.append(
                fail(
                    name,
                    f"{where} did not answer within {timeout:g}s",
                    "check that the server is up and not firewalled",
                )
            )
            continue
        except Exception as exc:
            cert = tls.cert_error(exc)
            found.append(
                _untrusted(channel.name, where, cert)
                if cert is not None
                else _unreachable(channel.name, where, exc)
            )
            continue
        what = "TLS handshake verified" if use_tls else "TCP connection"
        found.append(_tls_verdict(name, use_tls, verify, host, f"{where}: {what} (nothing sent)"))
    return found


async def _probe(channel: Any) -> list[Finding]:
    from ha_notify.channels.smtp import EmailChannel

    if isinstance(channel, EmailChannel):
        return [await probe_smtp(channel)]
    if hasattr(channel, "http"):
        return await probe_http(channel)
    return [
        warn(
            f"channel {channel.name}",
            "this channel type cannot be probed",
            "use doctor --send to really send a test",
        )
    ]


def channel_findings(env: Environment, *, send: bool) -> list[Finding]:
    """One line per channel (or per URL), and with ``send`` one line per test sent."""
    usable = {n: c for n, c in env.channels.items() if not isinstance(c, Exception)}
    found: list[Finding] = []
    for name in env.channels:
        if name not in usable:
            found.append(
                fail(
                    f"channel {name}",
                    "not checked: its configuration is invalid",
                    "see the config line above",
                )
            )

    async def every() -> list[list[Finding]]:
        return list(await asyncio.gather(*(_probe(c) for c in usable.values())))

    if usable:
        for findings in asyncio.run(every()):
            found += findings
    if send and env.config is not None and usable:
        found += _send(env)
    return found


def _send(env: Environment) -> list[Finding]:
    from ha_notify.notify.engine import Notifier
    from ha_notify.notify.report import SENT

    assert env.config is not None
    found = []
    for r in Notifier(env.config).test(None):
        if r.status == SENT:
            found.append(ok(f"send {r.channel}", "test notification delivered"))
        else:
            fix = f"fix [channels.{r.channel}], then: ha-notify test --channel {r.channel}"
            found.append(fail(f"send {r.channel}", r.why, fix))
    return found
