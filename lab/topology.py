"""The lab's network: a bridge in the service namespace, a veth to each node, and a client.

Everything lives inside the namespaces of one run; the root namespace only gains them.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from lab import configs, netns


def wire(ns: dict[str, str], *, nonlocal_bind: bool = True) -> None:
    """Bridge ``br0`` in ``ns["svc"]`` with the client, backend and SMTP addresses; one veth
    to each node's ``eth0``, addressed, with ``ip_nonlocal_bind`` for the standby's haproxy
    (unless ``nonlocal_bind`` is false: the deploy checklist sets it itself)."""
    svc = ns["svc"]
    netns.run(f"ip -n {svc} link add br0 type bridge".split())
    netns.run(f"ip -n {svc} link set br0 up".split())
    for address in (
        configs.CLIENT_ADDRESS,
        *(b[3] for b in configs.BACKENDS),
        configs.SMTP_ADDRESS,
    ):
        netns.run(f"ip -n {svc} addr add {address}/{configs.PREFIXLEN} dev br0".split())
    for index in (1, 2):
        node, port = ns[f"n{index}"], f"n{index}"
        netns.run(f"ip -n {svc} link add {port} type veth peer name eth0 netns {node}".split())
        netns.run(f"ip -n {svc} link set {port} master br0 up".split())
        address = f"{configs.NODE_ADDRESS[index]}/{configs.PREFIXLEN}"
        netns.run(f"ip -n {node} addr add {address} dev eth0".split())
        netns.run(f"ip -n {node} link set eth0 up".split())
        # See contrib/haproxy/haproxy.cfg: the standby binds the VIP it does not hold.
        if nonlocal_bind:
            netns.run(netns.ns_cmd(node, ["sysctl", "-qw", "net.ipv4.ip_nonlocal_bind=1"]))


def get(
    sockets: netns.SocketFactory, host: str, nodes: dict[str, str], timeout: float = 1.0
) -> Optional[dict[str, Any]]:
    """GET / through the VIP with this Host header, from the client's namespace.

    The backend answers JSON naming itself and the balancer that forwarded the request;
    ``via`` is that balancer's node name. None when nothing answered.
    """
    sock = sockets.tcp()
    try:
        sock.settimeout(timeout)
        sock.connect((configs.VIP, 80))
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        return None
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split()[1])
    except (IndexError, ValueError):
        return None
    try:
        answer: dict[str, Any] = json.loads(body)
    except ValueError:
        answer = {"text": body.decode("utf-8", "replace").strip()}
    answer["status"] = status
    answer["via"] = nodes.get(answer.get("lb", ""), "")
    return answer
