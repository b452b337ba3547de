"""One source of truth: the twin's HTCondor settings are what the pool's rendered config says (issue 14 item 4).

A spec sets ``batch.htcondor``; ``enclave.batch.render`` writes it into the pool's config; the twin reads it
back through HTCondor's own config machinery. The expected values are the spec's (what the operator wrote) and,
where the spec is silent, HTCondor's defaults as htcondor/htcondor 7491a14 declares them: param_info.in
NEGOTIATOR_INTERVAL 60, NEGOTIATOR_MIN_INTERVAL 5, CLAIM_WORKLIFE 1200, JOB_START_COUNT 1, JOB_START_DELAY 0,
SUBMIT_SEND_RESCHEDULE false; matchmaker.cpp NEGOTIATOR_CYCLE_DELAY 20.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from classad2 import ClassAd

from enclave.batch import policy, render
from enclave.errors import InputError, IntegrityError, SpecError
from enclave.spec.models import EnclaveSpec
from enclave.twin.scenario import parse
from enclave.twin.sim import Sim

from .conftest import make_sim

SCENARIO = """
name: config
duration_hours: 1
prompt: null
user_batch: null
notebooks: null
drp: {backlog_jobs: 0, jobs_per_hour: 0}
"""
DEDICATED = "prompt.example.org"


def _with(spec: EnclaveSpec, **htcondor: Any) -> EnclaveSpec:
    batch = spec.batch.model_copy(update={
        "htcondor": spec.batch.htcondor.model_copy(update=htcondor),
        "submit_hosts": [*spec.batch.submit_hosts, DEDICATED]})
    return EnclaveSpec.model_validate(spec.model_copy(update={"batch": batch}).model_dump())


@pytest.fixture(scope="module")
def tuned(minimal: EnclaveSpec) -> EnclaveSpec:
    return _with(minimal, negotiator_interval=15, negotiator_cycle_delay=7, negotiator_min_interval=3,
                 claim_worklife=600, job_start_count=5, job_start_delay=2, submit_send_reschedule=True,
                 schedd_interval=20, dedicated_schedds={"prompt": DEDICATED})


def _rendered(spec: EnclaveSpec, tmp: Path) -> dict[str, str | None]:
    """What HTCondor reads from each rendered file (the check is independent of enclave.twin.config's reads)."""
    render.write(render.render_all(spec), tmp)
    got = render.read_back(tmp / "central-manager.conf", ["NEGOTIATOR_INTERVAL", "NEGOTIATOR_CYCLE_DELAY",
                                                           "NEGOTIATOR_MIN_INTERVAL"], subsystem="NEGOTIATOR")
    got |= render.read_back(tmp / "submit-login.example.org.conf", ["JOB_START_COUNT", "JOB_START_DELAY",
                                                                     "SCHEDD_INTERVAL"], subsystem="SCHEDD")
    got |= render.read_back(tmp / "submit-login.example.org.conf", ["SUBMIT_SEND_RESCHEDULE"], subsystem="SUBMIT")
    got |= render.read_back(tmp / f"submit-{DEDICATED}.conf", [render.DEDICATED_KNOB], subsystem="SCHEDD")
    got |= render.read_back(tmp / "execute-drp.conf", ["CLAIM_WORKLIFE"], subsystem="STARTD",
                            env={render.POD_POOL_ENV: "drp"})
    return got


def test_the_twin_takes_what_the_rendered_config_says(tuned: EnclaveSpec, tmp_path: Path) -> None:
    conf = _rendered(tuned, tmp_path)
    # The rendered config carries the operator's values ...
    assert conf == {"NEGOTIATOR_INTERVAL": "15", "NEGOTIATOR_CYCLE_DELAY": "7", "NEGOTIATOR_MIN_INTERVAL": "3",
                    "JOB_START_COUNT": "5", "JOB_START_DELAY": "2", "SUBMIT_SEND_RESCHEDULE": "True",
                    "SCHEDD_INTERVAL": "20", render.DEDICATED_KNOB: "prompt", "CLAIM_WORKLIFE": "600"}
    # On every schedd, the dedicated one too.
    assert render.read_back(tmp_path / f"submit-{DEDICATED}.conf", ["SCHEDD_INTERVAL"],
                            subsystem="SCHEDD") == {"SCHEDD_INTERVAL": "20"}
    # ... and the twin runs with exactly those.
    h = parse(SCENARIO, "c.yaml", spec=tuned).scenario.htcondor
    assert (h.negotiator_interval_s, h.negotiator_cycle_delay_s, h.negotiator_min_interval_s) == (15, 7, 3)
    assert (h.claim_worklife_s, h.job_start_count, h.job_start_delay_s) == (600, 5, 2)
    assert (h.schedd_interval_s, h.schedd_min_interval_s) == (20, 5)
    assert h.reschedule_on_submit == "always" and h.dedicated_schedds == ["prompt"]


def test_a_silent_config_gives_htcondors_defaults(minimal: EnclaveSpec, tmp_path: Path) -> None:
    conf = _rendered(_with(minimal), tmp_path)
    assert conf["NEGOTIATOR_INTERVAL"] == "60" and conf["NEGOTIATOR_CYCLE_DELAY"] is None
    # param_info.in gives SCHEDD_INTERVAL no default (the schedd's own 300 is in schedd.cpp).
    assert not conf["SCHEDD_INTERVAL"]
    h = parse(SCENARIO, "c.yaml", spec=minimal).scenario.htcondor
    assert (h.negotiator_interval_s, h.negotiator_cycle_delay_s, h.negotiator_min_interval_s) == (60, 20, 5)
    assert (h.claim_worklife_s, h.job_start_count, h.job_start_delay_s) == (1200, 1, 0)
    assert (h.schedd_interval_s, h.schedd_min_interval_s) == (300, 5)
    assert h.reschedule_on_submit == "schedd-idle" and h.dedicated_schedds == []


def test_a_scenario_still_overrides_the_config(tuned: EnclaveSpec) -> None:
    h = parse(SCENARIO + "htcondor: {negotiator_interval_s: 42, dedicated_schedds: []}\n", "c.yaml",
              spec=tuned).scenario.htcondor
    assert h.negotiator_interval_s == 42 and h.dedicated_schedds == []
    assert h.job_start_count == 5  # not overridden: still the config's


def test_forever_claims_and_the_dedicated_schedd_in_the_simulator(minimal: EnclaveSpec) -> None:
    spec = _with(minimal, claim_worklife=-1, dedicated_schedds={"prompt": DEDICATED})
    sim: Sim = make_sim(parse(SCENARIO, "c.yaml", spec=spec))
    # -1 is an infinite claim work life (manual, startd configuration: CLAIM_WORKLIFE)
    assert sim.worklife > 365 * 24 * 3600
    # prompt submits through a schedd of its own; the others keep the shared login host
    assert sim.schedd_of["prompt"] != sim.schedd_of["drp"] == sim.schedd_of["user"] == "login.example.org"


def test_a_pool_with_its_own_worklife(minimal: EnclaveSpec, tmp_path: Path) -> None:
    """pools.<name>.claim_worklife: the startd serving that pool reads it; the others, and the twin's unlabelled
    slots, read batch.htcondor.claim_worklife (else HTCondor's 1200). The pool a startd serves is its
    ENCLAVE_POOL, set in a standalone node's file and in a worker pod's environment, and at runtime by a relabel."""
    pools = {**minimal.pools, "drp": minimal.pools["drp"].model_copy(update={"claim_worklife": -1})}
    spec = EnclaveSpec.model_validate(_with(minimal, claim_worklife=600).model_copy(update={"pools": pools})
                                      .model_dump())
    render.write(render.render_all(spec), tmp_path)
    for pool, expected in (("drp", "-1"), ("user", "600"), ("prompt", "600")):
        assert render.read_back(tmp_path / f"execute-{pool}.conf", ["CLAIM_WORKLIFE"],
                                subsystem="STARTD") == {"CLAIM_WORKLIFE": expected}
    pod = tmp_path / "worker-pod-whole.conf"
    for pool, expected in (("drp", "-1"), ("user", "600")):
        assert render.read_back(pod, ["CLAIM_WORKLIFE"], subsystem="STARTD",
                                env={render.POD_POOL_ENV: pool}) == {"CLAIM_WORKLIFE": expected}
    # A relabel sets ENCLAVE_POOL at runtime (condor_config_val -rset); the same read with the knob overridden:
    assert render.read_back(tmp_path / "execute-drp.conf", ["CLAIM_WORKLIFE"], subsystem="STARTD",
                            env={"_CONDOR_ENCLAVE_POOL": "user"}) == {"CLAIM_WORKLIFE": "600"}
    h = parse(SCENARIO, "c.yaml", spec=spec).scenario.htcondor
    assert h.claim_worklife_s == 600 and h.pool_claim_worklife_s == {"drp": pytest.approx(400 * 24 * 3600)}
    sim: Sim = make_sim(parse(SCENARIO, "c.yaml", spec=spec))
    assert sim.worklives == {"prompt": 600, "drp": 400 * 24 * 3600, "user": 600, **(
        {"general": 600} if "general" in spec.pools else {})}


def test_check_reads_each_pools_worklife_back(minimal: EnclaveSpec, tmp_path: Path) -> None:
    """``enclave render condor --check`` (``render.verify``) reads CLAIM_WORKLIFE back as the startd of the file's
    pool would, and refuses a file where HTCondor reads another value than the spec gives that pool."""
    pools = {**minimal.pools, "drp": minimal.pools["drp"].model_copy(update={"claim_worklife": -1})}
    spec = EnclaveSpec.model_validate(minimal.model_copy(update={"pools": pools}).model_dump())
    drp, user = render.execute_node(spec, "drp"), render.execute_node(spec, "user")
    paths = render.write([drp, user], tmp_path)
    assert "CLAIM_WORKLIFE = -1," in render.verify(spec, drp, paths[0])
    assert "CLAIM_WORKLIFE = 1200," in render.verify(spec, user, paths[1])  # param_info.in's default
    paths[0].write_text(paths[0].read_text().replace(f"{render.WORKLIFE_KNOB}_drp = -1",
                                                     f"{render.WORKLIFE_KNOB}_drp = 0"))
    with pytest.raises(IntegrityError, match="CLAIM_WORKLIFE 0 .* serving pool drp, not the -1"):
        render.verify(spec, drp, paths[0])
    # Review, stop 51: the pools a file serves after a relabel (or a pod, by its environment) are read too.
    paths[1].write_text(paths[1].read_text().replace(f"{render.WORKLIFE_KNOB}_drp = -1",
                                                     f"{render.WORKLIFE_KNOB}_drp = 0"))
    with pytest.raises(IntegrityError, match="serving pool drp, not the -1"):
        render.verify(spec, user, paths[1])
    pod = render.worker_pod(spec, whole_node=True)
    [pod_path] = render.write([pod], tmp_path)
    assert "CLAIM_WORKLIFE" in render.verify(spec, pod, pod_path)
    pod_path.write_text(pod_path.read_text().replace(f"{render.WORKLIFE_KNOB}_drp = -1",
                                                     f"{render.WORKLIFE_KNOB}_drp = 0"))
    with pytest.raises(IntegrityError, match="serving pool drp, not the -1"):
        render.verify(spec, pod, pod_path)


def _drp_forever(spec: EnclaveSpec, **pools: int) -> EnclaveSpec:
    changed = {**spec.pools, **{p: spec.pools[p].model_copy(update={"claim_worklife": v}) for p, v in pools.items()}}
    return EnclaveSpec.model_validate(spec.model_copy(update={"pools": changed}).model_dump())


def test_a_scenario_sets_pool_worklives_pool_by_pool(minimal: EnclaveSpec) -> None:
    """Review, stop 51: a scenario's pool_claim_worklife_s replaced the spec's whole table, so naming one pool
    dropped DRP's forever; -1 was refused though CLAIM_WORKLIFE = -1 means forever (manual, startd
    configuration)."""
    spec = _drp_forever(minimal, drp=-1)
    h = parse(SCENARIO + "htcondor: {pool_claim_worklife_s: {user: 600}}\n", "c.yaml", spec=spec).scenario.htcondor
    assert h.pool_claim_worklife_s == {"drp": 400 * 24 * 3600, "user": 600}
    h = parse(SCENARIO + "htcondor: {pool_claim_worklife_s: {user: -1}}\n", "c.yaml", spec=spec).scenario.htcondor
    assert h.pool_claim_worklife_s["user"] == 400 * 24 * 3600
    with pytest.raises(InputError, match="-1 for forever"):
        parse(SCENARIO + "htcondor: {pool_claim_worklife_s: {user: -2}}\n", "c.yaml", spec=spec)


def test_a_pool_that_sets_the_common_worklife_keeps_it(minimal: EnclaveSpec) -> None:
    """Review, stop 51: a pool whose own value equalled the common one was left out of the table, and a scenario's
    claim_worklife_s then changed it, though the rendered file gives it its own."""
    spec = _drp_forever(minimal, drp=-1, user=1200)
    h = parse(SCENARIO + "htcondor: {claim_worklife_s: 100}\n", "c.yaml", spec=spec).scenario.htcondor
    assert h.pool_claim_worklife_s == {"drp": 400 * 24 * 3600, "user": 1200}
    assert make_sim(parse(SCENARIO + "htcondor: {claim_worklife_s: 100}\n", "c.yaml",
                          spec=spec)).worklives["prompt"] == 100


def test_a_pool_named_like_the_shared_label_is_refused(minimal: EnclaveSpec) -> None:
    """Review, stop 51: quotas' unlabelled slots carry the label ``shared``; a spec pool of that name took their
    CLAIM_WORKLIFE (and their matches)."""
    pools = {("shared" if name == "general" else name): p for name, p in minimal.pools.items()}
    if "shared" not in pools:
        pools["shared"] = minimal.pools["user"]
    data = minimal.model_copy(update={"pools": pools}).model_dump()
    data["batch"]["default_pool"] = "shared"
    spec = EnclaveSpec.model_validate(data)
    with pytest.raises(InputError, match="pools.shared"):
        parse(SCENARIO, "c.yaml", spec=spec)


def test_without_pool_worklives_one_claim_worklife_is_rendered(minimal: EnclaveSpec, tmp_path: Path) -> None:
    text = render.execute_node(_with(minimal, claim_worklife=600), "drp").text
    assert "CLAIM_WORKLIFE = 600" in text and render.WORKLIFE_KNOB not in text


def test_a_dedicated_schedd_refuses_other_pools(minimal: EnclaveSpec) -> None:
    spec = _with(minimal, dedicated_schedds={"prompt": DEDICATED})
    assert DEDICATED not in policy.pool_submit_hosts(spec, "drp")
    assert DEDICATED in policy.pool_submit_hosts(spec, "prompt")
    text = render.submit_host(spec, DEDICATED).text
    assert "SUBMIT_REQUIREMENT_EnclaveDedicatedSchedd = EnclavePool is \"prompt\"" in text
    requirement = policy.dedicated_requirement(spec, "prompt").expr
    assert ClassAd({"Req": requirement, "EnclavePool": "prompt"}).eval("Req") is True
    assert ClassAd({"Req": requirement, "EnclavePool": "drp"}).eval("Req") is False
    assert "EnclaveDedicatedSchedd" not in render.submit_host(spec, "login.example.org").text


@pytest.mark.parametrize(("dedicated", "where"), [
    ({"nightly": DEDICATED}, "batch.htcondor.dedicated_schedds.nightly"),
    ({"prompt": "elsewhere.example.org"}, "batch.htcondor.dedicated_schedds.prompt"),
    ({"prompt": DEDICATED, "drp": DEDICATED}, "batch.htcondor.dedicated_schedds"),
])
def test_a_wrong_dedicated_schedd_is_refused(minimal: EnclaveSpec, dedicated: dict[str, str], where: str) -> None:
    with pytest.raises(SpecError) as err:
        policy.validate(_with(minimal, dedicated_schedds=dedicated))
    assert where in [p.where for p in err.value.problems]


@pytest.mark.parametrize("consumption", [True, False])
def test_the_consumption_policy_is_rendered_either_way_and_the_twin_takes_it(
        minimal: EnclaveSpec, tmp_path: Path, consumption: bool) -> None:
    """enclave writes CONSUMPTION_POLICY on every startd whatever the spec says (its default, true, is not
    HTCondor's: param_info.in ``[CONSUMPTION_POLICY] default=false``), so HTCondor reads the spec's value on the
    execute nodes and the worker pods alike, and the twin runs with it; with it, the schedds' CLAIM_PARTITIONABLE_
    LEFTOVERS is off (param_info.in: default=$(NEGOTIATOR_USE_SLOT_WEIGHTS), which is true)."""
    spec = minimal if consumption else _with(minimal, consumption_policy=False)
    render.write(render.render_all(spec), tmp_path)
    want = "True" if consumption else "False"
    for name in ("execute-drp.conf", "execute-prompt.conf", "worker-pod-whole.conf", "worker-pod-partitioned.conf"):
        got = render.read_back(tmp_path / name, ["CONSUMPTION_POLICY"], subsystem="STARTD",
                               env={render.POD_POOL_ENV: "drp"})
        assert got == {"CONSUMPTION_POLICY": want}, name
    # The schedds leave the splitting to the negotiator then (HTCondor's default, true, otherwise).
    got = render.read_back(tmp_path / "submit-login.example.org.conf", ["CLAIM_PARTITIONABLE_LEFTOVERS"],
                           subsystem="SCHEDD")
    assert got == {"CLAIM_PARTITIONABLE_LEFTOVERS": "False" if consumption else "true"}
    assert parse(SCENARIO, "c.yaml", spec=spec).scenario.htcondor.consumption_policy is consumption
