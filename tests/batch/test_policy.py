"""The START policy, machine and job ads, and the autocluster matcher, by real classad2 evaluation."""

from __future__ import annotations

import pytest
from classad2 import ExprTree

from enclave.batch import policy
from enclave.batch.policy import JobShape, Matcher, SlotShape, job_ad, machine_ad
from enclave.domain.capacity import StartdKind
from enclave.errors import InputError, NotFound, SpecError
from enclave.spec.models import EnclaveSpec

from .conftest import DEV, NOTEBOOK_SCHEDD, startd


def test_start_is_one_expression_for_every_pool(ldf: EnclaveSpec) -> None:
    start = policy.start_expr(ldf)
    for pool in ldf.pools:
        assert machine_ad(ldf, startd(pool)).lookup("Start") == start
    assert [c.name for c in policy.start_clauses(ldf)] == ["pool", "accounting-group", "accounting-user",
                                                            "submit-host"]


def test_machine_ad_carries_label_tables_and_free_resources(ldf: EnclaveSpec) -> None:
    ad = machine_ad(ldf, startd("drp", busy=20, kind=StartdKind.POD))
    assert ad["EnclavePool"] == "drp"
    assert ad["Cpus"] == 4 and ad["TotalSlotCpus"] == 24
    assert ad["EnclaveStartdKind"] == "pod"
    assert ExprTree("EnclavePoolGroups[EnclavePool]").eval(ad) == "group_drp"
    assert ExprTree("EnclavePoolSchedds[EnclavePool]").eval(ad) == [DEV, "lsst-dev02.ncsa.illinois.edu"]


def test_pool_attribute_name_comes_from_the_spec(mini: EnclaveSpec) -> None:
    spec = mini.model_copy(update={"batch": mini.batch.model_copy(update={"pool_attribute": "LsstProcessing"})})
    m = machine_ad(spec, startd("prompt"))
    j = job_ad(spec, owner="alice", pool="prompt", schedd="login.example.org")
    assert m["LsstProcessing"] == "prompt" and "EnclavePool" not in m
    assert Matcher(spec).matches(j, m)


@pytest.mark.parametrize("pool", ["prompt", "drp", "user", "general"])
def test_legitimate_job_matches_its_pool_and_a_latency_pool_every_pool(ldf: EnclaveSpec, pool: str) -> None:
    # The LDF spec gives prompt alone a latency objective: its jobs overflow onto every pool's slots, the
    # others' run on their own pool's only.
    assert policy.overflow_pools(ldf) == ("prompt",)
    job = job_ad(ldf, owner="alice", pool=pool, schedd=DEV)
    for other in ldf.pools:
        ad = machine_ad(ldf, startd(other))
        assert ad.symmetricMatch(job) is (other == pool or pool == "prompt"), (pool, other)


def test_an_overflowing_job_still_needs_its_own_group_and_schedd(ldf: EnclaveSpec) -> None:
    drp_slot = machine_ad(ldf, startd("drp"))
    # A prompt-labelled job whose forced group is the user pool's (an owner outside prompt's membership) is
    # refused on a DRP slot as on a prompt one: the group clause reads the job's own pool's group.
    forged = job_ad(ldf, owner="bob", pool="prompt", schedd=DEV, accounting_group="group_user")
    assert not drp_slot.symmetricMatch(forged)
    failing = [c.name for c in policy.start_clauses(ldf) if c.expr.eval(scope=drp_slot, target=forged) is not True]
    assert failing == ["accounting-group"]
    # Through a schedd prompt does not trust: refused by the submit-host clause on any slot.
    rogue = job_ad(ldf, owner="alice", pool="prompt", schedd=NOTEBOOK_SCHEDD)
    assert NOTEBOOK_SCHEDD not in policy.pool_submit_hosts(ldf, "prompt")
    failing = [c.name for c in policy.start_clauses(ldf) if c.expr.eval(scope=drp_slot, target=rogue) is not True]
    assert failing == ["submit-host"]


def test_without_a_latency_pool_no_job_leaves_its_pool(ldf: EnclaveSpec) -> None:
    pools = {n: p.model_copy(update={"latency_objective": None}) for n, p in ldf.pools.items()}
    spec = ldf.model_copy(update={"pools": pools})
    assert policy.overflow_pools(spec) == ()
    job = job_ad(spec, owner="alice", pool="prompt", schedd=DEV)
    assert not machine_ad(spec, startd("drp")).symmetricMatch(job)
    assert machine_ad(spec, startd("prompt")).symmetricMatch(job)


def test_resources_must_fit(ldf: EnclaveSpec) -> None:
    small = machine_ad(ldf, startd("user", cores=4, memory_mib=8192))
    assert small.symmetricMatch(job_ad(ldf, owner="bob", pool="user", schedd=NOTEBOOK_SCHEDD, request_cpus=4))
    assert not small.symmetricMatch(job_ad(ldf, owner="bob", pool="user", schedd=NOTEBOOK_SCHEDD, request_cpus=5))
    assert not small.symmetricMatch(job_ad(ldf, owner="bob", pool="user", schedd=NOTEBOOK_SCHEDD,
                                           request_memory_mib=9000))


def test_pool_submit_hosts_default_to_all(ldf: EnclaveSpec, mini: EnclaveSpec) -> None:
    assert policy.pool_submit_hosts(ldf, "prompt") == (DEV, "lsst-dev02.ncsa.illinois.edu")
    assert NOTEBOOK_SCHEDD in policy.pool_submit_hosts(ldf, "user")
    assert policy.pool_submit_hosts(mini, "prompt") == ("login.example.org",)
    assert policy.accounting_group(mini, "drp") == "group_drp"


def test_bad_inputs_are_typed_errors(ldf: EnclaveSpec) -> None:
    with pytest.raises(NotFound, match="pool 'nightly'"):
        machine_ad(ldf, startd("nightly"))
    with pytest.raises(InputError, match="request_cpus"):
        job_ad(ldf, owner="alice", pool="user", schedd=DEV, request_cpus=0)
    with pytest.raises(InputError, match="not a user name"):
        job_ad(ldf, owner="al ice", pool="user", schedd=DEV)
    with pytest.raises(InputError, match="not a valid ClassAd expression"):
        job_ad(ldf, owner="alice", pool="user", schedd=DEV, requirements="TARGET.Cpus >= (")


def test_batch_check_finds_foreign_submit_host(ldf: EnclaveSpec) -> None:
    prompt = ldf.pools["prompt"].model_copy(update={"submit_hosts": ["rogue.example.org"]})
    spec = ldf.model_copy(update={"pools": {**ldf.pools, "prompt": prompt}})
    with pytest.raises(SpecError, match="rogue.example.org"):
        policy.validate(spec)
    assert policy.validate(ldf) is ldf


def test_matcher_agrees_with_direct_evaluation_and_caches(ldf: EnclaveSpec) -> None:
    matcher = Matcher(ldf)
    slots = [machine_ad(ldf, startd(p, name=f"n{i}", cores=c)) for i, (p, c) in
             enumerate((p, c) for p in ldf.pools for c in (1, 8, 24) for _ in range(3))]
    jobs = [job_ad(ldf, owner=o, pool=p, schedd=s, request_cpus=r, cluster_id=k)
            for k, (o, p, s, r) in enumerate((o, p, s, r) for o in ("alice", "bob") for p in ldf.pools
                                             for s in (DEV, NOTEBOOK_SCHEDD) for r in (1, 8) for _ in range(2))]
    jv = [matcher.view(j) for j in jobs]
    sv = [matcher.view(s) for s in slots]
    for j, v in zip(jobs, jv, strict=True):
        for s, w in zip(slots, sv, strict=True):
            assert matcher.match(v, w) is bool(s.symmetricMatch(j))
    pairs = len(jobs) * len(slots)
    # START is evaluated once per (job credentials: 2 owners x 4 pools x 2 schedds) x (slot label: 4 pools),
    # and Requirements only where START passed, once per (job size: pool x 2 sizes) x (slot: its pool's 3
    # sizes, and a prompt job's, which overflows, on each other pool's 3 sizes too). ClusterId, GlobalJobId and
    # slot names are never significant.
    assert matcher.evaluations == matcher.autoclusters == 16 * 4 + 4 * 2 * 3 + 2 * 3 * 3
    assert matcher.evaluations < pairs / 20
    assert matcher.lookups == pairs


def test_matcher_separates_what_expressions_reference(ldf: EnclaveSpec) -> None:
    matcher = Matcher(ldf)
    slot = matcher.view(machine_ad(ldf, startd("user")))
    a = matcher.view(job_ad(ldf, owner="alice", pool="user", schedd=DEV))
    forged = matcher.view(job_ad(ldf, owner="alice", pool="user", schedd=DEV, accounting_group="group_prompt"))
    assert matcher.match(a, slot) and not matcher.match(forged, slot)
    custom = matcher.view(job_ad(ldf, owner="alice", pool="user", schedd=DEV, requirements="TARGET.Cpus > 100"))
    assert not matcher.match(custom, slot)


def test_expression_attribute_reading_target_is_evaluated_uncached(ldf: EnclaveSpec) -> None:
    matcher = Matcher(ldf)
    job = job_ad(ldf, owner="alice", pool="user", schedd=DEV, extra={"AcctGroup": ExprTree("TARGET.NoSuch")})
    slot = machine_ad(ldf, startd("user"))
    assert not matcher.matches(job, slot)
    assert matcher.autoclusters == 0 and matcher.evaluations == 1


def test_can_run_with_shapes(ldf: EnclaveSpec) -> None:
    matcher = Matcher(ldf)
    job = JobShape(owner="carol", pool="prompt", schedd=DEV, request_cpus=2)
    assert matcher.can_run(job, SlotShape(pool="prompt", cpus=2, memory_mib=4096))
    assert not matcher.can_run(job, SlotShape(pool="prompt", cpus=1, memory_mib=4096))
    assert matcher.can_run(job, SlotShape(pool="drp", cpus=8, memory_mib=4096))  # prompt overflows
    assert not matcher.can_run(JobShape(owner="carol", pool="drp", schedd=DEV),
                               SlotShape(pool="prompt", cpus=8, memory_mib=4096))
    assert not matcher.can_run(JobShape(owner="carol", pool="prompt", schedd=NOTEBOOK_SCHEDD),
                               SlotShape(pool="prompt", cpus=8, memory_mib=4096))
    before = matcher.evaluations
    for _ in range(1000):
        matcher.can_run(job, SlotShape(pool="prompt", cpus=2, memory_mib=4096))
    assert matcher.evaluations == before


def test_membership_map_and_its_errors(ldf: EnclaveSpec) -> None:
    text = policy.membership_map(ldf, {"alice": ["drp", "user"], "*": ["general"]})
    assert text.splitlines()[1:] == ["* alice group_drp,group_user", "* /.*/ group_general"]
    assert policy.membership_map(ldf).splitlines()[1:] == ["* /.*/ group_general"]
    with pytest.raises(InputError, match="not a user name"):
        policy.membership_map(ldf, {"bad name": ["user"]})
    with pytest.raises(InputError, match="unknown or no pools"):
        policy.membership_map(ldf, {"alice": []})


def test_static_labels_follow_guaranteed_shares(ldf: EnclaveSpec, mini: EnclaveSpec) -> None:
    from collections import Counter

    labels = policy.static_labels(ldf)
    assert len(labels) == 40 and all(n.startswith("condor-") for n in labels)
    assert Counter(labels.values()) == {"prompt": 10, "drp": 16, "user": 4, "general": 10}
    assert Counter(policy.static_labels(mini).values()) == {"prompt": 1, "drp": 1}


def test_empty_pool_submit_hosts_is_a_spec_error(ldf: EnclaveSpec) -> None:
    user = ldf.pools["user"].model_copy(update={"submit_hosts": []})
    with pytest.raises(SpecError, match="no job could ever run"):
        policy.validate(ldf.model_copy(update={"pools": {**ldf.pools, "user": user}}))


def test_line_breaks_in_values_cannot_forge_a_signature(ldf: EnclaveSpec) -> None:
    """printOld writes a string's line break raw; such ads are fingerprinted attribute by attribute."""
    matcher = Matcher(ldf)
    slot = matcher.view(machine_ad(ldf, startd("user")))
    honest = job_ad(ldf, owner="bob", pool="user", schedd=NOTEBOOK_SCHEDD, extra={"Note": "x\nRequestCpus = 1"})
    honest["RequestCpus"] = 99
    plain = job_ad(ldf, owner="bob", pool="user", schedd=NOTEBOOK_SCHEDD)
    assert matcher.match(matcher.view(plain), slot)
    assert not matcher.match(matcher.view(honest), slot)
    assert matcher.view(honest).project(frozenset({"requestcpus"})) != matcher.view(plain).project(
        frozenset({"requestcpus"}))
