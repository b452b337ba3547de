"""Home and File Workspace directories of an account on the home file system (seed §6: the jhome fileset, with
the File Workspace a subdirectory of the home, exposed over WebDAV and VOSpace), and the account's quota there.

Onboarding creates both, owned by the account's uid and gid, readable by nobody else (0700 — the seed's
per-user areas; the WebDAV server reaches them as the user's process would). Nothing here ever deletes:
departure and expiry leave the data where it is (seed §4: a person who changes status keeps the data they had;
removing a departed person's files is an administrator's decision, not a side effect of a status change).

The quota (seed §13: 100 GB in jhome) is set with the tool the spec names (``storage.quota``), by uid, so the
command works where the account has no passwd entry (a Job's container); ``quota_command`` builds it, the same
argv for the local path here and the Job of ``enclave.cluster.homes``. With ``tool: none`` the quota is
recorded by enclave and advisory: nothing on the file system enforces it.

Where homes are not mounted where enclave runs (the API pods in the commons), ``enclave.cluster.homes`` does the
same through a Kubernetes Job that mounts them.
"""

from __future__ import annotations

import math
import os
import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from enclave.accounts.types import AccountView
from enclave.errors import ExternalError
from enclave.spec.models import HomeQuota, QuotaTool

MODE = 0o700
Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def quota_kib(gib: float) -> int:
    """The quota in KiB (1024-byte blocks, the unit setquota(8) reads by default), rounded up."""
    return math.ceil(gib * 1024 * 1024)


def quota_command(quota: HomeQuota, uid: int, gib: float) -> list[str] | None:
    """The argv that sets ``uid``'s block quota to ``gib`` (soft and hard limit alike, no inode limit); None
    when the spec names no tool (the quota is advisory). Each form from the tool's manual:

    * setquota(8) (quota-tools, https://man7.org/linux/man-pages/man8/setquota.8.html):
      ``setquota -u NAME BLOCK-SOFT BLOCK-HARD INODE-SOFT INODE-HARD FILESYSTEM``, block limits in 1 KiB
      blocks, 0 meaning no limit; a numeric NAME is taken as the uid.
    * xfs_quota(8) (https://man7.org/linux/man-pages/man8/xfs_quota.8.html), expert mode ``-x``, administrator
      command ``limit -u bsoft=N bhard=N ID`` with a unit suffix (k: KiB) on the mount point.
    * mmsetquota (IBM Storage Scale, https://www.ibm.com/docs/en/storage-scale/5.2.0?topic=reference-
      mmsetquota-command): ``mmsetquota Device:Fileset --user ID --block SOFT:HARD``, K meaning KiB.
    """
    kib = quota_kib(gib)
    match quota.tool:
        case QuotaTool.SETQUOTA:
            return ["setquota", "-u", str(uid), str(kib), str(kib), "0", "0", str(quota.filesystem)]
        case QuotaTool.XFS_QUOTA:
            return ["xfs_quota", "-x", "-c", f"limit -u bsoft={kib}k bhard={kib}k {uid}", str(quota.filesystem)]
        case QuotaTool.MMSETQUOTA:
            return ["mmsetquota", str(quota.filesystem), "--user", str(uid), "--block", f"{kib}K:{kib}K"]
    return None


@dataclass(frozen=True)
class Provisioned:
    """What provisioning did: the directories, and the quota — ``set``, or ``advisory`` (no tool in the spec),
    or ``submitted`` (a Job will set it)."""

    paths: tuple[str, ...]
    quota: str
    how: str
    """``local`` or the Job's ``namespace/name``."""


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=120)


def make_home(account: AccountView, root: str) -> tuple[str, ...]:
    """Create (or repair) the account's home and workspace under ``root``, owned by its uid and gid, mode 0700;
    the paths made. ExternalError when a directory cannot be made (the fix names the path); nothing is removed,
    whatever already stands there."""
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
        made.append(str(path))
    return tuple(made)


def set_quota(account: AccountView, quota: HomeQuota | None = None, run: Runner = _run) -> str:
    """Set the account's quota with the spec's tool: ``set``, or ``advisory`` where the spec names none.
    ExternalError naming the command to run by hand when the tool is missing or fails."""
    argv = quota_command(quota or HomeQuota(), account.uid, account.quota_gib)
    if argv is None:
        return "advisory"
    _set_quota(account, argv, run)
    return "set"


def by_hand(account: AccountView, quota: HomeQuota | None = None) -> str:
    """The shell commands that make the account's home as ``make_home`` and ``set_quota`` do, for an operator on the
    storage host (as root); arguments quoted for the shell."""
    paths = f"{shlex.quote(account.home)} {shlex.quote(account.workspace)}"
    steps = [f"mkdir -p -m 700 {paths}", f"chown {account.uid}:{account.gid} {paths}", f"chmod 700 {paths}"]
    argv = quota_command(quota or HomeQuota(), account.uid, account.quota_gib)
    if argv is not None:
        steps.append(shlex.join(argv))
    return " && ".join(steps)


def _set_quota(account: AccountView, argv: list[str], run: Runner) -> None:
    shown = " ".join(argv)
    try:
        done = run(argv)
    except FileNotFoundError as exc:
        raise ExternalError(f"{account.username}'s home is made, but its quota is not set: {argv[0]} is not "
                            "installed here", where="storage.quota.tool",
                            fix=f"install {argv[0]} on this host, or run on the storage host: {shown}") from exc
    except (OSError, subprocess.SubprocessError) as exc:
        raise ExternalError(f"{account.username}'s home is made, but its quota is not set: {exc}",
                            where="storage.quota", fix=f"run on the storage host: {shown}") from exc
    if done.returncode != 0:
        raise ExternalError(f"{account.username}'s home is made, but its quota is not set: {argv[0]} exited "
                            f"{done.returncode}: {(done.stderr or done.stdout).strip()[:300]}", where="storage.quota",
                            fix=f"check that quotas are enabled on {argv[-1] if argv[0] != 'mmsetquota' else argv[1]}"
                                f", then run: {shown}")
