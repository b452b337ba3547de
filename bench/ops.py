"""Operations benchmark: upgrade planning, the security benchmark, and a real etcd backup round trip.

    .venv/bin/python -m bench.ops [--keys 20000]

Starts a throw-away etcd on loopback (Debian etcd-server), fills it through etcd's JSON gateway, then
times snapshot+archive, verify and restore into a fresh member, and compares every key.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import tempfile
import time
from pathlib import Path

import httpx

from enclave.ops import backup, security
from enclave.ops.etcd import EtcdServer
from enclave.ops.upgrade import components_from_spec, plan_upgrade
from enclave.spec.defaults import DEFAULT_SPEC
from enclave.spec.load import load


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def bench_plan() -> None:
    spec = load(DEFAULT_SPEC)
    current = components_from_spec(spec)
    t0 = time.perf_counter()
    n = 50
    for _ in range(n):
        plan = plan_upgrade(current, today=dt.date(2026, 11, 25))
    ms = (time.perf_counter() - t0) / n * 1000
    checks = sum(len(p.checks) for s in plan.steps for p in s.phases)
    print(f"upgrade plan 1.9.3 → {plan.target}: {len(plan.steps)} steps, {checks} skew checks, {ms:.1f} ms per plan")


def bench_security(pods: int) -> None:
    _, checks = security.shipped_checks()
    objs = [(f"bench#{i}", {"apiVersion": "apps/v1", "kind": "Deployment",
                            "metadata": {"name": f"d{i}", "namespace": "qserv"},
                            "spec": {"template": {"spec": {
                                "containers": [{"name": "c", "image": f"registry.lsst.local/x{i}@sha256:" + "a" * 64,
                                                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}],
                                "volumes": [{"name": "h", "hostPath": {"path": f"/jhome/u{i}"}}]}}}})
            for i in range(pods)]
    t0 = time.perf_counter()
    report = security.run(checks, objects=objs, params={"registry": "registry.lsst.local", "home_root": "/jhome"})
    s = time.perf_counter() - t0
    print(f"security benchmark: {len(checks)} checks over {pods} workloads in {s:.2f} s "
          f"({pods * len(checks) / s:,.0f} check×object/s); {report.count('fail')} fail, {report.count('warn')} warn")


def bench_backup(keys: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-ops-") as tmp:
        root = Path(tmp)
        src = EtcdServer(root / "src" / "data")
        src.data_dir.parent.mkdir()
        with src:
            t0 = time.perf_counter()
            with httpx.Client(base_url=src.member.client_url, timeout=30) as http:
                for start in range(0, keys, 100):  # etcd allows at most 128 operations per transaction
                    ops = [{"request_put": {"key": _b64(f"/registry/pods/ns{i % 50}/p{i:06d}"),
                                            "value": _b64(f'{{"cpu": {i % 4}, "user": "u{i}"}}' * 4)}}
                           for i in range(start, min(start + 100, keys))]
                    http.post("/v3/kv/txn", json={"success": ops}).raise_for_status()
            fill = time.perf_counter() - t0
            before = src.client.get_all()
            (root / "k8s" / "pki").mkdir(parents=True)
            (root / "k8s" / "pki" / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
            (root / "k8s" / "admin.conf").write_text("apiVersion: v1\nkind: Config\n")
            t0 = time.perf_counter()
            m = backup.create(src.client, root / "b.tar.gz", key=root / "backup.key", kubernetes_dir=root / "k8s",
                              cluster="bench")
            create = time.perf_counter() - t0
        size = (root / "b.tar.gz").stat().st_size
        t0 = time.perf_counter()
        backup.verify(root / "b.tar.gz", key=root / "backup.key")
        verify = time.perf_counter() - t0
        fresh = EtcdServer(root / "dst" / "data", name="restored")
        fresh.data_dir.parent.mkdir()
        t0 = time.perf_counter()
        backup.restore(root / "b.tar.gz", fresh.data_dir, fresh.member, key=root / "backup.key")
        restore = time.perf_counter() - t0
        with fresh:
            same = fresh.client.get_all() == before
    print(f"etcd backup: {len(before)} keys (filled in {fill:.1f} s), snapshot {m.etcd.total_size / 1e6:.1f} MB, "
          f"archive {size / 1e6:.2f} MB; create {create:.2f} s, verify {verify:.2f} s, restore {restore:.2f} s; "
          f"every key identical after restore: {same}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=20000)
    ap.add_argument("--pods", type=int, default=2000)
    args = ap.parse_args()
    bench_plan()
    bench_security(args.pods)
    bench_backup(args.keys)


if __name__ == "__main__":
    main()
