"""Benchmark: the enclave's ClassAd policy for 100,000 idle jobs against 10,000 slots, with autoclusters.

    .venv/bin/python -m bench.batch_match [--jobs 100000] [--slots 10000] [--seed 1]

Jobs and slots are real classad2 ads from ``enclave.batch.policy`` (the START policy, job
Requirements, schedd-enforced accounting groups) for the lsst-ldf example. The matcher groups jobs
and slots into autoclusters by the attributes the expressions reference, evaluates each direction of
the symmetric match once per pair of signatures with classad2, and combines the two directions for
every (job autocluster, slot autocluster) pair. A random sample of pairs is checked against naive
pairwise ``symmetricMatch``, whose rate gives the naive cost of the same cycle.

Printed figures: autoclustering time (HTCondor's schedd does this incrementally at submit), the
negotiation cycle over autoclusters (cold: empty cache; warm: the next cycle), classad2 evaluations,
pair decisions per second, matching pairs, and the naive pairwise rate.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter

import numpy as np

from enclave.batch import policy
from enclave.batch.policy import AdView, Matcher
from enclave.domain.capacity import Startd, StartdKind
from enclave.spec.defaults import EXAMPLES
from enclave.spec.load import load
from enclave.spec.models import EnclaveSpec

DEV = ["lsst-dev01.ncsa.illinois.edu", "lsst-dev02.ncsa.illinois.edu"]
NOTEBOOK = "schedd.jupyter-lsst.svc"


def make_jobs(spec: EnclaveSpec, n: int, rng: random.Random) -> list[policy.ClassAd]:
    """Prompt (one core per detector), DRP (1–8 cores), user batch from notebooks (300 users), general."""
    jobs = []
    for i in range(n):
        r = rng.random()
        if r < 0.20:
            kw = dict(owner="prompt-svc", pool="prompt", schedd=rng.choice(DEV), request_cpus=1,
                      request_memory_mib=2048)
        elif r < 0.70:
            cpus = rng.choice([1, 2, 4, 8])
            kw = dict(owner=f"drp-prod{rng.randrange(4)}", pool="drp", schedd=rng.choice(DEV), request_cpus=cpus,
                      request_memory_mib=4096 * cpus)
        elif r < 0.95:
            kw = dict(owner=f"u{rng.randrange(300):03d}", pool="user", schedd=NOTEBOOK,
                      request_cpus=rng.choice([1, 2, 4]), request_memory_mib=rng.choice([2048, 4096, 8192]))
        else:
            kw = dict(owner=f"dev{rng.randrange(50):02d}", pool="general", schedd=rng.choice(DEV), request_cpus=1,
                      request_memory_mib=2048)
        jobs.append(policy.job_ad(spec, cluster_id=i + 1, qdate=1_700_000_000 + i, **kw))  # type: ignore[arg-type]
    return jobs


def make_slots(spec: EnclaveSpec, n: int, rng: random.Random) -> list[policy.ClassAd]:
    """Partitionable slots labelled by guaranteed share; standalone 24-core nodes and 48-core pods, part busy."""
    pools = list(spec.pools)
    weights = [spec.pools[p].guaranteed_share or 0.05 for p in pools]
    slots = []
    for i in range(n):
        pool = rng.choices(pools, weights)[0]
        pod = rng.random() < 0.3
        cores, mem = (48, 262144) if pod else (24, 131072)
        busy = rng.randrange(0, cores + 1, 4)
        sd = Startd(name=f"slot-{i:05d}", node=f"node-{i:05d}", kind=StartdKind.POD if pod else StartdKind.STANDALONE,
                    pool=pool, cores=cores, memory_mib=mem, busy_cores=busy)
        slots.append(policy.machine_ad(spec, sd, memory_mib=mem * (cores - busy) // cores))
    return slots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--slots", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=20_000, help="pairs checked against naive symmetricMatch")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    spec = load(EXAMPLES / "lsst-ldf.yaml")

    t = time.perf_counter()
    jobs = make_jobs(spec, args.jobs, rng)
    slots = make_slots(spec, args.slots, rng)
    build = time.perf_counter() - t

    # Autoclustering: one view per ad, grouped by signature (what the schedd and collector keep).
    t, c = time.perf_counter(), time.process_time()
    jviews = [AdView(ad) for ad in jobs]
    sviews = [AdView(ad) for ad in slots]
    slot_reads = frozenset().union(*(v.other for v in sviews))
    job_reads = frozenset().union(*(v.other for v in jviews))
    jkey = [(v.own_sig, v.project(slot_reads)) for v in jviews]
    skey = [(v.own_sig, v.project(job_reads)) for v in sviews]
    jclusters = Counter(jkey)
    sclusters = Counter(skey)
    jrep = {k: jviews[i] for i, k in reversed(list(enumerate(jkey)))}
    srep = {k: sviews[i] for i, k in reversed(list(enumerate(skey)))}
    autocluster, autocluster_cpu = time.perf_counter() - t, time.process_time() - c
    assert all(v.cacheable for v in (*jrep.values(), *srep.values()))

    jc = list(jclusters)
    sc = list(sclusters)
    matcher = Matcher(spec)

    def cycle() -> tuple[np.ndarray, float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        # START side: the slot's expression (by its own signature) against the job's projection.
        s_own = {k[0]: srep[k] for k in sc}
        j_proj = {k[1]: jrep[k] for k in jc}
        a = np.array([[matcher.accepts(sv, jv, slot_side=True) for jv in j_proj.values()] for sv in s_own.values()])
        # Requirements side: the job's expression against the slot's projection.
        j_own = {k[0]: jrep[k] for k in jc}
        s_proj = {k[1]: srep[k] for k in sc}
        b = np.array([[matcher.accepts(jv, sv, slot_side=False) for sv in s_proj.values()] for jv in j_own.values()])
        pos = {key: i for d in (s_own, j_proj, j_own, s_proj) for i, key in enumerate(d)}
        ja = np.array([pos[k[1]] for k in jc])
        jb = np.array([pos[k[0]] for k in jc])
        sa = np.array([pos[k[0]] for k in sc])
        sb = np.array([pos[k[1]] for k in sc])
        m = a[sa][:, ja].T & b[jb][:, sb]  # (job autoclusters) x (slot autoclusters)
        return m, time.perf_counter() - t0, time.process_time() - c0

    matrix, cold, cold_cpu = cycle()
    evaluations = matcher.evaluations
    _, warm, warm_cpu = cycle()
    jn = np.array([jclusters[k] for k in jc], dtype=np.int64)
    sn = np.array([sclusters[k] for k in sc], dtype=np.int64)
    matching_pairs = int(jn @ matrix.astype(np.int64) @ sn)
    jobs_with_a_slot = int(jn[matrix.any(axis=1)].sum())
    pairs = args.jobs * args.slots

    # Naive pairwise: the same question for a sample of pairs, and a check that autoclusters agree.
    jindex = {k: i for i, k in enumerate(jc)}
    sindex = {k: i for i, k in enumerate(sc)}
    sample = [(rng.randrange(args.jobs), rng.randrange(args.slots)) for _ in range(args.sample)]
    c = time.process_time()
    naive = [bool(slots[s].symmetricMatch(jobs[j])) for j, s in sample]
    naive_time = time.process_time() - c
    disagree = sum(naive[i] != bool(matrix[jindex[jkey[j]], sindex[skey[s]]]) for i, (j, s) in enumerate(sample))
    naive_rate = args.sample / naive_time

    print(f"jobs {args.jobs:,}  slots {args.slots:,}  pairs {pairs:,}")
    print(f"building ads (not part of a cycle):       {build:8.2f} s")
    print(f"autoclustering jobs + slots:               {autocluster:8.2f} s wall, {autocluster_cpu:.2f} s CPU "
          f"({autocluster_cpu / (args.jobs + args.slots) * 1e6:.1f} us CPU per ad; done at submit in HTCondor)")
    print(f"job autoclusters {len(jc):,}  slot autoclusters {len(sc):,}  "
          f"autocluster pairs {len(jc) * len(sc):,}")
    print(f"cycle over autoclusters, cold:             {cold:8.3f} s wall, {cold_cpu:.3f} s CPU "
          f"({evaluations:,} classad2 evaluations)")
    print(f"cycle over autoclusters, warm:             {warm:8.3f} s wall, {warm_cpu:.3f} s CPU "
          f"({matcher.evaluations - evaluations} new evaluations)")
    print(f"pair decisions per CPU second, cold cycle: {pairs / cold_cpu:,.0f}")
    print(f"pair decisions per CPU second, incl. autoclustering: {pairs / (cold_cpu + autocluster_cpu):,.0f}")
    print(f"matching (job, slot) pairs:                {matching_pairs:,} of {pairs:,}")
    print(f"jobs with at least one matching slot:      {jobs_with_a_slot:,} of {args.jobs:,}")
    print(f"naive pairwise symmetricMatch:             {naive_rate:,.0f} matches per CPU second "
          f"-> {pairs / naive_rate / 3600:,.1f} h for this cycle")
    print(f"sample of {args.sample:,} pairs: {disagree} disagreement(s) with naive evaluation")
    if disagree:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
