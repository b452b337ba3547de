"""The journal: read it (journal.read) and verify its chain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from enclave import journal
from enclave.access.permissions import Permission
from enclave.accounts.authorize import require
from enclave.db import Database
from enclave.journal import Entry


@dataclass
class JournalService:
    db: Database

    def entries(self, actor: str, *, by: str | None = None, action: str | None = None, target: str | None = None,
                since: datetime | None = None, until: datetime | None = None, limit: int | None = None,
                newest_first: bool = True) -> list[Entry]:
        """Entries matching every filter; ``limit`` keeps the newest. Needs journal.read."""
        with self.db.session() as session:
            require(session, actor, Permission.JOURNAL_READ)
            return journal.query(session, actor=by, action=action, target=target, since=since, until=until,
                                 limit=limit, newest_first=newest_first or limit is not None)

    def rekey(self, actor: str, *, reason: str) -> tuple[int, str, Entry]:
        """Upgrade a journal written before the keyed hash (``journal.rekey``): needs journal.read and
        roles.grant (the sysadmin's). Returns (entries re-sealed, old head hash, the journal entry saying so)."""
        with self.db.session() as session:
            require(session, actor, Permission.JOURNAL_READ)
            require(session, actor, Permission.ROLES_GRANT)
            return journal.rekey(session, actor=actor, reason=reason)

    def verify(self, actor: str) -> int:
        """Walk the hash chain: the number of entries, or IntegrityError naming the first bad one."""
        with self.db.session() as session:
            require(session, actor, Permission.JOURNAL_READ)
            return journal.verify(session)
