"""The notify engine: events to spool, channels, state store."""
