"""The fleet kit for real: node_exporter per node, Prometheus, Alertmanager and a webhook sink.

Everything runs in one network namespace this harness creates (``halab-<id>-fleet``, on its
own loopback, so fixed ports never clash with another run), with Debian's binaries:

    prometheus-node-exporter  one per node, textfile collector on that node's metrics folder
                              (the folder the node's ``ha-notify watch`` writes metrics_file in)
    prometheus                scrapes every exporter each second, evaluates
                              contrib/prometheus/ha-notify-rules.yml each second
    prometheus-alertmanager   contrib/alertmanager/alertmanager.yml, its webhook URLs pointed
                              at the sink and its group_wait/group_interval cut to seconds
    python -m lab.webhook_sink  records every notification as a JSON file

``for_override`` rewrites every rule's ``for:`` in the copy Prometheus loads (a test cannot wait
the production windows); the contrib files themselves are used as shipped otherwise.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Callable, Optional

from lab import configs, netns
from lab.netns import LabError, Unsupported

RULES = configs.REPO / "contrib" / "prometheus" / "ha-notify-rules.yml"
ALERTMANAGER = configs.REPO / "contrib" / "alertmanager" / "alertmanager.yml"
BINARIES = ("ip", "prometheus", "prometheus-alertmanager", "amtool", "prometheus-node-exporter")
PROMETHEUS_PORT, ALERTMANAGER_PORT, SINK_PORT, EXPORTER_PORT = 9090, 9093, 8080, 9100
PLACEHOLDER = re.compile(r"http://alert-receiver\.invalid/")
TIMINGS = {"group_wait": "1s", "group_interval": "2s"}


def substitute(pattern: str, replacement: str, text: str, what: str) -> str:
    """``re.sub`` that insists on a match: a contrib file that changed shape fails loudly."""
    result, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    if not count:
        raise LabError(f"{what}: nothing matched {pattern!r}")
    return result


def fast_rules(text: str, for_override: Optional[str]) -> str:
    if for_override is None:
        return text
    return substitute(r"^(\s+)for: \S+$", rf"\g<1>for: {for_override}", text, "rules for:")


def lab_alertmanager(text: str, sink: str) -> str:
    """The contrib config with its receivers pointed at ``sink`` and seconds-long grouping."""
    text = PLACEHOLDER.sub(sink + "/", text)
    if sink not in text:
        raise LabError(f"{ALERTMANAGER}: no placeholder receiver URL to point at the sink")
    for key, value in TIMINGS.items():
        text = substitute(rf"^(\s+){key}: \S+$", rf"\g<1>{key}: {value}", text, key)
    return text


class Fleet:
    """Start with ``start()`` (or ``with``); node ``i``'s textfile folder is ``metrics_dir(i)``.

    With no nodes, only Alertmanager and the sink run. ``ns``: run Prometheus, Alertmanager
    and the sink in this existing namespace (left in place at the end) instead of a new one;
    ``exporters``: per node, the namespace and address its node_exporter listens on and the
    folder it reads (default: the fleet's namespace, 127.0.0.1, ``workdir/nodes/NAME``)."""

    def __init__(
        self,
        workdir: Path,
        nodes: list[str],
        *,
        for_override: Optional[str] = None,
        ns: Optional[str] = None,
        exporters: Optional[list[tuple[str, str, Path]]] = None,
    ) -> None:
        self.rid = secrets.token_hex(3)
        self.own_ns = ns is None
        self.ns = ns or f"{netns.PREFIX}{self.rid}-fleet"
        self.exporters = exporters or [
            (self.ns, "127.0.0.1", workdir / "nodes" / name) for name in nodes
        ]
        self.workdir = workdir
        self.nodes = nodes
        self.for_override = for_override
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []
        self._pool: Optional[ThreadPoolExecutor] = None
        self._created = False

    # lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> Fleet:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if os.geteuid() != 0:
            raise Unsupported("the fleet lab needs root (a network namespace)")
        for tool in BINARIES:
            if shutil.which(tool) is None:
                raise Unsupported(f"{tool} is not installed (scripts/bootstrap.sh installs it)")
        if self.own_ns:
            netns.register(self.rid)
            netns.sweep()
            netns.create_namespace(self.ns)
            self._created = True
        self._pool = ThreadPoolExecutor(1, initializer=netns._enter, initargs=(self.ns,))
        self._write_configs()
        for index, name in enumerate(self.nodes):
            self.metrics_dir(index).mkdir(parents=True, exist_ok=True)
            self._spawn(
                f"node-exporter-{name}",
                "prometheus-node-exporter",
                f"--web.listen-address={self.target(index)}",
                "--collector.disable-defaults",
                "--collector.textfile",
                f"--collector.textfile.directory={self.metrics_dir(index)}",
                ns=self.exporters[index][0],
            )
        self._spawn(
            "sink", sys.executable, "-m", "lab.webhook_sink", str(self.sink_dir),
            "127.0.0.1", str(SINK_PORT),
        )  # fmt: skip
        self._spawn(
            "alertmanager",
            "prometheus-alertmanager",
            f"--config.file={self.workdir / 'alertmanager.yml'}",
            f"--storage.path={self.workdir / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{ALERTMANAGER_PORT}",
            "--cluster.listen-address=",  # no gossip port: a single, private Alertmanager
        )
        if not self.nodes:  # Alertmanager alone (routing and inhibition tests)
            self.wait("Alertmanager up", lambda: self.get(ALERTMANAGER_PORT, "/api/v2/status"), 60)
            return
        self._spawn(
            "prometheus",
            "prometheus",
            f"--config.file={self.workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.workdir / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}",
        )
        self.wait("every exporter scraped", self._all_up, 60)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self._logs:
            log.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False)
        if self._created:
            netns.delete_namespace(self.ns)
        if self.own_ns:
            netns.unregister(self.rid)

    # what tests use -----------------------------------------------------------------------

    def target(self, index: int) -> str:
        """Where node ``index``'s node_exporter listens (``address:port``)."""
        return f"{self.exporters[index][1]}:{EXPORTER_PORT + index}"

    def metrics_dir(self, index: int) -> Path:
        return self.exporters[index][2]

    @property
    def sink_dir(self) -> Path:
        return self.workdir / "notifications"

    def notifications(self) -> list[dict[str, Any]]:
        """What Alertmanager sent the webhook, oldest first: ``{received, path, body}``."""
        files = sorted(self.sink_dir.glob("*.json")) if self.sink_dir.is_dir() else []
        return [json.loads(f.read_text()) for f in files]

    def amtool(self, *args: str) -> str:
        """Run ``amtool`` against this Alertmanager; its stdout."""
        url = f"--alertmanager.url=http://127.0.0.1:{ALERTMANAGER_PORT}/"
        return netns.run(netns.ns_cmd(self.ns, ["amtool", url, *args]))

    def inside(self, fn: Callable[[], Any]) -> Any:
        """Call ``fn`` in a thread inside the namespace (its sockets reach the components)."""
        assert self._pool is not None
        return self._pool.submit(fn).result()

    def get(self, port: int, path: str) -> Any:
        """GET JSON from a component inside the namespace."""
        url = f"http://127.0.0.1:{port}{path}"

        def fetch() -> Any:
            with urllib.request.urlopen(url, timeout=10) as reply:
                return json.load(reply)

        return self.inside(fetch)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant PromQL query's result vector."""
        from urllib.parse import quote

        answer = self.get(PROMETHEUS_PORT, f"/api/v1/query?query={quote(expr)}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def wait(self, what: str, cond: Callable[[], Any], timeout: float) -> Any:
        """Poll ``cond`` until it is true; LabError (with the components' state) if not."""
        deadline = time.monotonic() + timeout
        while True:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    log = (self.workdir / f"{name}.log").read_text(errors="replace")
                    raise LabError(f"{name} exited {proc.returncode}: {log[-2000:]}")
            try:
                value = cond()
            except OSError:
                value = None  # not listening yet
            if value:
                return value
            if time.monotonic() > deadline:
                raise LabError(f"{what}: not within {timeout:g}s (logs in {self.workdir})")
            time.sleep(0.2)

    # internals ----------------------------------------------------------------------------

    def _all_up(self) -> bool:
        up = self.query('up{job="ha-notify-nodes"} == 1')
        return len(up) == len(self.nodes)

    def _write_configs(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        rules = self.workdir / "ha-notify-rules.yml"
        rules.write_text(fast_rules(RULES.read_text(), self.for_override))
        sink = f"http://127.0.0.1:{SINK_PORT}"
        (self.workdir / "alertmanager.yml").write_text(
            lab_alertmanager(ALERTMANAGER.read_text(), sink)
        )
        prometheus = {  # JSON is YAML
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "alerting": {
                "alertmanagers": [
                    {"static_configs": [{"targets": [f"127.0.0.1:{ALERTMANAGER_PORT}"]}]}
                ]
            },
            "scrape_configs": [
                {
                    "job_name": "ha-notify-nodes",
                    "static_configs": [
                        {"targets": [self.target(i) for i in range(len(self.nodes))]}
                    ],
                }
            ],
        }
        (self.workdir / "prometheus.yml").write_text(json.dumps(prometheus, indent=2))

    def _spawn(self, name: str, *cmd: str, ns: Optional[str] = None) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        self._logs.append(log)
        self.procs[name] = subprocess.Popen(
            netns.ns_cmd(ns or self.ns, list(cmd)),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=configs.REPO,
            env=dict(os.environ, PYTHONPATH=str(configs.REPO)),
            preexec_fn=netns.die_with_parent,
        )
