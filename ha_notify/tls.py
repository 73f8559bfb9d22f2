"""TLS shared by the SMTP and HTTP channels and doctor: one trust store, one message."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Optional, Union

UNTRUSTED_FIX = (
    'set ca_file = "/path/to/ca.pem" to the CA that signed it, or fix the server\'s certificate'
)


def context(ca_file: Union[str, Path, None], verify: bool = True) -> ssl.SSLContext:
    """The system's CAs and certifi's, or exactly the private CA named by ``ca_file``."""
    if ca_file is not None:
        ctx = ssl.create_default_context(cafile=str(ca_file))
    else:
        ctx = ssl.create_default_context()
        try:
            import certifi

            ctx.load_verify_locations(cafile=certifi.where())
        except ImportError:  # pragma: no cover - httpx depends on certifi
            pass
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def cert_error(exc: BaseException) -> Optional[ssl.SSLCertVerificationError]:
    """The certificate failure behind ``exc`` (it may be wrapped several times), if any."""
    seen: Optional[BaseException] = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def untrusted(where: str, cert: ssl.SSLCertVerificationError) -> str:
    """``HOST:PORT: TLS certificate not trusted (why); set ca_file ...``."""
    return f"{where}: TLS certificate not trusted ({cert.verify_message}); {UNTRUSTED_FIX}"
