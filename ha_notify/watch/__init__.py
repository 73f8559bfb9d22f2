"""The resident watcher: zero-fork health, pair awareness, metrics."""
