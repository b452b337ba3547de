"""Exactly one broker loop among several enclave replicas on one PostgreSQL database: a session-level advisory
lock, held on a connection of its own for as long as the process leads.

PostgreSQL keeps a session-level advisory lock "until explicitly released or the session ends"
(https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS); ``pg_try_advisory_lock(bigint)``
takes it without waiting and says whether it did
(https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-ADVISORY-LOCKS). A leader that dies
closes its connection, the server ends the session and the lock is free for a standby's next try. A leader
asks before every cycle whether its connection (and so its lock) is still there, so a leader cut off from the
database stops acting within one cycle.

SQLite serves one host and one process at a time: there the caller is always the leader.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (advisory lock keys are bigint)."""
    return int.from_bytes(hashlib.sha256(f"enclave:{name}".encode()).digest()[:8], "big", signed=True)


class LeaderLock:
    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name
        self.key = lock_key(name)
        self._conn: Connection | None = None
        self._mutex = threading.Lock()

    @property
    def shared(self) -> bool:
        """Whether other processes can share the database (PostgreSQL), so leadership means anything."""
        return self.engine.dialect.name == "postgresql"

    def held(self) -> bool:
        """Lead if possible: True when this process holds the lock (taking it now if it is free)."""
        if not self.shared:
            return True
        with self._mutex:
            if self._conn is not None and self._alive(self._conn):
                return True
            self._drop()
            try:
                conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                got = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar())
            except SQLAlchemyError:
                return False  # the database is unreachable: nobody here may lead
            if got:
                self._conn = conn
            else:
                conn.close()
            return got

    def _alive(self, conn: Connection) -> bool:
        try:
            conn.execute(sa.text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._conn.invalidate()  # never back to the pool: the session (and any lock) must end
            self._conn = None

    def release(self) -> None:
        with self._mutex:
            if self._conn is not None:
                try:
                    self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                    self._conn.close()
                except SQLAlchemyError:
                    self._drop()
                self._conn = None
