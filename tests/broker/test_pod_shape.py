"""Worker pods fitted to the borrowing pool's jobs (issue 15, item 2: ``decide.pod_shape``).

The spec's ``pod_cores`` / ``pod_memory_mib`` (8 cores / 32 GiB: 4 GiB per core) is the shape for jobs of that
memory per core. HTCondor starts a job only where both its cores and its memory fit (HTCondor manual,
"Submitting a job": ``RequestCpus`` and ``RequestMemory`` against the slot's ``Cpus`` and ``Memory``), so a pod whose
memory per core differs from its jobs' strands one of the two. The workers of ``make_spec`` are 48 cores / 256 GiB.
"""

from __future__ import annotations

from dataclasses import replace

from enclave.broker.decide import pod_shape
from enclave.broker.window import NeedWindow
from enclave.domain.capacity import Observed, PoolDemand
from tests.broker.conftest import NOW, make_spec

GIB = 1024


def _jobs(n: int, mib: int) -> PoolDemand:
    return PoolDemand(idle_jobs=n, idle_cores=n, idle_memory_mib=n * mib)


def test_jobs_of_the_default_ratio_or_unknown_keep_the_spec_shape() -> None:
    spec = make_spec()
    assert pod_shape(spec, PoolDemand()) == (8, 32 * GIB)          # no job, nothing remembered
    assert pod_shape(spec, _jobs(10, 4 * GIB)) == (8, 32 * GIB)    # 4 GiB per core, as the spec's pod


def test_thinner_jobs_get_more_cores_on_the_same_memory() -> None:
    # 2 GiB per core (prompt's 1 core / 2 GiB): 32 GiB holds 16 of them, so 16 cores.
    assert pod_shape(make_spec(), _jobs(189, 2 * GIB)) == (16, 32 * GIB)
    # 0.5 GiB per core would be 64 cores: no wider than the widest worker (48).
    assert pod_shape(make_spec(), _jobs(10, GIB // 2)) == (48, 32 * GIB)


def test_fatter_jobs_get_more_memory_on_the_same_cores() -> None:
    # 8 GiB per core: 8 cores need 64 GiB; a pod of 32 GiB would run 4 of them on 8 cores.
    assert pod_shape(make_spec(), _jobs(189, 8 * GIB)) == (8, 64 * GIB)
    # 40 GiB per core: 320 GiB is more than a worker has (256 GiB).
    assert pod_shape(make_spec(), _jobs(4, 40 * GIB)) == (8, 256 * GIB)


def test_the_window_remembers_the_jobs_shape_for_the_next_night() -> None:
    spec = make_spec(broker={"need_window_seconds": 600})
    w = NeedWindow(spec)
    night = w.feed(Observed(now=NOW, nodes=(), startds=(), demand={"prompt": _jobs(189, 2 * GIB)}))
    assert night.demand["prompt"].job_mib_per_core == 2 * GIB
    # The next evening, before the first visit: no prompt job, but the pods are shaped for last night's.
    evening = w.feed(Observed(now=NOW + 20 * 3600, nodes=(), startds=(), demand={"prompt": PoolDemand()}))
    d = evening.demand["prompt"]
    assert d.job_mib_per_core == 2 * GIB and pod_shape(spec, d) == (16, 32 * GIB)
    # Jobs seen now win over the memory of earlier ones.
    assert pod_shape(spec, replace(d, idle_jobs=4, idle_cores=4, idle_memory_mib=4 * 8 * GIB)) == (8, 64 * GIB)
