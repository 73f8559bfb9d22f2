"""Would this node be MASTER-fit now: every tracked ``vrrp_script`` run as keepalived runs it.

Each script is run as its user (the block's ``user``, else keepalived's script user) with one
group, in ``/``, with no stdin and a plain PATH, and killed after the block's ``timeout``
(keepalived's default: the ``interval``, itself 1 s by default). A non-zero exit or a
timeout is what keepalived sees as a failing check.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from typing import Any, Optional

from ha_notify.constants import RUN_DIR_ENV
from ha_notify.doctor import Finding, access, fail, ok, warn
from ha_notify.event import clean
from ha_notify.keepalived_conf import Block, KeepalivedConf, ScriptLine, blocks

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_INTERVAL = 1.0
USAGE_HINT = re.compile(r"^Try [`'\"]?\S+ --help")  # GNU tools' last line after an error


def findings(
    conf: Optional[KeepalivedConf], default_user: tuple[str, Optional[str]]
) -> list[Finding]:
    """One line per tracked vrrp_script: exits 0 now as its user, or why this node is not fit."""
    if conf is None:
        return []
    every = blocks(conf)
    tracked = {
        words[0]
        for b in every
        if b.kind in ("vrrp_instance", "vrrp_sync_group")
        for words in b.children.get("track_script", [])
    }
    found = []
    for line in conf.scripts:
        name = line.block.partition(" ")[2]
        if line.keyword != "script" or name not in tracked:
            continue
        block = next((b for b in every if b.kind == "vrrp_script" and b.name == name), None)
        user, group = (line.user, line.group) if line.user else default_user
        found.append(run(line, name, _timeout(block), user, group))
    return found


def _timeout(block: Optional[Block]) -> float:
    for key in ("timeout", "interval"):
        words = block.value(key) if block is not None else None
        try:
            if words and float(words[0]) > 0:
                return float(words[0])
        except ValueError:
            continue
    return DEFAULT_INTERVAL


def run(
    line: ScriptLine, name: str, timeout: float, user_name: str, group: Optional[str]
) -> Finding:
    """Run one script line as ``user_name`` and judge it as keepalived would."""
    check = f"master-fit {name}"
    try:
        user = access.lookup(user_name, group)
    except KeyError:
        return warn(check, f"not run: script user {user_name} does not exist", "see script user")
    try:
        argv = shlex.split(line.command)
    except ValueError as exc:
        return fail(check, f"cannot split {line.command!r}: {exc}", "fix the quotes")
    options: dict[str, Any] = {}
    if os.geteuid() != user.uid:
        if os.geteuid() != 0:
            return warn(
                check, f"not run: only root can run it as {user.name}", "run doctor as root"
            )
        options = {"user": user.uid, "group": user.gid, "extra_groups": [user.gid]}
    env = {"PATH": PATH}  # keepalived's scripts do not see this shell's environment
    if os.environ.get(RUN_DIR_ENV):  # where checks keep their state, when moved
        env[RUN_DIR_ENV] = os.environ[RUN_DIR_ENV]
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd="/",
            env=env,
            start_new_session=True,
            **options,
        )
    except OSError as exc:
        return fail(
            check,
            f"{user.name} cannot run {argv[0]}: {exc.strerror or exc}: keepalived counts the "
            "check as failed, this node is not MASTER-fit",
            f"fix the script line at {line.where}",
        )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return fail(
            check,
            f"{shlex.join(argv)} did not finish within {timeout:g}s as {user.name}: keepalived "
            "counts that as a failure, this node is not MASTER-fit now",
            f"find what hangs, or raise `timeout` in vrrp_script {name}",
        )
    took = time.monotonic() - started
    said = [
        s
        for s in out.decode("utf-8", "replace").splitlines()
        if s.strip() and not USAGE_HINT.match(s)  # the cause, not "Try `pgrep --help' ..."
    ]
    if proc.returncode != 0:
        last = f": {clean(said[-1], 300)}" if said else ""
        return fail(
            check,
            f"{shlex.join(argv)} exits {proc.returncode} as {user.name}{last}: this node is not "
            "MASTER-fit now",
            "fix what it names, or run it by hand as that user to see why",
        )
    return ok(check, f"exits 0 as {user.name} in {took:.2f}s (timeout {timeout:g}s): MASTER-fit")
