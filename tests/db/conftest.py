"""Fixtures of the database-layer suite: every test that takes ``database`` runs on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.pg import database, postgres_server  # noqa: F401  (fixtures re-exported for this suite)
