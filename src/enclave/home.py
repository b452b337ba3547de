"""Where enclave keeps its files on this host: $ENCLAVE_HOME, default ~/.enclave (the database, the journal's key
and anchor, the client's contexts). One definition for the database layer and the API client alike."""

from __future__ import annotations

import os
from pathlib import Path


def enclave_home() -> Path:
    return Path(os.environ.get("ENCLAVE_HOME") or Path.home() / ".enclave").expanduser()
