"""Every test runs with its own enclave home: no test reads or writes the operator's ``~/.enclave`` (its database,
journal key and anchor, client config) or is steered by an ``$ENCLAVE_*`` variable of the shell that runs it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

STEERING = ("ENCLAVE_DB", "ENCLAVE_SPEC", "ENCLAVE_AS", "ENCLAVE_JOURNAL_KEY", "ENCLAVE_BACKUP_KEY",
            "ENCLAVE_HUB_URL", "ENCLAVE_HUB_TOKEN")


@pytest.fixture(autouse=True, scope="session")
def _own_enclave_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    saved = {name: os.environ.get(name) for name in ("ENCLAVE_HOME", *STEERING)}
    home = tmp_path_factory.mktemp("enclave-home")
    os.environ["ENCLAVE_HOME"] = str(home)
    for name in STEERING:
        os.environ.pop(name, None)
    yield home
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
