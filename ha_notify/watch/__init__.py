"""``ha-notify watch``: one resident process per node, one round every ``[watch] interval``.

A round (see :mod:`ha_notify.watch.loop`) does, in order and without forking:

1. runs the haproxy check in-process (:mod:`ha_notify.watch.health`: the same verdict and
   reason as ``ha-notify check haproxy``, ``[checks.haproxy]`` settings, one runtime-API
   connection when ``deep``) and writes ``0`` (healthy) or ``1`` to ``track_file``
   (:mod:`ha_notify.watch.trackfile`: temp file + rename in the same folder) for keepalived's
   ``track_file``;
2. reads which virtual addresses this node holds (:mod:`ha_notify.watch.vips`, one netlink
   dump) and the last VRRP states (:mod:`ha_notify.watch.metrics`, re-read only on change);
3. hands a :class:`~ha_notify.watch.probe.RoundContext` to every probe;
4. writes the Prometheus textfile (:mod:`ha_notify.watch.metrics`) from every probe's samples.

Extension point: a probe is any object with ``round(ctx)`` and ``metrics()`` (the
:class:`~ha_notify.watch.probe.WatchProbe` protocol). ``round`` must be quick (it shares the
round's time with the health check: do slow work every ``probe_interval`` or in a thread of
your own) and never raise for a condition of the network it observes; ``metrics`` returns the
samples to publish, labels ``cluster`` and ``node`` are added by the writer. The pair-level
probes (split brain, unserved VIP, not serving) plug in through :func:`ha_notify.watch.loop.
Watcher.add_probe` or the ``PROBES`` factory list in :mod:`ha_notify.watch.loop`.
"""
