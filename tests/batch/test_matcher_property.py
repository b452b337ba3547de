"""Property: the autocluster matcher always gives the answer of naive pairwise symmetricMatch."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enclave.batch.policy import Matcher, job_ad, machine_ad
from enclave.domain.capacity import StartdKind
from enclave.spec.defaults import EXAMPLES
from enclave.spec.load import load

from .conftest import DEV, NOTEBOOK_SCHEDD, startd

SPEC = load(EXAMPLES / "lsst-ldf.yaml")
POOLS = [*SPEC.pools, "nightly"]

jobs = st.builds(
    lambda owner, pool, schedd, group, cpus, mem, req: job_ad(
        SPEC, owner=owner, pool=pool, schedd=schedd, accounting_group=group, request_cpus=cpus,
        request_memory_mib=mem, requirements=req),
    st.sampled_from(["alice", "bob", "prompt-svc"]), st.sampled_from(POOLS),
    st.sampled_from([DEV, NOTEBOOK_SCHEDD, "rogue.example.org"]),
    st.one_of(st.none(), st.sampled_from(["group_prompt", "group_user", "group_x"])),
    st.integers(1, 32), st.sampled_from([512, 2048, 65536, 200000]),
    st.one_of(st.none(), st.sampled_from(["TARGET.Cpus >= 8", "TARGET.EnclaveStartdKind == \"pod\"",
                                          "MY.RequestCpus <= TARGET.Cpus && TARGET.Memory > 1000"])),
)
slots = st.builds(
    lambda pool, cores, busy, kind: machine_ad(SPEC, startd(pool, cores=cores, busy=min(busy, cores), kind=kind)),
    st.sampled_from(list(SPEC.pools)), st.sampled_from([8, 24, 48]), st.integers(0, 48),
    st.sampled_from(list(StartdKind)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(jobs, min_size=1, max_size=6), st.lists(slots, min_size=1, max_size=6))
def test_matcher_equals_symmetric_match(js: list, ss: list) -> None:  # type: ignore[type-arg]
    matcher = Matcher(SPEC)
    views = [(j, matcher.view(j)) for j in js], [(s, matcher.view(s)) for s in ss]
    for _ in range(2):  # second pass answers from the cache
        for j, jv in views[0]:
            for s, sv in views[1]:
                assert matcher.match(jv, sv) is bool(s.symmetricMatch(j))
