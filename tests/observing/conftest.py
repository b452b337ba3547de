from tests.accounts.conftest import admin, db, spec  # noqa: F401
from tests.pg import database, postgres_server  # noqa: F401
