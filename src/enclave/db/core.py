"""Engine, sessions and programmatic migrations."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from enclave.errors import Conflict, ExternalError, InputError, InvalidTransition, NotFound, Problem
from enclave.home import enclave_home, private_dir

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

MIGRATION_LOCK = 0x656E636C6176_01
"""The PostgreSQL advisory lock key ``migrate`` holds while it upgrades ("enclav" in hex, then 1): one number for
every enclave process, so concurrent migrations of one database queue on it."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"version {version('enclave')}"
    except PackageNotFoundError:
        return "this version"

# Named constraints make migrations on SQLite (batch mode) and PostgreSQL refer to the same names.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database (SQLite has no time zones: it stores naive UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: enclave stores only timezone-aware times")
        try:
            value = value.astimezone(UTC)
        except OverflowError:
            raise ValueError(f"datetime {value.isoformat()} is out of range in UTC: enclave stores times that "
                             "convert to UTC within years 1-9999") from None
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base for every table in enclave."""

    metadata = sa.MetaData(naming_convention=NAMING)


def default_url() -> str:
    """$ENCLAVE_DB, else the first line of the file $ENCLAVE_DB_FILE names (how a PostgreSQL URL with its password
    is given for local mode, see ``enclave.services.local``), else a SQLite file under $ENCLAVE_HOME."""
    url = os.environ.get("ENCLAVE_DB")
    if url:
        return url
    url_file = os.environ.get("ENCLAVE_DB_FILE")
    if url_file:
        return url_from_file(Path(url_file))
    return f"sqlite:///{enclave_home() / 'enclave.db'}"


def url_from_file(path: Path) -> str:
    try:
        lines = path.expanduser().read_text(encoding="utf-8").strip().splitlines()
    except OSError as exc:
        raise InputError([Problem("$ENCLAVE_DB_FILE", f"cannot read {path}: {exc.strerror}",
                                  "name a readable file holding the database URL")]) from exc
    if not lines or not lines[0].strip():
        raise InputError([Problem("$ENCLAVE_DB_FILE", f"{path} is empty", "write the database URL on its first line")])
    return lines[0].strip()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the sqlite3 module, open transactions: see _sqlite_begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # SQLite ignores foreign keys unless asked, and WAL lets readers proceed while one writer commits.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin(connection: sa.Connection) -> None:
    # A deferred SQLite transaction reads a snapshot and may later fail (or, for the journal head, fork
    # the chain) when it tries to write. BEGIN IMMEDIATE takes the write lock up front, so concurrent
    # transactions queue (busy_timeout) instead — the SQLite counterpart of SELECT … FOR UPDATE.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _create_private(path: Path) -> None:
    """Create the SQLite file 0600 before SQLite does (it would use 0644 under the usual umask): the
    database holds token hashes and the journal, readable by its owner only. A directory made for it (and its
    journal key and anchor beside it) is 0700 whatever the umask (``home.private_dir``)."""
    private_dir(path.parent)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sidecars(parsed: sa.engine.URL) -> tuple[Path | None, Path | None]:
    """Default places of the journal key and anchor: beside a SQLite file (``enclave.db`` → ``enclave.journal-key``,
    ``enclave.journal-anchor``); under $ENCLAVE_HOME/journal for a server database; none for an in-memory one."""
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return None, None
        path = Path(parsed.database).expanduser()
        return path.with_name(path.stem + ".journal-key"), path.with_name(path.stem + ".journal-anchor")
    name = f"{parsed.database}@{parsed.host or 'local'}-{parsed.port or 'default'}"
    root = enclave_home() / "journal"
    return root / f"{name}.key", root / f"{name}.anchor"


DELEGATED_BY: ContextVar[str | None] = ContextVar("enclave_delegated_by", default=None)
"""Who issued the token the current request acts with, when that was not its holder (``Caller.delegated_by``).
Set once per API request (``enclave.services.tokens.acting_for``); each session opened in the request carries
it in ``session.info``, as local mode's ``Database.origin`` is carried through ``session.info["database"]``."""


@contextmanager
def on_behalf(delegated_by: str | None) -> Iterator[None]:
    """Sessions opened inside the block act with a token ``delegated_by`` issued on the actor's behalf."""
    token = DELEGATED_BY.set(delegated_by)
    try:
        yield
    finally:
        DELEGATED_BY.reset(token)


def delegated_by(session: Session) -> str | None:
    """Who issued the token this session's actor acts with on their behalf (None: the actor's own act)."""
    value = session.info.get("delegated_by")
    return value if isinstance(value, str) else None


def origin_of(session: Session) -> str | None:
    """What the journal records beside the actor of a change made in ``session``: the OS user in local mode, or who
    issued the token the actor acted with on their behalf — the person who really acted may be either."""
    database = session.info.get("database")
    local = getattr(database, "origin", None)
    issuer = delegated_by(session)
    on_behalf_of = f"token issued on the actor's behalf by {issuer}" if issuer else None
    return "; ".join(part for part in (local, on_behalf_of) if part) or None


class Database:
    """One database: SQLite by default, PostgreSQL by URL (``postgresql+psycopg://user@host:port/name``).

    ``journal_key`` and ``journal_anchor`` are files outside the database that the journal uses
    (``enclave.journal.seal``); by default they sit beside a SQLite file or under $ENCLAVE_HOME/journal.
    """

    def __init__(self, url: str | None = None, *, journal_key: Path | None = None,
                 journal_anchor: Path | None = None, create: bool = True) -> None:
        """``create=False``: the database must already be there, at the newest schema (``_must_exist``); it is
        neither created nor migrated here."""
        self.url = url or default_url()
        try:
            parsed = sa.engine.make_url(self.url)
        except sa.exc.ArgumentError as exc:
            raise InputError([Problem("database URL", f"cannot parse {self.url!r}: {exc}",
                                      "use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB")]) from exc
        self.dialect = parsed.get_backend_name()
        self._file: Path | None = None
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                self._file = Path(parsed.database).expanduser()
                if create:
                    _create_private(self._file)
        elif self.dialect != "postgresql":
            raise InputError([Problem("database URL", f"unsupported database {self.dialect!r}",
                                      "use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB")])
        try:
            self.engine: Engine = sa.create_engine(self.url, future=True)
        except ImportError as exc:  # the URL names a DBAPI driver that is not installed (e.g. +asyncpg)
            package = exc.name or str(exc)
            raise InputError([Problem("database URL", f"{self.safe_url} needs the Python package {package!r}, "
                                      f"which is not installed ({exc})",
                                      f"install {package} (pip install {package}), or use "
                                      "postgresql+psycopg://USER@HOST:PORT/DB (psycopg comes with enclave)")]) \
                from exc
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        default_key, default_anchor = _sidecars(parsed)
        self.journal_key: Path | None = journal_key or default_key
        self.journal_anchor: Path | None = journal_anchor or default_anchor
        self.origin: str | None = None
        """Set by local mode (``enclave.services.local``): who acts without a token on this host, e.g. "local mode,
        OS user root (uid 0)"; every journal entry made through this database then records it in its reason
        (``origin_of``)."""
        self._unchecked = not create
        """Still to check, before the first session, that the database exists (``_must_exist``)."""
        self.cache: dict[str, Any] = {}
        """Per-database values other layers keep between sessions (the journal's key, read once)."""
        # Sessions know their database, so rules that get only a session reach its journal files.
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, future=True, info={"database": self})

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends normally, rolled back if it raises."""
        session = self._sessions(info={"delegated_by": DELEGATED_BY.get()})
        try:
            if self._unchecked:
                self._must_exist()
            yield session
            session.commit()
        except sa.exc.DataError as exc:
            session.rollback()
            # A value longer than its column (PostgreSQL's VARCHAR(n); SQLite stores it whole), or out of its type's
            # range: the input's fault, said as such rather than as a traceback.
            raise InputError([Problem("value", f"a value does not fit its database column: "
                                      f"{str(exc.orig).splitlines()[0] if exc.orig else exc}",
                                      "give a shorter value (or one within its type's range)")]) from exc
        except sa.exc.IntegrityError as exc:
            session.rollback()
            # Checks run before writes, so a constraint failure here means a concurrent change won the race.
            raise Conflict(f"the change clashed with a concurrent one: {exc.orig}", where=self.safe_url,
                           fix="retry the command") from exc
        except OperationalError as exc:
            session.rollback()
            raise ExternalError(f"database {self.safe_url} failed: {exc.orig}",
                                fix="check that the database is reachable and migrated (enclave db migrate)") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @property
    def safe_url(self) -> str:
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    def alembic_config(self) -> Any:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        return config

    def migrate(self, revision: str = "heads") -> None:
        """Bring the schema up to the newest revision (alembic upgrade), in-process."""
        from alembic import command
        from alembic.util import CommandError

        config = self.alembic_config()
        try:
            with self.engine.begin() as connection:
                if self.dialect == "postgresql":
                    # Replicas starting together on one empty database (the rendered Deployment runs two) would
                    # each run the same migrations, and the loser fails on a table the winner made. A
                    # transaction-level advisory lock queues them: the first migrates and commits, which releases
                    # the lock; the next then finds the schema at its head and has nothing to do. PostgreSQL
                    # documentation, "Explicit Locking", "Advisory Locks"
                    # (https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS): a
                    # transaction-level lock "is automatically released at the end of the transaction", and
                    # pg_advisory_xact_lock waits until it can take it (functions-admin.html, "Advisory Lock
                    # Functions").
                    connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
        except OperationalError as exc:
            raise self._unreachable(exc, "cannot migrate database") from exc
        except CommandError as exc:
            unknown = self._unknown_revisions()
            if unknown:
                raise self._newer(unknown) from exc
            raise ExternalError(f"migration of {self.safe_url} failed: {exc}") from exc
        except SQLAlchemyError as exc:
            raise ExternalError(f"migration of {self.safe_url} failed: {exc}") from exc

    def _unreachable(self, exc: OperationalError, what: str = "cannot reach database") -> ExternalError:
        """The error for a database that does not answer, or refuses us (wrong password, no such database)."""
        reason = str(exc.orig).strip() if exc.orig is not None else str(exc)
        return ExternalError(f"{what} {self.safe_url}: {reason}",
                             fix="check the URL ($ENCLAVE_DB, $ENCLAVE_DB_FILE or --db), its password, and that "
                                 "the server is running")

    def _unknown_revisions(self) -> set[str]:
        """The schema revisions the database is at that this enclave's migrations do not know (empty if it cannot
        tell)."""
        from alembic.script import ScriptDirectory

        try:
            have = self.current_revisions()
        except ExternalError:
            return set()
        script = ScriptDirectory.from_config(self.alembic_config())
        known = {rev.revision for rev in script.walk_revisions()}
        return have - known

    def _newer(self, unknown: set[str]) -> InvalidTransition:
        """A database at a revision this enclave does not know: a newer enclave migrated it, and no migration of this
        one can bring it anywhere. Running this enclave's ``db migrate`` cannot help; a newer enclave can."""
        return InvalidTransition(f"{self.safe_url} is at schema {', '.join(sorted(unknown))}, which this enclave "
                                 f"({_version()}) does not know: a newer enclave migrated it",
                                 where="database ($ENCLAVE_DB, else $ENCLAVE_HOME/enclave.db)",
                                 fix="upgrade enclave to the version that migrated this database (or a later one); "
                                     "`enclave db migrate` of this version cannot downgrade it")

    def missing_file(self) -> bool:
        """A SQLite database whose file is not there (yet)."""
        return self._file is not None and not self._file.exists()

    def _must_exist(self) -> None:
        """Refuse a database that is not there yet, or not at this enclave's newest schema, instead of creating or
        migrating it: a command on a host without the enclave's database would otherwise grow an empty one and
        answer from it (docs/accounts.md: "a client host never grows an empty database by accident"). Checked at
        the first session, so a command that never reads the database needs none. SQLite would create a missing
        file on connecting, so its file is looked for first."""
        where = "database ($ENCLAVE_DB, else $ENCLAVE_HOME/enclave.db)"
        make = ("on the server host, as the OS user who is to own it: `enclave accounts bootstrap` (or "
                "`enclave db migrate`); elsewhere act through the API: `enclave login SERVER`")
        if self.missing_file():
            raise NotFound(f"there is no enclave database at {self._file}", where=where,
                           fix=f"point $ENCLAVE_DB or $ENCLAVE_HOME at it; to make one, {make}")
        have = self.current_revisions()
        from alembic.script import ScriptDirectory

        want = ScriptDirectory.from_config(self.alembic_config()).get_current_head()
        if not have:
            raise NotFound(f"{self.safe_url} holds no enclave schema", where=where, fix=make)
        unknown = have - {rev.revision for rev in ScriptDirectory.from_config(self.alembic_config()).walk_revisions()}
        if unknown:
            raise self._newer(unknown)
        if have != {want}:
            raise InvalidTransition(f"{self.safe_url} is at schema {', '.join(sorted(have))}; this enclave needs "
                                    f"{want}", where=where,
                                    fix="on the server host, as the database's owner: `enclave db migrate`")
        self._unchecked = False

    def ping(self) -> None:
        """A trivial query (``SELECT 1``) on a connection of its own: raises what the database answers instead."""
        with self.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1")).scalar_one()

    def current_revisions(self) -> set[str]:
        from alembic.runtime.migration import MigrationContext

        try:
            with self.engine.connect() as connection:
                return set(MigrationContext.configure(connection).get_current_heads())
        except OperationalError as exc:
            raise self._unreachable(exc) from exc

    def dispose(self) -> None:
        self.engine.dispose()
