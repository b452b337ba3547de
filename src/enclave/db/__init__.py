"""The shared database layer: one declarative Base, one Alembic migration chain, one way to open a session.

Every concept declares its tables on :class:`Base` and adds an Alembic revision under
``enclave/db/migrations/versions/`` named ``NNNN_<concept>.py`` (see docs/accounts.md). Tables are never
created with ``metadata.create_all``: the migration chain is the only source of the schema, so SQLite and
PostgreSQL databases built from it are identical.
"""

from enclave.db.core import Base, Database, UTCDateTime, default_url

__all__ = ["Base", "Database", "UTCDateTime", "default_url"]
