"""The failover lab: the reference HAProxy + keepalived pair, for real, in network namespaces."""
