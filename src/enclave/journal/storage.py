"""The journal's rows: append (under the head lock), walk the chain, query. Every SQL statement of the journal
is here; the hashing rule is ``enclave.journal.chain``."""

from __future__ import annotations

import hmac
import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from enclave.clock import or_now
from enclave.db.core import origin_of
from enclave.errors import Conflict, InputError, IntegrityError, Problem
from enclave.journal.chain import GENESIS, Change, Entry, canonical, entry_hash, format_time, unkeyed_hash
from enclave.journal.models import JournalEntry, JournalHead
from enclave.journal.seal import Seal, anchor_after_commit, anchored, rekey_seal, seal_of, writing_seal


def _head(session: Session, *, share: bool = False) -> JournalHead | None:
    """The head row, locked (FOR UPDATE, or FOR SHARE with ``share``) and read fresh: an object the session's
    identity map already held would otherwise keep the values of an earlier snapshot (PostgreSQL's READ COMMITTED
    gives each statement its own)."""
    stmt = sa.select(JournalHead).where(JournalHead.id == 1).with_for_update(read=share)
    return session.execute(stmt.execution_options(populate_existing=True)).scalar_one_or_none()


def lock(session: Session) -> None:
    """Take the journal's head lock now (it is held until the transaction ends). Writers that derive
    something from current state — the next free uid — call this first, so concurrent transactions on
    PostgreSQL queue instead of computing the same value."""
    session.execute(sa.select(JournalHead.id).where(JournalHead.id == 1).with_for_update())


def record(session: Session, *, actor: str, action: str, target: str, reason: str,
           before: Any, after: Any, at: datetime | None = None) -> Entry:
    """Append one entry in the caller's transaction (nothing is committed here)."""
    return record_many(session, [Change(actor, action, target, reason, before, after, at)])[0]


def record_many(session: Session, changes: list[Change]) -> list[Entry]:
    """Append several entries at once (one head lock, one flush), in the caller's transaction."""
    prepared = []
    for change in changes:
        for name in ("actor", "action", "target"):
            text = getattr(change, name)
            if not isinstance(text, str) or not text.strip():
                raise InputError([Problem(f"journal {name}", "is empty", f"every change names its {name}")])
        prepared.append((change, canonical(change.before), canonical(change.after),
                         format_time(or_now(change.at))))
    if not prepared:
        return []
    # Lock the head row: concurrent writers queue here instead of forking the chain (SQLite gets the
    # same effect from BEGIN IMMEDIATE, see enclave.db.core).
    head = _head(session)
    if head is None:
        head = JournalHead(id=1, seq=0, hash=GENESIS)
        session.add(head)
    seq, prev = head.seq, head.hash
    seal = writing_seal(session, journal_empty=seq == 0)
    origin = origin_of(session)
    rows, entries = [], []
    for change, before_text, after_text, stamp in prepared:
        seq += 1
        # Local mode acts without a token, and a token issued on the actor's behalf is its issuer's act as well: the
        # entry also names the OS user or the issuer (hashed with the reason).
        reason = f"{change.reason} [{origin}]" if origin else change.reason
        digest = entry_hash(seal.mac, prev, seq, stamp, change.actor, change.action, change.target, reason,
                            before_text, after_text)
        rows.append(JournalEntry(seq=seq, at=stamp, actor=change.actor, action=change.action, target=change.target,
                                 reason=reason, before=before_text, after=after_text, prev_hash=prev, hash=digest))
        entries.append(Entry(seq, stamp, change.actor, change.action, change.target, reason, change.before,
                             change.after, digest))
        prev = digest
    session.add_all(rows)
    head.seq, head.hash = seq, prev
    session.flush()
    anchor_after_commit(session, seal, seq, prev)
    return entries


def _restore(what: str) -> IntegrityError:
    return IntegrityError(what, where="journal", fix="restore the database, its journal key and its anchor from one "
                          "backup and investigate")


def _check_row(row: JournalEntry, seal: Seal, expected_seq: int, expected_prev: str) -> None:
    where = f"journal entry {row.seq} ({row.action} {row.target} by {row.actor} at {row.at})"
    if row.seq != expected_seq:
        raise _restore(f"journal entry {expected_seq} is missing (next stored entry is {row.seq})")
    if row.prev_hash != expected_prev:
        raise _restore(f"{where} does not follow entry {expected_seq - 1}: entries were removed, reordered or "
                       "rewritten")
    digest = entry_hash(seal.mac, row.prev_hash, row.seq, row.at, row.actor, row.action, row.target, row.reason,
                        row.before, row.after)
    if not hmac.compare_digest(digest, row.hash):
        raise _restore(f"{where} was altered after it was written (its hash does not verify under the journal key)")


def _check_head(head: JournalHead | None, last_seq: int, last_hash: str) -> None:
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    if head_seq != last_seq or head_hash != last_hash:
        if head_seq > last_seq:
            raise _restore(f"journal entry {last_seq + 1} is missing: the journal ends at {last_seq} but its head "
                           f"says {head_seq}")
        raise _restore(f"journal head (entry {head_seq}) does not match the last entry {last_seq}")


def _check_anchor(anchor: dict[int, str], hashes: dict[int, str], last_seq: int, where: str) -> None:
    """Every head the anchor recorded must still be in the chain, unchanged."""
    if anchor and max(anchor) > last_seq:
        gone = "the journal is empty" if last_seq == 0 else f"the journal ends at entry {last_seq}"
        raise _restore(f"the anchor {where} records entry {max(anchor)}, but {gone}: entries were removed "
                       "(or the database was restored without the anchor of the same backup)")
    for seq, digest in sorted(anchor.items()):
        if hashes.get(seq) != digest:
            raise _restore(f"journal entry {seq} is not the entry the anchor {where} recorded: it was rewritten")


def verify(session: Session, *, batch: int = 5000) -> int:
    """Walk the chain, checking each entry's keyed hash, the head row and the anchor file; return the number of
    entries, or raise IntegrityError naming the first problem.

    The head is read first, FOR SHARE and fresh: a writer appends under the head's FOR UPDATE lock, so until this
    transaction ends none can commit, and the entries read next are exactly those the head covers. On PostgreSQL
    (READ COMMITTED) each statement sees a new snapshot: without the lock an entry committed between the two reads
    was in the chain but not in the head, and an intact journal was reported tampered. SQLite's BEGIN IMMEDIATE
    serializes verify with the writers already."""
    head = _head(session, share=True)
    db = session.info.get("database")
    anchor_path = db.journal_anchor if db is not None else None
    anchor = anchored(anchor_path)
    seal = seal_of(session, journal_empty=head is None or head.seq == 0)
    expected_prev, expected_seq, last_seq = GENESIS, 1, 0
    hashes: dict[int, str] = {}
    stmt = sa.select(JournalEntry).order_by(JournalEntry.seq).execution_options(yield_per=batch)
    for row in session.execute(stmt).scalars():
        if seal is None:  # entries but no key and a head saying empty: the head was reset
            seal = seal_of(session, journal_empty=False)
        assert seal is not None
        _check_row(row, seal, expected_seq, expected_prev)
        if row.seq in anchor:
            hashes[row.seq] = row.hash
        expected_prev, expected_seq, last_seq = row.hash, row.seq + 1, row.seq
    _check_head(head, last_seq, expected_prev)
    _check_anchor(anchor, hashes, last_seq, str(anchor_path))
    return last_seq


def _fields(row: JournalEntry, prev: str) -> tuple[str, int, str, str, str, str, str, str, str]:
    return (prev, row.seq, row.at, row.actor, row.action, row.target, row.reason, row.before, row.after)


def _check_unkeyed(session: Session, head: JournalHead, rows: list[JournalEntry]) -> None:
    """The whole chain, head row included, verifies under the old unkeyed rule; else nothing may be re-sealed:
    sealing a tampered journal would make its tampering verify."""
    prev, expected = GENESIS, 1
    for row in rows:
        where = f"journal entry {row.seq} ({row.action} {row.target} by {row.actor} at {row.at})"
        if row.seq != expected or row.prev_hash != prev:
            raise _refuse_rekey(f"journal entry {expected} is missing or out of order (found {row.seq})")
        if not hmac.compare_digest(unkeyed_hash(*_fields(row, prev)), row.hash):
            db = session.info.get("database")
            if db is not None and db.journal_key is not None and db.journal_key.exists() and \
                    hmac.compare_digest(entry_hash(seal_of(session, journal_empty=False).mac,  # type: ignore[union-attr]
                                                   *_fields(row, prev)), row.hash):
                raise Conflict("the journal is already sealed under its key: nothing to rekey", where="journal",
                               fix="enclave journal verify")
            raise _refuse_rekey(f"{where} does not verify under the old unkeyed rule: it was altered")
        prev, expected = row.hash, row.seq + 1
    if (head.seq, head.hash) != (expected - 1, prev):
        raise _refuse_rekey(f"the journal head (entry {head.seq}) does not match the last entry {expected - 1}")


def _refuse_rekey(what: str) -> IntegrityError:
    return IntegrityError(f"{what}; the journal is not re-sealed (that would make the damage verify)",
                          where="journal", fix="restore the database from a backup taken before the damage, "
                          "verify it, then rekey")


def rekey(session: Session, *, actor: str, reason: str, at: datetime | None = None) -> tuple[int, str, Entry]:
    """Upgrade a journal written before the keyed hash: verify its whole chain under the old unkeyed rule
    (``chain.unkeyed_hash``) first — refusing, with nothing changed and no key made, if it does not verify —
    then re-seal every entry under the journal key (made now if absent), in the caller's transaction, and
    journal that it did (``journal.rekey``, with the old and new head). Returns (entries re-sealed, the old
    head hash, the rekey entry)."""
    head = _head(session)
    if head is None or head.seq == 0:
        raise Conflict("the journal is empty: there is nothing to rekey", where="journal",
                       fix="a new journal is sealed from its first entry")
    rows = list(session.execute(sa.select(JournalEntry).order_by(JournalEntry.seq)).scalars())
    _check_unkeyed(session, head, rows)
    old_head = head.hash
    seal = rekey_seal(session)
    prev = GENESIS
    for row in rows:
        row.prev_hash = prev
        row.hash = prev = entry_hash(seal.mac, *_fields(row, prev))
    head.hash = prev
    session.flush()
    entry = record(session, actor=actor, action="journal.rekey", target="journal", reason=reason, at=at,
                   before={"rule": "sha256, unkeyed", "entries": len(rows), "head": old_head},
                   after={"rule": "hmac-sha256 under the journal key", "entries": len(rows), "head": prev})
    return len(rows), old_head, entry


def query(session: Session, *, actor: str | None = None, action: str | None = None, target: str | None = None,
          since: datetime | None = None, until: datetime | None = None, after_seq: int | None = None,
          limit: int | None = None, newest_first: bool = False) -> list[Entry]:
    """Entries matching every given filter. ``action`` ending in '.' or '*' matches a prefix (``accounts.*``)."""
    stmt = sa.select(JournalEntry)
    if actor:
        stmt = stmt.where(JournalEntry.actor == actor)
    if action:
        if action.endswith("*"):
            # A prefix compared with = (substr counts characters on both back ends), so case-sensitive on both, as
            # the exact filter is: LIKE ignored ASCII case on SQLite and not on PostgreSQL, so `ACCOUNTS.*` found
            # entries on one and none on the other (a range comparison would follow PostgreSQL's collation).
            prefix = action[:-1]
            stmt = stmt.where(sa.func.substr(JournalEntry.action, 1, len(prefix)) == prefix)
        else:
            stmt = stmt.where(JournalEntry.action == action)
    if target:
        stmt = stmt.where(JournalEntry.target == target)
    if since:
        stmt = stmt.where(JournalEntry.at >= format_time(since))
    if until:
        stmt = stmt.where(JournalEntry.at < format_time(until))
    if after_seq is not None:
        stmt = stmt.where(JournalEntry.seq > after_seq)
    if limit is not None and limit < 1:
        raise InputError([Problem("limit", f"must be at least 1, got {limit}")])
    stmt = stmt.order_by(JournalEntry.seq.desc() if newest_first else JournalEntry.seq)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [Entry(r.seq, r.at, r.actor, r.action, r.target, r.reason, json.loads(r.before), json.loads(r.after),
                  r.hash) for r in session.execute(stmt).scalars()]
