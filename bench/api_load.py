"""Load on the control-plane API over loopback: requests/s and latency percentiles for a read endpoint
(GET /api/v1/pools) and a state-changing one (POST /api/v1/accounts: onboard, role-checked and journaled).

    .venv/bin/python -m bench.api_load [--reads 3000] [--writes 600] [--clients 8]

The server runs in its own process (uvicorn, one worker, SQLite in a temp dir, no broker loop) so the load
client's threads do not share its interpreter. Every request re-verifies its bearer token in the database,
as the real service does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx


def serve(db_url: str, port: int) -> None:
    import uvicorn

    from enclave.api.app import create_app
    from enclave.api.service import Service
    from enclave.db import Database
    from enclave.services.factory import Factory
    from enclave.spec import load
    from enclave.spec.defaults import DEFAULT_SPEC

    service = Service(Factory(load(DEFAULT_SPEC), Database(db_url)))
    uvicorn.run(create_app(service), host="127.0.0.1", port=port, log_level="warning", access_log=False,
                lifespan="off")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def drive(base: str, token: str, total: int, clients: int,
          request: Callable[[httpx.Client, int], httpx.Response]) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    counter = iter(range(total))

    def worker() -> None:
        nonlocal failures
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                started = time.perf_counter()
                r = request(client, i)
                took = time.perf_counter() - started
                with lock:
                    latencies.append(took)
                    if r.status_code >= 300:
                        failures += 1

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, latencies, failures


def report(name: str, wall: float, latencies: list[float], failures: int) -> None:
    ms = [x * 1000 for x in latencies]
    print(f"{name:<34} {len(ms):>6} req  {len(ms) / wall:>8.1f} req/s  p50 {statistics.median(ms):7.1f} ms  "
          f"p99 {percentile(ms, 99):7.1f} ms  max {max(ms):7.1f} ms  non-2xx {failures}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reads", type=int, default=3000)
    parser.add_argument("--writes", type=int, default=600)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--serve", nargs=2, metavar=("DB_URL", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return

    from enclave.api.server import free_port
    from enclave.db import Database
    from enclave.services.factory import Factory
    from enclave.spec import load
    from enclave.spec.defaults import DEFAULT_SPEC

    workdir = Path(tempfile.mkdtemp(prefix="enclave-bench-"))
    db_url = f"sqlite:///{workdir / 'enclave.db'}"
    db = Database(db_url)
    db.migrate()
    token = Factory(load(DEFAULT_SPEC), db).ensure_accounts("admin")
    assert token is not None
    db.dispose()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "bench.api_load", "--serve", db_url, str(port)],
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the API server did not come up")
            time.sleep(0.1)
        print(f"enclave API on {base} (uvicorn, 1 process, SQLite), {args.clients} concurrent clients, "
              f"{os.cpu_count()} CPUs shared with the client")
        # Warm-up: imports, first connections, prepared statements.
        drive(base, token, 50, 2, lambda c, i: c.get("/api/v1/pools"))
        report("GET  /api/v1/pools (read)", *drive(base, token, args.reads, args.clients,
                                                   lambda c, i: c.get("/api/v1/pools")))
        report("POST /api/v1/accounts (onboard)", *drive(
            base, token, args.writes, args.clients,
            lambda c, i: c.post("/api/v1/accounts", json={
                "username": f"load{i:06d}", "name": f"Load Test {i}", "email": f"load{i}@example.org",
                "kind": "science", "reason": "load benchmark", "allocation": {"proposal_id": "BENCH"}})))
        verify = httpx.get(f"{base}/api/v1/journal/verify", headers={"Authorization": f"Bearer {token}"},
                           timeout=60).json()
        print(f"journal after the run: {verify['entries']} entries, hash chain verified")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
