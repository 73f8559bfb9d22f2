"""HTTP plumbing shared by the webhook-style channels: one POST, its errors mapped for the spool.

Timeouts, TLS verification (on by default; ``ca_file`` for a private CA) and the mapping of
answers to ChannelError live here, once: transport errors, timeouts, 408, 429 and 5xx are
retried later; other 4xx, redirects and untrusted certificates are not, and say what to fix.
Messages name the host only: a webhook URL's path or query often is the token.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Union
from urllib.parse import urlsplit

import httpx

from ha_notify import __version__, aio, tls
from ha_notify.errors import ChannelError, ChannelTimeoutError, ConfigError
from ha_notify.event import clean

if TYPE_CHECKING:
    from ha_notify.config import ChannelConfig, Secret, Table
    from ha_notify.event import Event
    from ha_notify.plugin import Context, ProbeResult

log = logging.getLogger(__name__)
USER_AGENT = f"ha-notify/{__version__}"
_HINTS = {
    400: "the service rejected the message",
    401: "check the token, secret or credentials",
    403: "check the token, secret or credentials, and the service's IP allow-list",
    404: "check url: the webhook may have been deleted",
    410: "check url: the webhook was deleted or disabled",
    413: "the message is too large for the service",
}


def pretty(payload: Any) -> str:
    """The payload as ``preview`` shows it: the same JSON as sent, indented."""
    return json.dumps(payload, indent=2, ensure_ascii=False)


def compact(payload: Any) -> bytes:
    """The exact bytes sent (and signed)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def origin(url: str) -> str:
    """``scheme://host[:port]``: all of a URL that an error or a log line may show."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def check_url(t: Table, key: str, url: str) -> str:
    """An http(s) URL with a host; the error never echoes it (it may hold a token)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{t.where(key)}: expected an http:// or https:// URL with a host")
    return url


def url_option(t: Table, key: str = "url") -> Secret:
    """A webhook URL that carries the token: ``url``, ``url_file`` or ``url_env``.

    It is a secret: inline in the config, the config file must be private (chmod 600).
    """
    secret = t.secret(key, required=True)
    assert secret is not None  # required=True
    check_url(t, key, secret.reveal())
    return secret


def retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def snippet(text: str, limit: int = 200) -> str:
    return clean(text, limit) or "(empty body)"


@dataclass(frozen=True)
class HttpReply:
    """What a server answered; ``where`` names the host for messages."""

    where: str
    status: int
    headers: Mapping[str, str]
    text: str

    def json(self) -> Any:
        try:
            return json.loads(self.text)
        except ValueError:
            return None

    def field(self, *keys: str) -> Any:
        """The first of ``keys`` in a JSON object body, or None."""
        data = self.json()
        if isinstance(data, dict):
            for key in keys:
                if key in data:
                    return data[key]
        return None

    def check(self, detail: str = "", hint_after: Optional[float] = None) -> None:
        """Raise ChannelError unless the status is 2xx; ``detail`` is the service's reason."""
        status = self.status
        if 200 <= status < 300:
            return
        said = f"{self.where} answered HTTP {status}: {snippet(detail or self.text)}"
        if status == 429:
            wait = (
                hint_after
                if hint_after is not None
                else retry_after(self.headers.get("retry-after"))
            )
            raise ChannelError(f"{said}; rate limited, retrying later", retry_after=wait)
        if status >= 500 or status == 408:
            raise ChannelError(said, retry_after=retry_after(self.headers.get("retry-after")))
        if 300 <= status < 400:
            location = self.headers.get("location", "")
            target = origin(location) if urlsplit(location).hostname else "another path"
            raise ChannelError(
                f"{self.where} redirects (HTTP {status}) to {target}; set url to the final address",
                retryable=False,
            )
        hint = _HINTS.get(status, "check the channel's settings")
        raise ChannelError(f"{said}; {hint}", retryable=False)

    def body_code(
        self,
        rate_limited: tuple[int, ...],
        fatal: Mapping[int, str],
        *,
        code: tuple[str, ...] = ("errcode",),
        message: tuple[str, ...] = ("errmsg",),
        wait: float = 60.0,
    ) -> None:
        """Judge a service's error code in a JSON body (0 is success; HTTP 200 is not enough).

        ``rate_limited`` codes retry later; ``fatal`` codes map to what to fix and are not
        retried; any other code is retried unless the HTTP status is a client error. A body
        without a code is judged by its HTTP status.
        """
        value = self.field(*code)
        if value == 0 or not isinstance(value, int):
            self.check()
            if value == 0:
                return
            raise ChannelError(f"{self.where} answered without an error code: {snippet(self.text)}")
        said = f"{self.where} answered error {value}: {snippet(str(self.field(*message) or ''))}"
        if value in rate_limited:
            hint = retry_after(self.headers.get("retry-after"))
            raise ChannelError(
                f"{said}; rate limited, retrying later", retry_after=wait if hint is None else hint
            )
        if value in fatal:
            raise ChannelError(f"{said}; {fatal[value]}", retryable=False)
        client_error = 400 <= self.status < 500 and self.status not in (408, 429)
        raise ChannelError(said, retryable=not client_error)


class Http:
    """One channel's HTTP settings (``timeout``, ``ca_file``, ``tls_verify``) and its POST."""

    def __init__(self, t: Table, name: str) -> None:
        self.name = name
        self.timeout: float = t.get_float("timeout", 10.0)
        self.ca_file = t.get_path("ca_file", None)
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ConfigError(f"{t.where('ca_file')}: {self.ca_file} is not a readable file")
        self.tls_verify: bool = t.get_bool("tls_verify", True)
        self._context: Optional[ssl.SSLContext] = None

    def _verify(self) -> Union[ssl.SSLContext, bool]:
        if not self.tls_verify:
            return False
        if self._context is None:
            self._context = tls.context(self.ca_file)
        return self._context

    async def post(
        self, url: str, payload: Any, headers: Optional[Mapping[str, str]] = None
    ) -> HttpReply:
        """POST ``payload`` as JSON (or exact bytes); transport failures become ChannelError."""
        body = payload if isinstance(payload, bytes) else compact(payload)
        where = origin(url)
        if not self.tls_verify and url.startswith("https:"):
            log.warning("channel %s: tls_verify = false: %s is NOT authenticated", self.name, where)
        sent = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
        sent.update(headers or {})
        try:
            return await asyncio.wait_for(self._post(url, body, sent, where), self.timeout)
        except (asyncio.TimeoutError, httpx.TimeoutException) as exc:
            raise ChannelTimeoutError(f"{where} did not answer within {self.timeout:g}s") from exc
        except (httpx.InvalidURL, httpx.LocalProtocolError):
            # Never quote these: their text can hold the URL's token or a header's secret.
            raise ChannelError(
                f"{where}: the request cannot be formed: the URL, a header or a token holds a "
                "character that HTTP does not allow; check url, token, secret and headers",
                retryable=False,
            ) from None
        except httpx.TransportError as exc:
            cert = tls.cert_error(exc)
            if cert is not None:
                raise ChannelError(tls.untrusted(where, cert), retryable=False) from exc
            reason = str(exc) or type(exc).__name__
            raise ChannelError(f"{where}: cannot connect or send: {reason}") from exc

    async def _post(self, url: str, body: bytes, headers: dict[str, str], where: str) -> HttpReply:
        async with httpx.AsyncClient(verify=self._verify(), timeout=self.timeout) as client:
            extensions = {"trace": _trace}
            response = await client.post(url, content=body, headers=headers, extensions=extensions)
        return HttpReply(where, response.status_code, response.headers, response.text)


# httpcore's trace events after which the server has the whole request: from there it may
# act on it, and a run cut before the answer would post it again (see aio.handed_over).
BODY_SENT = ("http11.send_request_body.complete", "http2.send_request_body.complete")


async def _trace(event: str, info: Mapping[str, Any]) -> None:
    del info
    if event in BODY_SENT:
        aio.handed_over()


class Auth:
    """Optional credentials for endpoints you run: ``username`` + ``password``, or ``token``."""

    def __init__(self, t: Table) -> None:
        self.username: Optional[str] = t.get_str("username", None)
        self.password = t.secret("password")
        self.token = t.secret("token")
        if (self.username is None) != (self.password is None):
            raise ConfigError(f"{t.where('username')}: set both username and password, or neither")
        if self.token is not None and self.password is not None:
            raise ConfigError(f"{t.where('token')}: set either token or username/password")

    def headers(self) -> dict[str, str]:
        if self.token is not None:
            return {"Authorization": f"Bearer {self.token.reveal()}"}
        if self.username is not None and self.password is not None:
            pair = f"{self.username}:{self.password.reveal()}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
        return {}


class HttpChannel:
    """What every HTTP channel shares: name, renderer, HTTP settings, ``preview``."""

    def __init__(self, config: ChannelConfig, context: Context) -> None:
        self.name = config.name
        self.renderer = context.renderer
        self.http = Http(config.options, config.name)

    def payload(self, event: Event) -> Any:
        raise NotImplementedError

    def preview(self, event: Event) -> str:
        """The exact payload ``send`` would POST (pretty-printed)."""
        return pretty(self.payload(event))

    def targets(self) -> list[str]:
        """The URLs ``send`` posts to (secrets revealed: never print them, only origin())."""
        raise NotImplementedError

    async def probe(self) -> list[ProbeResult]:
        """A TCP connection and TLS handshake to each target: no request (doctor)."""
        from ha_notify.channels import handshake

        h = self.http
        return await handshake.http(self.name, self.targets(), h.timeout, h.ca_file, h.tls_verify)
