"""Home and File Workspace directories of an account on the home file system (seed §6: the jhome fileset, with
the File Workspace a subdirectory of the home, exposed over WebDAV and VOSpace).

Onboarding creates both, owned by the account's uid and gid, readable by nobody else (0700 — the seed's
per-user areas; the WebDAV server reaches them as the user's process would). Nothing here ever deletes:
departure and expiry leave the data where it is (seed §4: a person who changes status keeps the data they had;
removing a departed person's files is an administrator's decision, not a side effect of a status change).
Quotas are the file system's (GPFS ``mmsetquota`` for jhome); enclave records each account's quota but does
not set it on the file system.
"""

from __future__ import annotations

import os
from pathlib import Path

from enclave.accounts.types import AccountView
from enclave.errors import ExternalError

MODE = 0o700


def provision(account: AccountView, root: str) -> list[Path]:
    """Create (or repair) the account's home and workspace under ``root``; returns the directories. Idempotent."""
    home, workspace = Path(account.home), Path(account.workspace)
    if not home.is_relative_to(root) or not workspace.is_relative_to(home):
        raise ExternalError(f"{account.username}'s home {home} is not under {root}", where=str(home),
                            fix="storage.home_root changed after the account was made: move the home by hand")
    made = []
    for path in (home, workspace):
        try:
            path.mkdir(mode=MODE, exist_ok=True)
            os.chown(path, account.uid, account.gid)
            path.chmod(MODE)  # mkdir's mode is masked by the umask
        except OSError as exc:
            raise ExternalError(f"cannot provision {path} for {account.username}: {exc.strerror}", where=str(path),
                                fix=f"run enclave where it may create and chown under {root} (root on the "
                                    f"storage host), or: mkdir -m 700 {path} && chown {account.uid}:{account.gid} "
                                    f"{path}") from exc
        made.append(path)
    return made
