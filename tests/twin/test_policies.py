from __future__ import annotations

import pytest

from enclave.errors import InputError
from enclave.spec.models import EnclaveSpec
from enclave.twin.layout import plan_pods
from enclave.twin.metrics import unrunnable
from enclave.twin.policies import make
from enclave.twin.scenario import parse

from .conftest import make_sim

HW = """
name: hw
duration_hours: 1
node_groups:
  - {name: kub, role: worker, count: 4, cores: 32, memory_gib: 192, local_disk_gib: 100}
layout: {batch: pods, pod_cores: %d, pod_batch_share: %s}
prompt: null
drp: {backlog_jobs: 50, jobs_per_hour: 0}
user_batch: null
notebooks: null
"""


@pytest.mark.parametrize(("size", "share", "pods", "cores"), [
    (0, "1.0", 4, 120),   # whole-node pods: 32 cores minus the 2 reserved for services
    (16, "1.0", 4, 64),   # one 16-core pod per 30 allocatable cores: 14 stranded on every node
    (8, "1.0", 12, 96),
    (4, "0.5", 15, 60),
])
def test_pod_plans_show_fragmentation(ldf: EnclaveSpec, size: int, share: str, pods: int, cores: int) -> None:
    sim = make_sim(parse(HW % (size, share), "hw.yaml", spec=ldf))
    plan = plan_pods(sim)
    assert (len(plan), sum(p.cores for p in plan)) == (pods, cores)
    if size == 4:
        # Memory follows the cores: a 4-core pod gets 4/30 of the node's allocatable 184 GiB.
        assert plan[0].mem == int(184 * 1024 * 4 / 30)


def test_small_pods_cannot_run_the_largest_drp_jobs(ldf: EnclaveSpec) -> None:
    sim = make_sim(parse(HW % (4, "0.5"), "hw.yaml", spec=ldf), "quotas")
    sim.run()
    assert unrunnable(sim).get("drp:coadd", 0) > 0
    sim8 = make_sim(parse(HW % (8, "0.5"), "hw.yaml", spec=ldf), "quotas")
    sim8.run()
    assert unrunnable(sim8) == {}


def test_unknown_policy_lists_the_known_ones() -> None:
    known = "static, quotas, quotas-mem, quotas-preempt, quotas-preempt-mem, quotas-reserved, cohorts, broker"
    with pytest.raises(InputError, match=known):
        make("fifo")
