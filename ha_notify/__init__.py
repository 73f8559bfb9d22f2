"""ha-notify: failover notifications and health checks for HAProxy + keepalived pairs."""

__version__ = "0.1.0"
