"""Where enclave keeps its files on this host: $ENCLAVE_HOME, default ~/.enclave (the database, the journal's key
and anchor, the client's contexts). One definition for the database layer and the API client alike."""

from __future__ import annotations

import os
from pathlib import Path


def enclave_home() -> Path:
    return Path(os.environ.get("ENCLAVE_HOME") or Path.home() / ".enclave").expanduser()


def private_dir(directory: Path) -> None:
    """Make ``directory`` and any missing parent 0700 whatever the umask: mkdir's mode is masked by the umask, so
    each directory this call made is chmod-ed too (under umask 000 they were 0777, and any OS user could remove or
    plant files in them: the database's journal key and anchor, the client's tokens). One that exists already is
    left as it is."""
    missing: list[Path] = []
    for candidate in (directory, *directory.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    for made in reversed(missing):
        try:
            made.mkdir(mode=0o700)
        except FileExistsError:  # another process made it first: theirs, left as it is
            continue
        os.chmod(made, 0o700)
