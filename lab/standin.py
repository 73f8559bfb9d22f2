"""The two commands of the deploy checklist that a lab node answers with a stand-in.

    python -m lab.standin systemctl ARGS...    (installed as /usr/local/sbin/systemctl)
    python -m lab.standin editor FILE          (installed as /usr/local/bin/editor)

``systemctl`` hands its arguments to the node's init (lab.init, standing in for systemd).
``editor`` makes the edits the checklist asks of the operator, for the lab's network: the lab
runs on the reference files' own address plan (interface eth0, VIP 192.168.0.130, the
tutorial's backends), so keepalived.conf and haproxy.cfg need no change; config.toml's mail
channel goes to the lab's relay (port 587, STARTTLS with a certificate of the lab's own CA,
the reference config's login) with this node's name in ``from``. Any other file is refused,
so that a new ``editor`` step in the docs fails the checklist run until the lab knows what to
do with it.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.9/3.10
    import tomli as tomllib

from lab import configs
from lab.machine import CONTROL


def systemctl(argv: list[str]) -> int:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(CONTROL)
        except OSError as exc:
            print(f"systemctl (lab stand-in): the node's init is gone: {exc}", file=sys.stderr)
            return 1
        sock.sendall(json.dumps({"argv": argv}).encode() + b"\n")
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    answer = json.loads(data)
    if answer["out"]:
        print(answer["out"], file=sys.stderr if answer["code"] else sys.stdout)
    return int(answer["code"])


def edit_config(path: Path, node: dict[str, Any]) -> None:
    """The mail channel to the lab's relay (port 587, STARTTLS, the reference login), trusting
    the lab's CA, which is copied next to the config as an operator's CA file would be."""
    ca = path.parent / "lab-ca.pem"
    shutil.copyfile(node["ca_file"], ca)
    ca.chmod(0o644)
    data = tomllib.loads(path.read_text())
    for table in data.get("channels", {}).values():
        if table.get("type") == "email":
            table.update(host=configs.SMTP_ADDRESS, port=587, security="starttls", ca_file=str(ca))
            table["from"] = f"keepalived@lb{node['index']}.example.com"
    path.write_text(configs.to_toml(data))


def editor(argv: list[str]) -> int:
    if len(argv) != 1:
        print("editor (lab stand-in): expected one file", file=sys.stderr)
        return 2
    path = Path(argv[0])
    node = json.loads(Path("/run/lab-node.json").read_text())
    if path.name == "config.toml":
        edit_config(path, node)
        print(f"editor (lab stand-in): {path}: mail via the lab's relay {configs.SMTP_ADDRESS}:587")
    elif path.name in ("keepalived.conf", "haproxy.cfg"):
        print(f"editor (lab stand-in): {path}: no change, the lab uses the reference address plan")
    else:
        print(f"editor (lab stand-in): does not know how to edit {path}", file=sys.stderr)
        return 2
    return 0


def main() -> int:
    what, argv = sys.argv[1], sys.argv[2:]
    return systemctl(argv) if what == "systemctl" else editor(argv)


if __name__ == "__main__":
    sys.exit(main())
