"""Roles that talk to the gateway do so to a real one (SQLite and PostgreSQL)."""

from tests.gateway_fixtures import clearing, db, db_url, gateway, pg_cluster

__all__ = ["clearing", "db", "db_url", "gateway", "pg_cluster"]
