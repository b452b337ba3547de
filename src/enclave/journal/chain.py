"""Hash chain over journal entries (each hash keyed: see ``enclave.journal.seal``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from enclave.errors import InputError, Problem

GENESIS = "0" * 64
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True)
class Entry:
    seq: int
    at: str
    actor: str
    action: str
    target: str
    reason: str
    before: Any
    after: Any
    hash: str


def canonical(value: Any) -> str:
    """JSON with sorted keys and no spaces: the same value always hashes the same."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain)
    except (TypeError, ValueError) as exc:
        raise InputError([Problem("journal before/after", f"cannot be stored as JSON: {exc}",
                                  "pass plain dicts, lists, strings, numbers, booleans or None")]) from exc


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def entry_body(prev_hash: str, seq: int, at: str, actor: str, action: str, target: str, reason: str,
               before: str, after: str) -> bytes:
    """The bytes an entry's hash covers: its own fields and the previous entry's hash."""
    return json.dumps([prev_hash, seq, at, actor, action, target, reason, before, after],
                      separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(mac: Callable[[bytes], str], prev_hash: str, seq: int, at: str, actor: str, action: str,
               target: str, reason: str, before: str, after: str) -> str:
    """The entry's hash under ``mac`` (``Seal.mac``: HMAC-SHA256 with the journal's key, which the database
    does not hold — so whoever writes the database cannot recompute it)."""
    return mac(entry_body(prev_hash, seq, at, actor, action, target, reason, before, after))


def unkeyed_hash(prev_hash: str, seq: int, at: str, actor: str, action: str, target: str, reason: str,
                 before: str, after: str) -> str:
    """The rule journals were written with before the keyed hash (until commit 80fecdb): plain SHA-256 of the
    same body. Only ``storage.rekey`` uses it, to check an old journal before re-sealing it under the key."""
    return hashlib.sha256(entry_body(prev_hash, seq, at, actor, action, target, reason, before, after)).hexdigest()


def format_time(when: datetime) -> str:
    if when.tzinfo is None:
        raise InputError([Problem("journal time", "naive datetime", "pass a timezone-aware datetime")])
    try:
        return when.astimezone(UTC).strftime(TIME_FORMAT)
    except OverflowError:  # 0001-01-01T00:00+01:00 is year 0 in UTC
        raise InputError([Problem("journal time", f"{when.isoformat()} is out of range in UTC",
                                  "the datetime must convert to UTC within years 1-9999")]) from None


@dataclass(frozen=True)
class Change:
    """One change to journal: who, what, on what, why, and the state before and after."""

    actor: str
    action: str
    target: str
    reason: str
    before: Any
    after: Any
    at: datetime | None = None
