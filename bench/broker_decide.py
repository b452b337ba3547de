"""Time ``enclave.broker.decide`` on a large enclave: 10,000 nodes and 100,000 idle jobs.

    .venv/bin/python -m bench.broker_decide [--nodes 10000] [--idle-jobs 100000] [--repeat 15]

The enclave is the LSST LDF spec scaled up: 6,000 standalone batch nodes (24 cores) and 3,997 Kubernetes
workers (48 cores) plus 3 control-plane nodes; startds are labelled at random, with random busy cores,
and a third of the workers already run HTCondor worker pods. Idle jobs (one core each) are spread over
the pools. Five cases: daytime with DRP and user backlog; the night's pre-warm (prompt pulls capacity
and borrows pods); the same night with no move limit (every move computed); and the night with notebook
spawns waiting (each needs room on one worker); and a fifth, the pre-warm again with each startd's running
jobs and each pool's runtime history reported, as the live and twin backends do, so the least-work-lost
order (``enclave.broker.victims``) is computed for every startd a pool may give. Target: < 100 ms.
Twilight for the site is computed once per night and cached; the first call's cost is reported apart.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime

from enclave.broker.decide import plan
from enclave.domain.capacity import (
    Node,
    NodeState,
    Observed,
    PendingSpawn,
    PoolDemand,
    RunningJob,
    Startd,
    StartdKind,
)
from enclave.spec.defaults import DEFAULT_SPEC
from enclave.spec.load import load
from enclave.spec.models import EnclaveSpec, NodeGroup, NodeRole


def big_spec(nodes: int, max_moves: int) -> EnclaveSpec:
    base = load(DEFAULT_SPEC)
    batch = int(nodes * 0.6)
    groups = [
        NodeGroup(name="kub-master", role=NodeRole.CONTROL_PLANE, count=3, cores=16, memory_gib=64, local_disk_gib=200),
        NodeGroup(name="kub", role=NodeRole.WORKER, count=nodes - batch - 3, cores=48, memory_gib=256,
                  local_disk_gib=400),
        NodeGroup(name="condor", role=NodeRole.BATCH_ONLY, count=batch, cores=24, memory_gib=128, local_disk_gib=400),
    ]
    cluster = base.cluster.model_copy(update={"node_groups": groups})
    broker = base.broker.model_copy(update={"max_moves_per_cycle": max_moves})
    return base.model_copy(update={"cluster": cluster, "broker": broker})


def with_jobs(o: Observed, seed: int = 2) -> Observed:
    """``o`` with what a live pool reports for least work lost: each busy core of a startd runs a one-core job
    started up to 4 h ago, and each pool's history holds 2,000 finished runtimes of 10 min to 2 h."""
    rng = random.Random(seed)
    startds = tuple(replace(s, jobs=tuple(RunningJob(1, o.now - rng.uniform(0, 4 * 3600), s.pool)
                                          for _ in range(s.busy_cores)))
                    for s in o.startds)
    history = {p: replace(d, runtimes=tuple(sorted(rng.uniform(600, 7200) for _ in range(2000))))
               for p, d in o.demand.items()}
    return replace(o, startds=startds, demand=history)


def observed(spec: EnclaveSpec, now: float, idle_jobs: int, night: bool, seed: int = 1, spawns: int = 0) -> Observed:
    rng = random.Random(seed)
    pools = list(spec.pools)
    nodes: list[Node] = []
    startds: list[Startd] = []
    for g in spec.cluster.node_groups:
        for i in range(1, g.count + 1):
            name = f"{g.name}-{i:03d}"
            mem = int(g.memory_gib * 1024)
            req = float(rng.randint(0, 24)) if g.role == NodeRole.WORKER else 0.0
            nodes.append(Node(name, g.name, g.role, g.cores, mem, NodeState.READY, req, int(req * 2048),
                              since=now - 86400))
            if g.role == NodeRole.BATCH_ONLY:
                startds.append(Startd(name, name, StartdKind.STANDALONE, rng.choice(pools), g.cores, mem,
                                      busy_cores=rng.randint(0, g.cores), since=now - rng.choice([60, 86400])))
            elif g.role == NodeRole.WORKER and i % 3 == 0:
                for k in (1, 2):
                    startds.append(Startd(f"htcondor-{name}-{k}", name, StartdKind.POD, rng.choice(pools), 8,
                                          32768, busy_cores=rng.randint(0, 8), since=now - 86400))
    weights = {"prompt": 0.3 if night else 0.0, "drp": 0.5, "user": 0.15, "general": 0.05}
    demand = {}
    for p in pools:
        idle = int(idle_jobs * weights.get(p, 0) / sum(weights.values()))
        running = sum(s.busy_cores for s in startds if s.pool == p)
        demand[p] = PoolDemand(idle_jobs=idle, idle_cores=idle, running_jobs=running, running_cores=running,
                               oldest_idle_seconds=120.0)
    # Spawns of the notebook sizes, 1-4 cores at 4 GiB per core; the largest do not fit where workers are busy.
    waiting = tuple(PendingSpawn(float(c), c * 4096) for c in (rng.choice([1, 2, 4, 4]) for _ in range(spawns)))
    return Observed(now=now, nodes=tuple(nodes), startds=tuple(startds), demand=demand,
                    notebook_pending_cores=sum(sp.cpu for sp in waiting), notebook_spawns=waiting)


def timed(spec: EnclaveSpec, o: Observed, repeat: int) -> tuple[list[float], int]:
    times = []
    n = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = len(plan(spec, o).actions)
        times.append((time.perf_counter() - t0) * 1000)
    return times, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--idle-jobs", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--spawns", type=int, default=200, help="notebook spawns waiting in the last case")
    args = ap.parse_args()

    day = datetime(2026, 6, 21, 16, 0, tzinfo=UTC).timestamp()      # Cerro Pachón daytime
    night = datetime(2026, 6, 22, 2, 0, tzinfo=UTC).timestamp()     # mid-night, pre-warm on
    limited = big_spec(args.nodes, 20)
    unlimited = big_spec(args.nodes, 100_000)
    t0 = time.perf_counter()
    plan(limited, observed(limited, night, args.idle_jobs, True))
    first = (time.perf_counter() - t0) * 1000
    n_nodes = sum(g.count for g in limited.cluster.node_groups)
    print(f"decide() on {n_nodes:,} nodes, {args.idle_jobs:,} idle jobs; {args.repeat} runs each "
          f"(first call, computing the night's twilight: {first:.0f} ms)")
    print(f"{'case':<42}{'startds':>9}{'actions':>9}{'median ms':>11}{'min ms':>9}{'max ms':>9}")
    for label, spec, now, is_night, spawns, jobs in (
            ("day, DRP + user backlog, limit 20", limited, day, False, 0, False),
            ("night pre-warm, limit 20", limited, night, True, 0, False),
            ("night pre-warm, no move limit", unlimited, night, True, 0, False),
            (f"night, {args.spawns} spawns wait, no limit", unlimited, night, True, args.spawns, False),
            ("night pre-warm, jobs reported, limit 20", limited, night, True, 0, True)):
        o = observed(spec, now, args.idle_jobs, is_night, spawns=spawns)
        o = with_jobs(o) if jobs else o
        times, n = timed(spec, o, args.repeat)
        print(f"{label:<42}{len(o.startds):>9,}{n:>9,}{statistics.median(times):>11.1f}{min(times):>9.1f}"
              f"{max(times):>9.1f}")


if __name__ == "__main__":
    main()
