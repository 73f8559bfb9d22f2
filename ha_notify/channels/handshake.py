"""Can a channel reach its server? A handshake, never a message: the built-in channels' Probe.

SMTP: connect, EHLO, STARTTLS or implicit TLS with certificate verification, and whether a
login mechanism ha-notify speaks is offered; no login, no MAIL FROM. HTTP channels: a TCP
connection and, for https, a verified TLS handshake to the URL's host and port; no request.
Only a URL's scheme, host and port are ever shown: its path is often the token.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union
from urllib.parse import urlsplit

from ha_notify import aio, tls
from ha_notify.plugin import FAIL, OK, WARN, ProbeResult

if TYPE_CHECKING:
    from ha_notify.channels.smtp import EmailChannel


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _untrusted(name: str, where: str, cert: ssl.SSLCertVerificationError) -> ProbeResult:
    detail, _, fix = tls.untrusted(where, cert).partition("; ")
    return ProbeResult(FAIL, detail, fix.replace("ca_file", f"ca_file in [channels.{name}]", 1))


def _unreachable(name: str, where: str, exc: BaseException) -> ProbeResult:
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return ProbeResult(
        FAIL,
        f"{where}: cannot connect: {reason}",
        f"check host and port in [channels.{name}], and that this node may reach {where} "
        "(firewall, DNS)",
    )


def _tls_verdict(tls_on: bool, verify: bool, host: str, detail: str) -> ProbeResult:
    if tls_on and not verify:
        return ProbeResult(
            WARN,
            detail.replace("verified", "NOT verified (tls_verify = false)"),
            "remove tls_verify = false and set ca_file to the server's CA",
        )
    if not tls_on and not _loopback(host):
        return ProbeResult(
            WARN,
            detail + " (plain text: no TLS)",
            'use security = "starttls" or https://: the network can read every alert',
        )
    return ProbeResult(OK, detail)


async def smtp(channel: EmailChannel) -> ProbeResult:
    """EHLO, then STARTTLS or implicit TLS, and a login mechanism we speak: no mail."""
    import aiosmtplib

    from ha_notify.channels.smtp import SMTP, hang_up

    where = f"SMTP {channel.host}:{channel.port}"
    context = tls.context(channel.ca_file, channel.tls_verify)
    client = SMTP(
        hostname=channel.host,
        port=channel.port,
        timeout=channel.timeout,
        local_hostname=channel.helo,
        use_tls=channel.security == "tls",
        start_tls=False,
        tls_context=context,
    )
    try:
        await client.connect()
        await client.ehlo()
        if channel.security == "starttls":
            if not client.supports_extension("starttls"):
                return ProbeResult(
                    FAIL,
                    f"{where} does not offer STARTTLS",
                    'use security = "tls" (port 465), or a server that offers STARTTLS',
                )
            await client.starttls(tls_context=context)
            await client.ehlo()
        if channel.username is not None:
            offered = set(client.supported_auth_methods)
            if not offered & {"plain", "login", "cram-md5"}:
                return ProbeResult(
                    FAIL,
                    f"{where} offers no AUTH PLAIN, LOGIN or CRAM-MD5 "
                    f"(offered: {', '.join(sorted(offered)) or 'none'})",
                    'remove username/password, or use security = "starttls"/"tls"',
                )
    except Exception as exc:
        cert = tls.cert_error(exc)
        if cert is not None:
            return _untrusted(channel.name, where, cert)
        if isinstance(exc, (asyncio.TimeoutError, aiosmtplib.SMTPTimeoutError)):
            return ProbeResult(
                FAIL,
                f"{where} did not answer within {channel.timeout:g}s",
                "check that the server is up and not firewalled (DROP)",
            )
        return _unreachable(channel.name, where, exc)
    finally:
        await hang_up(client)
    secure = channel.security != "none"
    detail = f"{where}: EHLO ok" + (
        f", {channel.security.upper()} handshake verified" if secure else ""
    )
    return _tls_verdict(secure, channel.tls_verify, channel.host, detail)


async def http(
    name: str,
    urls: list[str],
    timeout: float,
    ca_file: Union[str, Path, None],
    verify: bool,
) -> list[ProbeResult]:
    """A TCP connection and, for https, a verified TLS handshake per URL: no request."""
    from ha_notify.channels.web import origin

    found = []
    for url in urls:
        parts = urlsplit(url)
        host = parts.hostname or ""
        where = origin(url)
        use_tls = parts.scheme == "https"
        port = parts.port or (443 if use_tls else 80)
        context: Optional[ssl.SSLContext] = None
        if use_tls:
            context = tls.context(ca_file, verify)
        try:
            connect = asyncio.open_connection(
                host, port, ssl=context, server_hostname=host if use_tls else None
            )
            _, writer = await asyncio.wait_for(connect, timeout)
            aio.close_now(writer.transport)  # only the handshake was the point
        except asyncio.TimeoutError:
            found.append(
                ProbeResult(
                    FAIL,
                    f"{where} did not answer within {timeout:g}s",
                    "check that the server is up and not firewalled",
                )
            )
            continue
        except Exception as exc:
            cert = tls.cert_error(exc)
            found.append(
                _untrusted(name, where, cert)
                if cert is not None
                else _unreachable(name, where, exc)
            )
            continue
        what = "TLS handshake verified" if use_tls else "TCP connection"
        found.append(_tls_verdict(use_tls, verify, host, f"{where}: {what} (nothing sent)"))
    return found
