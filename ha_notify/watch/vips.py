"""The virtual addresses the watcher looks after."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Vip:
    address: str
    interface: Optional[str]
    instance: Optional[str]
