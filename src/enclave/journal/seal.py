"""What anchors the journal outside its database: a key and an append-only anchor file.

A plain hash chain inside the database proves nothing to someone who can write that database: they can
delete the newest entries and fix the head row, or rewrite entries and recompute every hash with the
project's own code, or wipe the journal. So:

* each entry's hash is an HMAC-SHA256 (RFC 2104; Python's ``hmac``) under a key the database does not hold —
  a 256-bit random key in a file created 0600 (default beside a SQLite file, ``<name>.journal-key``;
  ``ENCLAVE_JOURNAL_KEY`` or ``Database(journal_key=…)`` put it elsewhere). Without the key, nobody can make
  a rewritten entry verify;
* after every committed transaction that appended entries, the new head (``seq hash``) is appended to an
  anchor file outside the database (``<name>.journal-anchor``; ``ENCLAVE_JOURNAL_ANCHOR``). ``verify`` checks
  each anchored head against the chain, so removing entries (the tail, or all of them) is detected even
  when the head row was fixed to match.

The key is created only for an empty journal with an empty anchor: a missing key for a journal that has
entries is reported, never silently replaced. docs/accounts.md states the threat model.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
import stat
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from enclave.errors import IntegrityError
from enclave.home import private_dir

_KEY = re.compile(r"^[0-9a-f]{64}$")
_ANCHOR_LINE = re.compile(r"^(\d+) ([0-9a-f]{64})$")
log = logging.getLogger(__name__)
_RESTORE = "restore the database, its journal key and its anchor from one backup, and investigate"


@dataclass(frozen=True)
class Seal:
    """The key entries are authenticated with, and where heads are anchored (None: nowhere, e.g. in memory)."""

    key: bytes
    anchor: Path | None

    def mac(self, body: bytes) -> str:
        return hmac.digest(self.key, body, "sha256").hex()


def _database(session: Session) -> Any:
    db = session.info.get("database")
    if db is None:
        raise IntegrityError("this session belongs to no enclave.db.Database, so the journal has no key",
                             where="journal", fix="open sessions with Database.session()")
    return db


def _private(path: Path, what: str) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise IntegrityError(f"the journal {what} {path} is readable or writable by others (mode {mode:o})",
                             where=str(path), fix=f"chmod 600 {path}")


def _read_key(path: Path) -> bytes:
    _private(path, "key")
    text = path.read_text().strip()
    if not _KEY.match(text):
        raise IntegrityError(f"the journal key {path} is not 64 hexadecimal digits", where=str(path),
                             fix=f"restore the key file from the backup of this database; {_RESTORE}")
    return bytes.fromhex(text)


def _create_key(path: Path) -> bytes:
    private_dir(path.parent)
    key = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return _read_key(path)
    with os.fdopen(fd, "w") as out:
        out.write(key.hex() + "\n")
        out.flush()
        os.fsync(out.fileno())
    return key


def anchored(path: Path | None) -> dict[int, str]:
    """Every head the anchor file records (seq → hash); empty when there is no anchor file."""
    if path is None or not path.exists():
        return {}
    heads: dict[int, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        match = _ANCHOR_LINE.match(line.strip())
        if match is None:
            raise IntegrityError(f"line {n} of the journal anchor {path} is not 'SEQ HASH'", where=f"{path}:{n}",
                                 fix=_RESTORE)
        heads[int(match.group(1))] = match.group(2)
    return heads


def seal_of(session: Session, *, journal_empty: bool) -> Seal | None:
    """The database's seal. A missing key is created only while the journal and its anchor are empty; for a
    journal with entries it is an IntegrityError. None: an empty journal that has no key yet (only a reader
    asks with ``journal_empty`` and gets None)."""
    db = _database(session)
    cached = db.cache.get("journal.seal")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    path: Path | None = db.journal_key
    if path is None:  # an in-memory database: a key that lives as long as it does
        seal = Seal(secrets.token_bytes(32), None)
    elif path.exists():
        seal = Seal(_read_key(path), db.journal_anchor)
    elif not journal_empty or anchored(db.journal_anchor):
        raise IntegrityError(f"the journal key {path} is missing, but the journal "
                             f"{'has entries' if not journal_empty else 'anchor records entries'}",
                             where=str(path), fix=f"restore the key file; {_RESTORE}. A journal written "
                             "before the keyed hash has no key: `enclave journal rekey --reason ...` checks it "
                             "under the old rule and seals it")
    else:
        return None
    db.cache["journal.seal"] = seal
    return seal


def writing_seal(session: Session, *, journal_empty: bool) -> Seal:
    """The seal to append with: as ``seal_of``, creating the key for a new, empty journal."""
    seal = seal_of(session, journal_empty=journal_empty)
    if seal is not None:
        return seal
    db = _database(session)
    seal = Seal(_create_key(db.journal_key), db.journal_anchor)
    db.cache["journal.seal"] = seal
    return seal


def rekey_seal(session: Session) -> Seal:
    """The seal to re-seal an old, unkeyed journal with (``storage.rekey``, after it verified the old chain):
    the existing key, or a new one. Every other writer refuses to make a key for a journal with entries."""
    db = _database(session)
    path: Path | None = db.journal_key
    seal = Seal(secrets.token_bytes(32), None) if path is None else Seal(
        _read_key(path) if path.exists() else _create_key(path), db.journal_anchor)
    db.cache["journal.seal"] = seal
    return seal


def anchor_after_commit(session: Session, seal: Seal, seq: int, digest: str) -> None:
    """Append ``seq digest`` to the anchor once this transaction commits (nothing if it rolls back), so the
    anchor never names an entry the database does not hold. A crash between commit and append leaves the
    anchor one head behind: the entries after it are then covered by the key alone."""
    if seal.anchor is None:
        return
    if not event.contains(session, "after_commit", _append_pending):
        event.listen(session, "after_commit", _append_pending)
        event.listen(session, "after_rollback", _drop_pending)
    _pending[session] = (seal.anchor, seq, digest)


# The head each open transaction will anchor when it commits. Not ``session.info``: a sessionmaker hands every
# session the same info dict.
_pending: weakref.WeakKeyDictionary[Session, tuple[Path, int, str]] = weakref.WeakKeyDictionary()


def _append_pending(session: Session) -> None:
    pending = _pending.pop(session, None)
    if pending is None:
        return
    path, seq, digest = pending
    try:
        private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, f"{seq} {digest}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        # The change is committed already; failing now would tell the caller it was not. The anchor lags,
        # which verify tolerates (the key still covers these entries) — but an operator must hear of it.
        log.error("journal anchor %s not updated to entry %d: %s", path, seq, exc)


def _drop_pending(session: Session) -> None:
    _pending.pop(session, None)
