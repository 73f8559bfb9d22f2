"""Prometheus Alertmanager (API v2): FAULT and STOP fire an alert, a healthy state resolves it.

One alert per (cluster, instance, node, state): labels ``alertname`` (option, default
``HAProxyKeepalivedState``), ``cluster``, ``vrrp_instance`` (the VRRP instance or group;
also as ``instance``, as before), ``node``, ``state`` (``fault`` or ``stop``), ``severity``
(critical, warning) and any ``labels`` you add. FAULT and STOP fire with ``endsAt`` = event
time + ``resolve_after`` (7 days: ha-notify sends once, it does not re-send like Prometheus).
MASTER, BACKUP and DELETED resolve both (``endsAt`` = the event's time). A test fires
``state="test"``, ``severity="info"`` for five minutes.

Pair alerts from the watcher fire one alert per (node, kind, VIP): ``state`` is the kind
(``split_brain``, ``unserved``, ``not_serving``), label ``vip`` the address, ``severity``
critical, ``startsAt`` when the episode was first seen; the closing message (``resolved``)
sends the same labels with ``endsAt`` = its time, so Alertmanager resolves it.

Every URL in ``urls`` gets the POST. Alertmanager peers do not share alerts, so each should
get it, but one peer that accepted is enough to notify: by default the delivery succeeds when
at least one accepted (the others are logged); ``require_all = true`` retries until all did
(re-posting an alert is harmless: its labels identify it).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ha_notify.channels.markup import plain
from ha_notify.channels.web import Auth, HttpChannel, check_url
from ha_notify.errors import ChannelError, ChannelTimeoutError

if TYPE_CHECKING:
    from ha_notify.config import ChannelConfig
    from ha_notify.event import Event
    from ha_notify.plugin import Context

log = logging.getLogger(__name__)
PATH = "/api/v2/alerts"
FIRING = {"fault": "critical", "stop": "warning"}
TEST_FOR = timedelta(minutes=5)


def endpoint(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith(PATH) else url + PATH


class AlertmanagerChannel(HttpChannel):
    """``type = "alertmanager"``: success is a 2xx from one URL (or all: ``require_all``)."""

    def __init__(self, config: ChannelConfig, context: Context) -> None:
        super().__init__(config, context)
        t = config.options
        self.urls = tuple(endpoint(check_url(t, "urls", u)) for u in t.get_list("urls"))
        if not self.urls:
            raise t.error("urls", "at least one Alertmanager URL")
        self.alertname: str = t.get_str("alertname", "HAProxyKeepalivedState")
        self.labels: dict[str, Any] = t.table("labels")
        if not all(isinstance(v, str) for v in self.labels.values()):
            raise t.error("labels", 'a table of strings, e.g. { team = "ops" }')
        self.resolve_after = timedelta(seconds=t.get_float("resolve_after", 7 * 86400.0))
        self.require_all: bool = t.get_bool("require_all", False)
        self.generator_url: str = t.get_str("generator_url", "")
        self.auth = Auth(t)

    def targets(self) -> list[str]:
        return list(self.urls)

    def alert(self, event: Event, state: str, severity: str) -> dict[str, Any]:
        labels = {
            **self.labels,
            "alertname": self.alertname,
            "cluster": event.cluster,
            "vrrp_instance": event.name,
            "instance": event.name,  # kept for configs written before vrrp_instance
            "node": event.node.hostname,
            "state": state,
            "severity": severity,
        }
        if event.pair is not None:
            instance = event.pair.instance or ""
            labels.update(vrrp_instance=instance, instance=instance, vip=event.pair.vip)
        return {
            "labels": labels,
            "annotations": {
                "summary": self.renderer.subject(event),
                "description": plain(self.renderer.render("chat.md", event)),
                "event_id": event.id,
            },
            **({"generatorURL": self.generator_url} if self.generator_url else {}),
        }

    def payload(self, event: Event) -> list[dict[str, Any]]:
        at = datetime.fromisoformat(event.timestamp)
        if event.pair is not None:
            since = datetime.fromisoformat(event.pair.since) if event.pair.since else at
            end = at if event.resolved else at + self.resolve_after
            alerts = [(self.alert(event, event.subject, "critical"), min(since, at), end)]
        elif event.is_test:
            alerts = [(self.alert(event, "test", "info"), at, at + TEST_FOR)]
        elif event.state in FIRING:
            alert = self.alert(event, event.state, FIRING[event.state])
            alerts = [(alert, at, at + self.resolve_after)]
        else:  # healthy: resolve whatever fired, at the time the state changed
            alerts = [(self.alert(event, s, sev), at, at) for s, sev in FIRING.items()]
        return [
            {**a, "startsAt": start.isoformat(), "endsAt": end.isoformat()}
            for a, start, end in alerts
        ]

    async def send(self, event: Event) -> None:
        payload = self.payload(event)

        async def one(url: str) -> None:
            reply = await self.http.post(url, payload, self.auth.headers())
            reply.check()

        results = await asyncio.gather(*(one(u) for u in self.urls), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        for exc in failed:
            if not isinstance(exc, ChannelError):
                raise exc
        if not failed:
            return
        errors: list[ChannelError] = [e for e in failed if isinstance(e, ChannelError)]
        reasons = "; ".join(str(e) for e in errors)
        if len(errors) < len(self.urls) and not self.require_all:
            log.warning("channel %s: accepted by some Alertmanagers, not: %s", self.name, reasons)
            return
        waits = [e.retry_after for e in errors if e.retry_after is not None]
        timed_out = all(isinstance(e, ChannelTimeoutError) for e in errors)
        raise (ChannelTimeoutError if timed_out else ChannelError)(
            f"{len(errors)} of {len(self.urls)} Alertmanagers failed: {reasons}",
            retryable=any(e.retryable for e in errors),
            retry_after=max(waits) if waits else None,
        )
