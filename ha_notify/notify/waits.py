"""Cross-process memory of "not before": a channel that said "rate limited, wait" is not
called again before then by any process on the node (notify, flush, FIFO reader, watcher).

One small file per channel under ``state_dir/spool/waits``: ``{"until": ts, "reason": ...}``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ha_notify.fsutil import atomic_write, make_dirs, read_text

log = logging.getLogger(__name__)
MAX_WAIT = 3600.0  # a server's hint is believed up to an hour


@dataclass(frozen=True)
class Wait:
    """A channel asked not to be called before ``until`` (epoch seconds)."""

    until: float
    reason: str


class Waits:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, channel: str) -> Path:
        return self.folder / f"{hashlib.sha1(channel.encode()).hexdigest()[:16]}.json"

    def get(self, channel: str, now: Optional[float] = None) -> Optional[Wait]:
        """The wait still running for ``channel``, if any (a damaged file counts as none)."""
        try:
            data = json.loads(read_text(self._path(channel)))
            wait = Wait(float(data["until"]), str(data.get("reason", "")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            log.error("channel %s: wait file unreadable (%s); ignored", channel, exc)
            with contextlib.suppress(OSError):
                os.unlink(self._path(channel))
            return None
        now = time.time() if now is None else now
        return wait if wait.until > now else None

    def set(self, channel: str, seconds: float, reason: str) -> float:
        """Hold ``channel`` for ``seconds`` (never shortening a longer wait); returns until."""
        until = time.time() + min(max(seconds, 0.0), MAX_WAIT)
        current = self.get(channel)
        if current is not None and current.until >= until:
            return current.until
        try:
            make_dirs(self.folder)
            record = {"channel": channel, "until": until, "reason": reason}
            atomic_write(self._path(channel), json.dumps(record))
        except OSError as exc:
            log.error("channel %s: cannot record its wait: %s", channel, exc)
        return until
