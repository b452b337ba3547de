"""Notebook figures: capacity of the LSST LDF example, planner speed, and WebDAV throughput on loopback.

Run: .venv/bin/python -m bench.notebooks
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from webdav3.client import Client

from enclave.notebooks import webdav
from enclave.notebooks.capacity import parse_mix, plan
from enclave.spec import load
from enclave.spec.defaults import EXAMPLES


class _Account:
    def __init__(self, root: Path) -> None:
        self.username, self.uid, self.gid, self.kind, self.status = "bench", 5000, 5000, "science", "active"
        self.home_path = str(root / "bench")
        self.workspace_path = str(root / "bench" / "workspace")
        self.quota_gib = 100.0
        self.allocation_expires = None
        self.permissions = frozenset({"notebooks.spawn"})
        Path(self.workspace_path).mkdir(parents=True)


def main() -> None:
    spec = load(EXAMPLES / "lsst-ldf.yaml")
    mix = parse_mix("small=5,medium=3,large=2", spec)
    t = time.perf_counter()
    c = plan(spec, mix, target=2000)
    planned = time.perf_counter() - t
    print("capacity (examples/lsst-ldf.yaml, 17 workers x 48 cores / 256 GiB):")
    for f in c.sizes:
        print(f"  {f.size:7s} {f.users:5d} users by request, {f.users_at_limit:5d} at limits ({f.bound_by}-bound)")
    print(f"  mix 50/30/20: {c.mix.users} users; for 2000 add {c.mix.add_nodes} '{c.mix.add_group}' nodes")
    print(f"  planner with packing for 2000 users: {planned * 1000:.1f} ms")
    t = time.perf_counter()
    big = plan(spec, mix, target=20000)
    print(f"  planner for 20000 users: {(time.perf_counter() - t) * 1000:.0f} ms (add {big.mix.add_nodes} nodes)")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        account = _Account(root)
        running = webdav.start(webdav.make_app(lambda u, p, w: account, anchor=root))
        try:
            client = Client({"webdav_hostname": running.url, "webdav_login": "bench", "webdav_password": "x",
                             "webdav_root": "/bench/"})
            small = root / "small.bin"
            small.write_bytes(b"x" * 4096)
            n = 100
            t = time.perf_counter()
            for i in range(n):
                client.upload_sync(remote_path=f"f{i}.bin", local_path=str(small))
            put = (time.perf_counter() - t) / n
            t = time.perf_counter()
            for i in range(n):
                client.download_sync(remote_path=f"f{i}.bin", local_path=str(root / "out.bin"))
            get = (time.perf_counter() - t) / n
            t = time.perf_counter()
            names = client.list()
            listing = time.perf_counter() - t
            large = root / "large.bin"
            large.write_bytes(b"y" * (64 * 1024 * 1024))
            t = time.perf_counter()
            client.upload_sync(remote_path="large.bin", local_path=str(large))
            up = time.perf_counter() - t
            t = time.perf_counter()
            client.download_sync(remote_path="large.bin", local_path=str(root / "large.out"))
            down = time.perf_counter() - t
        finally:
            running.stop()
    print("webdav on 127.0.0.1 (webdavclient3, one client, quota check on every PUT):")
    print(f"  4 KiB PUT {put * 1000:.1f} ms, GET {get * 1000:.1f} ms; PROPFIND of {len(names)} entries "
          f"{listing * 1000:.1f} ms")
    print(f"  64 MiB upload {64 / up:.0f} MiB/s, download {64 / down:.0f} MiB/s")


if __name__ == "__main__":
    main()
