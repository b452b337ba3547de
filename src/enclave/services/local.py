"""Local mode: act on this host's enclave database without a token, for bootstrap and recovery on the server host.

Who may: only the OS user who owns the database, because that user can already write it directly — local mode
grants nothing the file's permissions do not (docs/accounts.md, "Who is acting"):

- **SQLite**: the file (created 0600 by ``enclave.db``) must belong to the effective OS user, with no group or other
  permission bit: a database others may write proves nothing about who changed it, and one others may read hands
  every OS user the journal and the account table, which the API keeps behind journal.read and accounts.manage.
  A database that does not exist yet is created by, and so owned by, whoever runs the command, but only
  ``accounts bootstrap``, ``db migrate`` and ``serve`` may create one: any other command refuses
  (``enclave.services.factory.open_database(missing=…)``), so a client host never grows an empty database by
  accident.
- **PostgreSQL**: ownership of the server's files says nothing about the client, and a URL in the environment or on
  the command line proves nothing about who typed it; what gives write access is the URL's password. So local mode
  takes a PostgreSQL URL only from the file $ENCLAVE_DB_FILE names, and only when that file belongs to the
  effective OS user and is readable by nobody else (mode 0600 or 0400): the OS user who holds the credential.

Which account: the OS user acts only as accounts a sysadmin mapped it to (``enclave.accounts.local``); every
journal entry made in local mode records the OS user as well (``Database.origin``).
"""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from enclave.accounts import local, storage
from enclave.db import Database
from enclave.db.core import default_url, url_from_file
from enclave.errors import InputError, NotFound, PermissionDenied, Problem

HOW = "act through the API instead: `enclave login SERVER`, then `--context NAME`"


@dataclass(frozen=True)
class OsUser:
    uid: int
    name: str

    @property
    def origin(self) -> str:
        return f"local mode, OS user {self.name} (uid {self.uid})"


def os_user() -> OsUser:
    """The effective OS user of this process (the name from the password database, else the uid)."""
    uid = os.geteuid()
    try:
        return OsUser(uid, pwd.getpwuid(uid).pw_name)
    except KeyError:  # a uid with no passwd entry (some containers)
        return OsUser(uid, str(uid))


def _owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


PRIVATE = stat.S_IRWXG | stat.S_IRWXO
"""Permission bits neither the database nor the file with its URL may have: theirs is the owner's alone, as the
0600 ``enclave.db`` creates the database with (audit of identity and trust, finding 6: a 0644 copy restored with
cp or tar under umask 022 was accepted)."""


def _check_file(path: Path, user: OsUser, what: str) -> None:
    info = path.stat()
    if info.st_uid != user.uid:
        raise PermissionDenied(f"{what} {path} belongs to OS user {_owner_name(info.st_uid)}, not "
                               f"{user.name}: local mode acts only for the OS user who owns it", where="local mode",
                               fix=f"run the command as {_owner_name(info.st_uid)} on the server host, or {HOW}")
    if info.st_mode & PRIVATE:
        raise PermissionDenied(f"{what} {path} has mode {stat.filemode(info.st_mode)}: other OS users could read or "
                               "change it, so owning it proves nothing and keeps nothing private",
                               where="local mode", fix=f"chmod 600 {path}")


URL_FORMS = "sqlite:///PATH (a file), or postgresql+psycopg://USER@HOST:PORT/DB (PostgreSQL)"
"""The database URLs enclave takes (``enclave.db.Database``)."""


def parse_url(url: str) -> sa.engine.URL:
    """``url`` parsed, or an InputError naming where it came from and the forms enclave takes: a value SQLAlchemy
    cannot parse (``make_url`` raises ArgumentError) is the input's fault, not a traceback."""
    try:
        return sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        shown = url if len(url) <= 60 and "@" not in url else "the value given"  # never echo a password
        raise InputError([Problem("$ENCLAVE_DB or --db (else the first line of $ENCLAVE_DB_FILE)",
                                  f"{shown!r} is not a database URL: {exc}", f"give {URL_FORMS}")]) from exc


def check_owner(url: str | None, user: OsUser, *, may_create: bool = False) -> None:
    """Refuse local mode unless ``user`` owns the database ``url`` names (see the module's rules)."""
    url = url or default_url()
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return  # a private in-memory database: nobody else's state
        path = Path(parsed.database).expanduser()
        if not path.exists():
            if may_create:
                return
            raise NotFound(f"there is no enclave database at {path}", where="local mode",
                           fix=f"on the server host set $ENCLAVE_DB or $ENCLAVE_HOME; elsewhere {HOW}")
        # SQLite's -wal and -shm files hold the latest changes and take the database file's mode when made
        # (findCreateFileMode, sqlite src/os_unix.c): left over from a looser mode, they must be private too.
        for part in (path, *(p for p in (Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())):
            _check_file(part, user, "the database")
        return
    url_file = os.environ.get("ENCLAVE_DB_FILE")
    if os.environ.get("ENCLAVE_DB") or not url_file or url_from_file(Path(url_file)) != url:
        raise PermissionDenied("local mode takes a PostgreSQL URL only from a file its OS user owns: a URL in "
                               "$ENCLAVE_DB or --db proves nothing about who runs the command", where="local mode",
                               fix="write the URL into a file of mode 0600 you own, point $ENCLAVE_DB_FILE at it "
                                   f"and unset $ENCLAVE_DB; or {HOW}")
    path = Path(url_file).expanduser()
    _check_file(path, user, "the database URL file")


def check_server(url: str | None, user: OsUser) -> None:
    """Before a server (`serve`, `webdav`, `vospace`) opens the database: a SQLite file must be this OS user's, as in
    local mode (a missing one it creates). A PostgreSQL URL is taken from wherever it is given — a pod gets it
    from a Secret as $ENCLAVE_DB (``enclave render deploy``) — because a server acts as nobody in local mode:
    its password is what authorizes the process, and every client of the server authenticates with a token."""
    url = url or default_url()
    if parse_url(url).get_backend_name() == "sqlite":
        check_owner(url, user, may_create=True)


def enter(db: Database, user: OsUser) -> None:
    """Mark ``db`` as used in local mode by ``user``: its journal entries name the OS user."""
    db.origin = user.origin


def acting_account(db: Database, user: OsUser, requested: str | None) -> str:
    """The account ``user`` acts as: ``requested`` if mapped to it, else its single mapped account."""
    with db.session() as session:
        return local.acting_account(session, user.name, requested)


def nobody_mapped(db: Database) -> bool:
    """No OS user is mapped to any account: a database written before local mode (its first mapping is made by
    the database's owner, as ``accounts bootstrap`` and ``journal rekey`` do)."""
    with db.session() as session:
        return not storage.any_local_identity(session)
