"""Small file helpers of the check hot path: write atomically, drop a leftover, make the run dir.

Shared by the config cache (``checks.settings``) and the last results (``checks.state``).
Like the rest of ``checks/``, this imports nothing the interpreter has not already loaded.
"""

from __future__ import annotations

import os


def ensure_dir(path: str) -> None:
    """Create the run directory (mode 0755) if it is missing; raises OSError."""
    if not os.path.isdir(path):
        os.mkdir(path, 0o755)


def write_replace(path: str, data: bytes, mode: int) -> bool:
    """Write ``data`` to a new temporary file and rename it over ``path``; False on OSError.

    The parent directory is created if it is missing. Readers see the old file or the new
    one, never half of it; a temporary file left by a failure is removed.
    """
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        ensure_dir(os.path.dirname(path))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        discard(tmp)
        return False
    return True


def discard(path: str) -> None:
    """Remove a leftover temporary file, if there is one."""
    import contextlib  # only on this error path

    with contextlib.suppress(OSError):
        os.unlink(path)
