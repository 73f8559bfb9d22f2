"""Two network namespaces joined by a veth pair: a keepalived pair without keepalived."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import secrets
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
NET = "192.0.2"  # TEST-NET-1, only ever inside the namespaces made here
VIP = f"{NET}.100"


def sh(*cmd: str, check: bool = True) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")
    return done.stdout


def _enter(ns: str) -> None:
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")
    finally:
        os.close(fd)


class Node:
    """One namespace with interface ``eth0`` and address ``NET.<n>``; runs code inside it."""

    def __init__(self, ns: str, address: str) -> None:
        self.ns = ns
        self.address = address
        self._pool = ThreadPoolExecutor(1, initializer=_enter, initargs=(ns,))
        self.mac = ""

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` in a thread that lives in this namespace."""
        return self._pool.submit(fn, *args, **kwargs).result()

    def ip(self, *args: str, check: bool = True) -> str:
        return sh("ip", "-n", self.ns, *args, check=check)

    def exec(self, *cmd: str, check: bool = True) -> str:
        return sh("ip", "netns", "exec", self.ns, *cmd, check=check)

    def hold(self, address: str = VIP) -> None:
        self.ip("addr", "add", f"{address}/24", "dev", "eth0")

    def release(self, address: str = VIP) -> None:
        self.ip("addr", "del", f"{address}/24", "dev", "eth0")

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class Pair:
    """Nodes ``a`` (NET.1) and ``b`` (NET.2), each with eth0 on one shared link."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.names = [f"hnpair-{tag}-a", f"hnpair-{tag}-b"]
        for ns in self.names:
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        a_ns, b_ns = self.names
        sh("ip", "-n", a_ns, "link", "add", "eth0", "type", "veth", "peer", "eth0", "netns", b_ns)
        self.a = Node(a_ns, f"{NET}.1")
        self.b = Node(b_ns, f"{NET}.2")
        for node in (self.a, self.b):
            node.ip("addr", "add", f"{node.address}/24", "dev", "eth0")
            node.ip("link", "set", "eth0", "up")
            node.mac = node.ip("-br", "link", "show", "eth0").split()[2]

    def close(self) -> None:
        for node in (self.a, self.b):
            node.close()
        for ns in self.names:
            sh("ip", "netns", "del", ns, check=False)
