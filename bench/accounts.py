"""Onboard 10,000 accounts and render their Kubernetes access; report time and peak memory.

    .venv/bin/python -m bench.accounts [--accounts 10000] [--batch 1000] [--db URL]

Onboarding goes through the real service (role check, validation, one journal entry per account), in
transactions of --batch accounts (``onboard_many``); a further sample is onboarded one transaction per
account (``onboard``), the path the CLI and API take, to give its per-account cost. Access is then
rendered from the database and written as YAML, and the journal chain is verified. Default database: a
fresh SQLite file in a temporary directory. Peak memory is the process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from enclave.access.render import render_access, write_yaml
from enclave.accounts import lifecycle, storage
from enclave.accounts.types import AccountKind
from enclave.db import Database
from enclave.journal import verify
from enclave.spec.defaults import DEFAULT_SPEC
from enclave.spec.load import load
from enclave.spec.models import Role

STAFF_EVERY = 10
"""One account in ten is staff (developers in one or two namespaces; a few admins); the rest science."""


def cohort(n: int, namespaces: list[str]) -> list[lifecycle.NewAccount]:
    out = []
    for i in range(n):
        if i % STAFF_EVERY == 0:
            roles: tuple[Role, ...] = (Role.DEVELOPER,)
            if i % (STAFF_EVERY * 50) == 0:
                roles += (Role.K8S_SERVICE_ADMIN,)
            elif i % (STAFF_EVERY * 70) == 0:
                roles += (Role.SECURITY,)
            ns = (namespaces[i % len(namespaces)],) + ((namespaces[(i + 1) % len(namespaces)],) if i % 3 == 0 else ())
            out.append(lifecycle.NewAccount(f"staff{i:05d}", f"Staff {i}", f"staff{i}@lsst.org", AccountKind.STAFF,
                                          roles=roles, namespaces=ns))
        else:
            alloc = lifecycle.Allocation(f"P-{i % 97}", quota_gib=100 + (i % 5) * 100) if i % 4 == 0 else None
            out.append(lifecycle.NewAccount(f"sci{i:05d}", f"Scientist {i}", f"sci{i}@uni.edu", AccountKind.SCIENCE,
                                          allocation=alloc))
    return out


def peak_mib() -> float:
    # ru_maxrss is KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--single", type=int, default=200, help="extra accounts onboarded one per transaction")
    parser.add_argument("--db", default=None, help="database URL (default: fresh SQLite in a temp dir)")
    args = parser.parse_args(argv)

    spec = load(DEFAULT_SPEC)
    with tempfile.TemporaryDirectory(prefix="enclave-bench-") as tmp:
        db = Database(args.db or f"sqlite:///{Path(tmp) / 'bench.db'}")
        db.migrate()
        with db.session() as s:
            lifecycle.bootstrap(s, spec, "root", name="Bench Root", email="root@lsst.org")
        people = cohort(args.accounts, list(spec.cluster.namespaces))

        t0 = time.perf_counter()
        for i in range(0, len(people), args.batch):
            with db.session() as s:
                lifecycle.onboard_many(s, "root", spec, people[i:i + args.batch], reason="bench cohort")
        t_onboard = time.perf_counter() - t0

        t0 = time.perf_counter()
        for i in range(args.single):
            with db.session() as s:
                lifecycle.onboard(s, "root", spec, f"one{i:05d}", name="One", email=f"one{i}@uni.edu",
                                kind=AccountKind.SCIENCE, reason="bench single")
        t_single = time.perf_counter() - t0

        t0 = time.perf_counter()
        with db.session() as s:
            subjects = storage.subjects(s)
        objects = render_access(spec, subjects)
        t_render = time.perf_counter() - t0
        t0 = time.perf_counter()
        files = write_yaml(objects, Path(tmp) / "access")
        t_write = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in files)

        t0 = time.perf_counter()
        with db.session() as s:
            entries = verify(s)
        t_verify = time.perf_counter() - t0
        db.dispose()

    total = t_onboard + t_render + t_write
    n_objects = sum(len(v) for v in objects.values())
    bindings = sum(1 for v in objects.values() for o in v if o["kind"] == "RoleBinding")
    print(f"database            {db.dialect}")
    print(f"accounts onboarded  {args.accounts} in batches of {args.batch}: {t_onboard:.2f} s "
          f"({t_onboard / args.accounts * 1000:.2f} ms/account, journaled)")
    print(f"one per transaction {args.single}: {t_single:.2f} s ({t_single / max(args.single, 1) * 1000:.2f} "
          "ms/account)")
    print(f"access rendered     {len(subjects)} accounts -> {n_objects} objects ({bindings} RoleBindings): "
          f"{t_render:.2f} s")
    print(f"YAML written        {len(files)} files, {size / 1e6:.1f} MB: {t_write:.2f} s")
    print(f"journal verified    {entries} entries: {t_verify:.2f} s")
    print(f"total (onboard + render + write)  {total:.2f} s   (target < 30 s)")
    print(f"peak memory (max RSS)             {peak_mib():.0f} MiB (target < 500 MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
