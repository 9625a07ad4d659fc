"""The gateway: host security module now; batch ingest, storage and forwarding to clearing."""
