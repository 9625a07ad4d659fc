"""Roles that talk to the gateway do so to a real one (SQLite and PostgreSQL)."""

from tests.gateway_fixtures import db, db_url, gateway, pg_cluster

__all__ = ["db", "db_url", "gateway", "pg_cluster"]
