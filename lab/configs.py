"""The lab's configs, made from the shipped ones in ``contrib/``.

haproxy.cfg and keepalived.conf are copied with *paths* rewritten (sockets, pidfiles, the
config path that track_process matches, the ha-notify executable) and nothing else: the lab
runs on the contrib address plan (192.168.0.0/24) inside its own namespaces, with the
contrib timings. Every rewrite must match, so a change in contrib that the lab no longer
understands fails loudly instead of testing something else. ha-notify's config is the contrib
example with its mail channel pointed at the lab's SMTP server (no TLS, no login) and every
other channel dropped: the lab sends nothing outside its namespaces.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from lab.netns import LabError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.9/3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
CONTRIB = REPO / "contrib"
HAPROXY_CFG = CONTRIB / "haproxy" / "haproxy.cfg"
KEEPALIVED_CFG = {
    1: CONTRIB / "keepalived" / "keepalived-node1.conf",
    2: CONTRIB / "keepalived" / "keepalived-node2.conf",
}
KEEPALIVED_WATCH_CFG = {
    1: CONTRIB / "keepalived" / "keepalived-node1-watch.conf",
    2: CONTRIB / "keepalived" / "keepalived-node2-watch.conf",
}
HA_NOTIFY_CFG = CONTRIB / "ha-notify" / "config.toml"

# The contrib address plan, used as is inside the lab's namespaces.
NODE_ADDRESS = {1: "192.168.0.128", 2: "192.168.0.129"}
VIP = "192.168.0.130"
BACKENDS = (
    ("webapp1", "www", "www.example.com", "192.168.0.20"),
    ("webapp2", "static", "static.example.com", "192.168.0.21"),
    ("webapp3", "video", "video.example.com", "192.168.0.22"),
)
SMTP_ADDRESS = "192.168.0.25"
CLIENT_ADDRESS = "192.168.0.10"
PREFIXLEN = 24
INSTANCE = "HAProxy_HA"


def rewrite(text: str, replacements: dict[str, str], source: Path) -> str:
    """Replace each key by its value; every key must occur in ``text``."""
    for old, new in replacements.items():
        if old not in text:
            raise LabError(f"{source}: expected {old!r} in the contrib file; the lab needs it")
        text = text.replace(old, new)
    return text


def must_contain(text: str, needles: tuple[str, ...], source: Path) -> None:
    for needle in needles:
        if needle not in text:
            raise LabError(f"{source}: expected {needle!r}; the lab's address plan relies on it")


def haproxy_cfg(node_dir: Path) -> str:
    text = HAPROXY_CFG.read_text()
    must_contain(text, (f"bind {VIP}:80", *(f" {b[3]}:80" for b in BACKENDS)), HAPROXY_CFG)
    return rewrite(
        text,
        {
            "/run/haproxy/admin.sock": str(node_dir / "run" / "admin.sock"),
            "/run/haproxy/check.sock": str(node_dir / "run" / "check.sock"),
        },
        HAPROXY_CFG,
    )


def interpreter(exe: Path) -> str:
    """The ``#!`` interpreter of a console script: what keepalived sees as its argv[0]."""
    with exe.open("rb") as handle:
        first = handle.readline(512).decode("utf-8", "replace")
    words = first[2:].split() if first.startswith("#!") else []
    if len(words) != 1:
        raise LabError(f"{exe}: expected a `#!/path/to/python` first line, got {first.strip()!r}")
    return words[0]


def track_file(node_dir: Path) -> Path:
    return node_dir / "run" / "track" / "haproxy"


def keepalived_conf(
    node: int, node_dir: Path, ha_notify: Path, haproxy_bin: str, *, watch: bool = False
) -> str:
    source = (KEEPALIVED_WATCH_CFG if watch else KEEPALIVED_CFG)[node]
    text = source.read_text()
    must_contain(
        text, (f"{VIP}/{PREFIXLEN} dev eth0", "interface eth0", f"vrrp_instance {INSTANCE}"), source
    )
    paths: dict[str, str] = {}
    if watch:
        # The watcher's command line as keepalived's track_process sees it (both lab nodes
        # share one kernel's process list: the config path tells their watchers apart).
        paths["/opt/ha-notify/bin/python3 /opt/ha-notify/bin/ha-notify"] = (
            f"{interpreter(ha_notify)} {ha_notify}"
        )
        paths["/run/ha-notify/track/haproxy"] = str(track_file(node_dir))
    else:
        paths["/run/haproxy.pid"] = str(node_dir / "haproxy.pid")
        paths["/run/haproxy/check.sock"] = str(node_dir / "run" / "check.sock")
    paths["/opt/ha-notify/bin/ha-notify"] = str(ha_notify)
    paths["/etc/ha-notify/config.toml"] = str(node_dir / "ha-notify" / "config.toml")
    return rewrite(text, paths, source)


def ha_notify_config(node: int, node_dir: Path) -> dict[str, Any]:
    data = tomllib.loads(HA_NOTIFY_CFG.read_text())
    general = dict(data["general"])
    general["state_dir"] = str(node_dir / "ha-notify" / "state")
    mails = {k: v for k, v in data.get("channels", {}).items() if v.get("type") == "email"}
    if not mails:
        raise LabError(f"{HA_NOTIFY_CFG}: expected an email channel for the lab to receive")
    channels = {}
    for name, table in mails.items():
        table = {
            k: v
            for k, v in table.items()
            if k not in ("username", "password", "password_file", "ca_file")
        }
        table.update(
            host=SMTP_ADDRESS,
            port=25,
            security="none",
            **{"from": f"keepalived@lb{node}.example.com"},
        )
        channels[name] = table
    result: dict[str, Any] = {"general": general, "channels": channels}
    haproxy = data.get("checks", {}).get("haproxy")
    if haproxy is not None:
        haproxy = dict(haproxy)
        for key, path in (
            ("pidfile", node_dir / "haproxy.pid"),
            ("socket", node_dir / "run" / "check.sock"),
            ("haproxy_config", node_dir / "haproxy.cfg"),
        ):
            if key in haproxy:
                haproxy[key] = str(path)
        result["checks"] = {"haproxy": haproxy}
    watch = data.get("watch")
    if watch is not None:
        watch = dict(watch)
        watch["track_file"] = str(track_file(node_dir))
        watch["metrics_file"] = str(node_dir / "metrics" / "ha-notify.prom")
        result["watch"] = watch
    return result


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise LabError(f"cannot write {value!r} as TOML")


def to_toml(data: dict[str, Any]) -> str:
    """Just enough TOML for ha-notify's config: [general] and [channels.NAME] tables."""
    lines: list[str] = []

    def table(name: str, body: dict[str, Any]) -> None:
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {_value(v)}" for k, v in body.items() if not isinstance(v, dict))
        lines.append("")
        for key, sub in body.items():
            if isinstance(sub, dict):
                table(f"{name}.{key}", sub)

    for name, body in data.items():
        if any(not isinstance(v, dict) for v in body.values()):
            table(name, body)
        else:
            for key, sub in body.items():
                table(f"{name}.{key}", sub)
    return "\n".join(lines)
