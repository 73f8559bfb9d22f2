"""Quarantine: damaged or foreign files moved aside, each with its reason, and counted.

A file that cannot be a spool entry (unparseable, wrong shape, unreadable, a stranger's name)
must neither block other deliveries nor vanish: it goes to ``spool/quarantine/`` next to a
``.why`` file that says why, and ``status`` and ``flush`` list it until a person acts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ha_notify.fsutil import atomic_write, make_dirs

log = logging.getLogger(__name__)
WHY = ".why"


@dataclass(frozen=True)
class Quarantined:
    """One file set aside: where it is now and why."""

    path: Path
    reason: str


class Quarantine:
    """The ``quarantine/`` folder of one spool."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def put(self, source: Path, reason: str) -> None:
        """Move ``source`` here with its reason, loudly; if it cannot move, say so."""
        target = self.folder / f"{int(time.time())}-{source.parent.name}-{source.name}"
        try:
            make_dirs(self.folder)
            os.replace(source, target)
            atomic_write(target.with_name(target.name + WHY), reason + "\n")
        except FileNotFoundError:
            return  # another process moved it first
        except OSError as exc:
            log.error("cannot quarantine %s (%s): %s", source, reason, exc)
            return
        log.error(
            "QUARANTINED %s: %s; moved to %s (fix or delete it; `ha-notify status` lists it)",
            source,
            reason,
            target,
        )

    def list(self) -> list[Quarantined]:
        """Every quarantined file with its reason, oldest first."""
        try:
            names = sorted(os.listdir(self.folder))
        except FileNotFoundError:
            return []
        except OSError as exc:
            return [Quarantined(self.folder, f"cannot read the quarantine: {exc}")]
        found = []
        for name in names:
            if name.endswith(WHY) or name.startswith(".tmp-"):
                continue
            reason = "(reason not recorded)"
            with contextlib.suppress(OSError):
                reason = (self.folder / (name + WHY)).read_text(encoding="utf-8").strip()
            found.append(Quarantined(self.folder / name, reason))
        return found
