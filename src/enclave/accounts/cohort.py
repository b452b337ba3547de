"""Read a cohort of new accounts from CSV (pure: text in, NewAccount rows or every problem out).

Columns (header required; only the first four are mandatory):
``username,name,email,kind,roles,namespaces,proposal,quota_gib,expires,uid`` — ``roles`` and
``namespaces`` hold several values separated by ';'; ``expires`` is YYYY-MM-DD (UTC).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from enclave.accounts.lifecycle import Allocation, NewAccount
from enclave.accounts.types import AccountKind
from enclave.errors import InputError, Problem
from enclave.spec.models import Role

REQUIRED = ("username", "name", "email", "kind")
OPTIONAL = ("roles", "namespaces", "proposal", "quota_gib", "expires", "uid")

T = TypeVar("T")


class Bad(Protocol):
    """Told about one wrong value of a row."""

    def __call__(self, column: str, what: str, fix: str = "") -> None: ...


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.replace(",", ";").split(";") if v.strip()]


MAX_FIELD = 4096
"""Longest field accepted (characters): names, e-mails and role lists are far shorter; the csv module's own
limit (131072) raises an error mid-file, which is reported the same way."""


def parse_cohort(text: str, source: str = "cohort.csv") -> list[NewAccount]:
    """The rows of a cohort CSV as new accounts; every problem of the header, or of every row, raised at once
    (``file:line: column: what``)."""
    # Excel's "CSV UTF-8" export starts with a byte order mark, which read as UTF-8 is part of the first column's
    # name: "unknown column(s) \ufeffusername" (review, stop 48).
    text = text.removeprefix("\ufeff")
    if "\x00" in text:  # the csv module refuses NUL with an error of its own, mid-file
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise InputError([Problem(f"{source}:{line}", "holds a NUL byte: not a text CSV file",
                                  "export the sheet as CSV (UTF-8)")])
    try:
        return _parse(text, source)
    except csv.Error as exc:
        raise InputError([Problem(source, f"is not valid CSV ({exc})", "export the sheet as CSV (UTF-8)")]) from None


def _parse(text: str, source: str) -> list[NewAccount]:
    reader = csv.DictReader(io.StringIO(text))
    _check_header([h.strip() for h in reader.fieldnames or []], source)
    problems: list[Problem] = []
    rows: list[NewAccount] = []
    for raw in reader:
        line = reader.line_num
        if None in raw:  # DictReader's restkey: fields past the header's last column, dropped without a word
            problems.append(Problem(f"{source}:{line}", f"has {len(raw) - 1 + len(raw[None])} fields, the header "
                                    f"{len(raw) - 1}", "quote a field that holds a comma, or add the column to "
                                    "the header"))
            continue
        row = {k.strip(): (v or "").strip() for k, v in raw.items()}

        def bad(column: str, what: str, fix: str = "", line: int = line) -> None:
            problems.append(Problem(f"{source}:{line}: {column}", what, fix))

        long = [k for k, v in row.items() if len(v) > MAX_FIELD]
        if long:
            bad(long[0], f"is longer than {MAX_FIELD} characters", "check the row; a field this long is a mistake")
            continue
        account = _account(row, bad)
        if account is not None:
            rows.append(account)
    if problems:
        raise InputError(problems)
    if not rows:
        raise InputError([Problem(source, "has no rows", "add one line per account below the header")])
    return rows


def _check_header(header: list[str], source: str) -> None:
    """Refuse a header that lacks a required column or names one this format does not have."""
    problems = []
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
    if missing:
        problems.append(Problem(f"{source}:1", f"missing column(s) {', '.join(missing)}",
                                f"the header needs {', '.join(REQUIRED)}"))
    if unknown:
        problems.append(Problem(f"{source}:1", f"unknown column(s) {', '.join(unknown)}",
                                f"columns are {', '.join(REQUIRED + OPTIONAL)}"))
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:  # DictReader keeps a repeated column's last value: `kind,kind` made a science row staff (review)
        problems.append(Problem(f"{source}:1", f"column(s) {', '.join(twice)} named more than once",
                                "name each column once"))
    if problems:
        raise InputError(problems)


def _account(row: dict[str, str], bad: Bad) -> NewAccount | None:
    """One row as a new account, telling ``bad`` about each wrong value; None when the kind is wrong (nothing
    else about the row can be judged without it)."""
    try:
        kind = AccountKind(row["kind"].lower())
    except ValueError:
        bad("kind", f"{row['kind']!r} is not staff or science")
        return None
    roles = _roles(row.get("roles", ""), bad)
    quota = _optional(row, "quota_gib", float, "is not a number", "", bad)
    expires = _optional(row, "expires", _utc_date, "is not a date", "write YYYY-MM-DD", bad)
    uid = _optional(row, "uid", int, "is not a whole number", "", bad)
    allocation = None
    if row.get("proposal") or quota is not None or expires is not None:
        allocation = Allocation(row.get("proposal", ""), quota_gib=quota, expires=expires)
    return NewAccount(username=row["username"], name=row["name"], email=row["email"], kind=kind,
                      roles=tuple(roles) if roles else None, allocation=allocation,
                      namespaces=tuple(_split(row.get("namespaces", ""))), uid=uid)


def _roles(value: str, bad: Bad) -> list[Role]:
    roles: list[Role] = []
    for name in _split(value):
        try:
            roles.append(Role(name))
        except ValueError:
            bad("roles", f"unknown role {name!r}", f"use {', '.join(r.value for r in Role)}")
    return roles


def _utc_date(value: str) -> datetime:
    """A date or time; one without a zone is UTC."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _optional(row: dict[str, str], column: str, convert: Callable[[str], T], what: str, fix: str,
              bad: Bad) -> T | None:
    """An optional column converted, or None when it is empty or wrong (``bad`` is told)."""
    if not row.get(column):
        return None
    try:
        return convert(row[column])
    except ValueError:
        bad(column, f"{row[column]!r} {what}", fix)
        return None
