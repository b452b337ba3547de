"""Tamper-evident journal of every change: who, what, why, before and after.

``record`` appends inside the caller's transaction, so a change and its journal entry commit or roll
back together. Each entry's hash covers its own fields and the previous entry's hash; the head row keeps
the last sequence number and hash, so editing, deleting, reordering or truncating entries is detected by
``verify``. The hashes are keyed and every committed head is anchored outside the database
(``enclave.journal.seal``), so whoever can write the database but not read the key cannot rewrite, truncate or
wipe the journal unseen.
"""

from enclave.journal.chain import Change, Entry
from enclave.journal.storage import lock, query, record, record_many, rekey, verify

__all__ = ["Change", "Entry", "lock", "query", "record", "record_many", "rekey", "verify"]
