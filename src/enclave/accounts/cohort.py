"""Read a cohort of new accounts from CSV (pure: text in, NewAccount rows or every problem out).

Columns (header required; only the first four are mandatory):
``username,name,email,kind,roles,namespaces,proposal,quota_gib,expires,uid`` — ``roles`` and
``namespaces`` hold several values separated by ';'; ``expires`` is YYYY-MM-DD (UTC).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from enclave.accounts.lifecycle import Allocation, NewAccount
from enclave.accounts.types import AccountKind
from enclave.errors import InputError, Problem
from enclave.spec.models import Role

REQUIRED = ("username", "name", "email", "kind")
OPTIONAL = ("roles", "namespaces", "proposal", "quota_gib", "expires", "uid")


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.replace(",", ";").split(";") if v.strip()]


MAX_FIELD = 4096
"""Longest field accepted (characters): names, e-mails and role lists are far shorter; the csv module's own
limit (131072) raises an error mid-file, which is reported the same way."""


def parse_cohort(text: str, source: str = "cohort.csv") -> list[NewAccount]:
    """Every row as a NewAccount, or an InputError listing every problem (``file:line: column: what``)."""
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
    header = [h.strip() for h in reader.fieldnames or []]
    problems = []
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
    if missing:
        problems.append(Problem(f"{source}:1", f"missing column(s) {', '.join(missing)}",
                                f"the header needs {', '.join(REQUIRED)}"))
    if unknown:
        problems.append(Problem(f"{source}:1", f"unknown column(s) {', '.join(unknown)}",
                                f"columns are {', '.join(REQUIRED + OPTIONAL)}"))
    if problems:
        raise InputError(problems)
    rows: list[NewAccount] = []
    for raw in reader:
        line = reader.line_num
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}

        def bad(column: str, what: str, fix: str = "", line: int = line) -> None:
            problems.append(Problem(f"{source}:{line}: {column}", what, fix))

        long = [k for k, v in row.items() if len(v) > MAX_FIELD]
        if long:
            bad(long[0], f"is longer than {MAX_FIELD} characters", "check the row; a field this long is a mistake")
            continue

        try:
            kind = AccountKind(row["kind"].lower())
        except ValueError:
            bad("kind", f"{row['kind']!r} is not staff or science")
            continue
        roles: list[Role] = []
        for value in _split(row.get("roles", "")):
            try:
                roles.append(Role(value))
            except ValueError:
                bad("roles", f"unknown role {value!r}", f"use {', '.join(r.value for r in Role)}")
        quota = expires = uid = None
        if row.get("quota_gib"):
            try:
                quota = float(row["quota_gib"])
            except ValueError:
                bad("quota_gib", f"{row['quota_gib']!r} is not a number")
        if row.get("expires"):
            try:
                parsed = datetime.fromisoformat(row["expires"])
                expires = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
            except ValueError:
                bad("expires", f"{row['expires']!r} is not a date", "write YYYY-MM-DD")
        if row.get("uid"):
            try:
                uid = int(row["uid"])
            except ValueError:
                bad("uid", f"{row['uid']!r} is not a whole number")
        allocation = None
        if row.get("proposal") or quota is not None or expires is not None:
            allocation = Allocation(row.get("proposal", ""), quota_gib=quota, expires=expires)
        rows.append(NewAccount(username=row["username"], name=row["name"], email=row["email"], kind=kind,
                               roles=tuple(roles) if roles else None, allocation=allocation,
                               namespaces=tuple(_split(row.get("namespaces", ""))), uid=uid))
    if problems:
        raise InputError(problems)
    if not rows:
        raise InputError([Problem(source, "has no rows", "add one line per account below the header")])
    return rows
