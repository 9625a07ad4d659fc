"""The terminal runtime: configuration file -> one assembly -> a device run as a service."""
