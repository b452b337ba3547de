"""The spoofing catalogue: every attempt refused, every legitimate job runs, by classad2 evaluation."""

from __future__ import annotations

from pathlib import Path

import htcondor2
import pytest
from classad2 import ClassAd, ExprTree

from enclave.batch import policy, render, spoof
from enclave.spec.models import EnclaveSpec

from .conftest import DEV, NOTEBOOK_SCHEDD


def allowed_from_rendered(spec: EnclaveSpec, tmp: Path) -> list[str]:
    """The schedds whose submitters the collector takes, so the negotiator matches their jobs, as HTCondor reads
    the rendered ALLOW_ADVERTISE_SCHEDD (collector.cpp registers UPDATE_SUBMITTOR_AD at ADVERTISE_SCHEDD,
    htcondor/htcondor 7491a14)."""
    [path] = render.write([render.central_manager(spec)], tmp)
    value = render.read_back(path, ["ALLOW_ADVERTISE_SCHEDD"], subsystem="COLLECTOR")["ALLOW_ADVERTISE_SCHEDD"] or ""
    return [entry.strip().split("/", 1)[1] for entry in value.split(",")]


@pytest.mark.parametrize("which", ["ldf", "mini"])
def test_catalogue(which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    spec: EnclaveSpec = request.getfixturevalue(which)
    policy.load_membership(spec, spoof.catalogue_members(spec), tmp_path)
    allowed = allowed_from_rendered(spec, tmp_path)
    verdicts = [spoof.evaluate(spec, a, allowed_schedds=allowed) for a in spoof.catalogue(spec)]
    assert len(verdicts) >= 12
    for v in verdicts:
        assert v.as_expected, (v.attempt.name, v.refused_by())
        if v.attempt.legitimate:
            assert v.runs and not v.refused_by()
        else:
            assert not v.runs and v.refused_by()
    by_name = {v.attempt.name: v for v in verdicts}
    # Defence in depth: START alone refuses every attempt made through a trusted schedd, so a schedd
    # whose submit requirements were switched off would still not put the job on the wrong node.
    for v in verdicts:
        if not v.attempt.legitimate and v.attempt.trusted_schedd:
            assert not (v.start_ok and v.requirements_ok), v.attempt.name
    forged = by_name["forged-accounting-group"]
    assert forged.stored["AcctGroup"] == "group_user" and forged.stored["AccountingGroup"] == "group_user.bob"
    assert "accounting-group" in forged.start_failures
    assert by_name["forged-owner"].stored["Owner"] == "bob"
    expr = by_name["forged-pool-expression"].stored
    assert expr[spec.batch.pool_attribute] == spec.batch.default_pool  # EVALSET stored a literal
    assert "unknown pool nightly" in by_name["unknown-pool"].admission.refused[0]
    capitals = by_name["pool-in-capitals"]
    assert capitals.admission.refused and "unknown pool PROMPT" in capitals.admission.refused[0]
    assert capitals.start_failures == ("pool",)
    rogue = by_name["untrusted-schedd-forging-submit-host"]
    assert rogue.start_ok and not rogue.authorized  # only the collector's authorization stops this one
    assert by_name["untrusted-schedd"].start_failures == ("submit-host",)
    if which == "ldf":
        host = by_name["forged-submit-host"]
        assert host.start_failures == ("submit-host",)
        assert host.stored[policy.SCHEDD_ATTR] == "schedd.jupyter-lsst.svc"
        assert host.stored["GlobalJobId"] == f"{DEV}#7.0#0"  # kept: the transform holds without it
        assert by_name["legit-drp"].runs
        through = by_name["overflow-through-the-nodes-schedd"]
        assert through.start_failures == ("submit-host",) and through.requirements_ok


def rendered_transform(path: Path) -> list[tuple[str, ExprTree]]:
    """The submit transform's EVALSET rules as the schedd reads them from ``path``."""
    text = render.read_back(path, [f"JOB_TRANSFORM_{render.TRANSFORM}"],
                            subsystem="SCHEDD")[f"JOB_TRANSFORM_{render.TRANSFORM}"] or ""
    rules = [line.strip().split(" ", 2) for line in text.splitlines()]
    assert {verb for verb, _, _ in rules} == {"EVALSET"}
    return [(attr, ExprTree(expr)) for _, attr, expr in rules]


def rendered_slot(path: Path, spec: EnclaveSpec) -> ClassAd:
    """A slot of the startd configured by ``path``: its START and the tables it reads, as HTCondor reads them."""
    names = ["START", spec.batch.pool_attribute, policy.GROUPS_ATTR, policy.SCHEDDS_ATTR]
    got = render.read_back(path, names, subsystem="STARTD")
    return ClassAd({name: ExprTree(got[name] or "") for name in names})


def test_a_forged_global_job_id_does_not_move_the_submit_host(ldf: EnclaveSpec, tmp_path: Path) -> None:
    """The audit's attack: ``+GlobalJobId = "<lsst-dev01>#$(Cluster).$(Process)#0"`` with ``queue 2`` from a
    notebook. The schedd writes GlobalJobId when it makes proc 1 (qmgmt.cpp NewProcInternal), then condor_submit
    sends proc 1's ad, which carries the user's value because it differs from the cluster's (submit.cpp,
    submit_utils.cpp fold_job_into_base_ad), and ModifyAttrCheck lets it through before commit (qmgmt.cpp;
    htcondor/htcondor 7491a14). So the transform sees the forged value; the notebook schedd's rendered transform
    must still name the notebook schedd, whose jobs prompt's and DRP's startds refuse (lsst-ldf: their
    submit_hosts are the lsst-dev hosts)."""
    members = {"alice": ["prompt", "drp", "user"]}
    render.write(render.render_all(ldf, members=members, config_dir=str(tmp_path)), tmp_path)
    htcondor2.load_a_config_usermap_file(policy.GROUP_MAP, str(tmp_path / "enclave-groups.map"))
    job = ClassAd({"MyType": "Job", "Owner": "alice", "ClusterId": 7, "ProcId": 1, "QDate": 0, "JobStatus": 1,
                   "GlobalJobId": f"{DEV}#7.1#0", ldf.batch.pool_attribute: "prompt", "RequestCpus": 1,
                   "RequestMemory": 1024, "JobUniverse": 5})
    policy.apply_transform(job, rendered_transform(tmp_path / f"submit-{NOTEBOOK_SCHEDD}.conf"))
    assert job[policy.SCHEDD_ATTR] == NOTEBOOK_SCHEDD
    assert job["AcctGroup"] == "group_prompt"  # alice may use prompt: only the submit host is wrong
    for pool in ("prompt", "drp"):
        slot = rendered_slot(tmp_path / f"execute-{pool}.conf", ldf)
        assert ExprTree("MY.START").eval(slot, job) is False, pool
    # Through lsst-dev01's own schedd the same job runs on a prompt startd: it is the host, not the job, that counts.
    policy.apply_transform(job, rendered_transform(tmp_path / f"submit-{DEV}.conf"))
    assert ExprTree("MY.START").eval(rendered_slot(tmp_path / "execute-prompt.conf", ldf), job) is True


def test_the_startds_allow_daemon_is_no_bound_on_claims(ldf: EnclaveSpec, tmp_path: Path) -> None:
    """SEC_ENABLE_MATCH_PASSWORD_AUTHENTICATION defaults to true (param_info.in) and the render leaves it so: every
    startd then admits submit-side@matchsession at DAEMON level before its ALLOW lists (startd_main.cpp,
    condor_ipverify.cpp), and a schedd's claim comes over that session (dc_startd.cpp; htcondor/htcondor 7491a14).
    So the catalogue counts the collector's ALLOW_ADVERTISE_SCHEDD as the authorization, not ALLOW_DAEMON."""
    for rendered in (render.execute_node(ldf, "prompt"), render.worker_pod(ldf, whole_node=True)):
        [path] = render.write([rendered], tmp_path)
        got = render.read_back(path, ["SEC_ENABLE_MATCH_PASSWORD_AUTHENTICATION"], subsystem="STARTD",
                               env={render.POD_POOL_ENV: "prompt", render.POD_NODE_ENV: "n",
                                    render.POD_CPUS_ENV: "1", render.POD_MEMORY_ENV: "1024",
                                    render.POD_SINCE_ENV: "0"})
        assert (got["SEC_ENABLE_MATCH_PASSWORD_AUTHENTICATION"] or "").lower() == "true", path.name
    assert allowed_from_rendered(ldf, tmp_path) == ldf.batch.submit_hosts


def test_without_membership_nobody_gets_a_group(ldf: EnclaveSpec, tmp_path: Path) -> None:
    policy.load_membership(ldf, {"alice": ["user"]}, tmp_path)
    submitted = spoof.submitted_ad(spoof.catalogue(ldf)[1])
    admission = policy.schedd_admit(ldf, submitted, owner="mallory", schedd="schedd.jupyter-lsst.svc")
    assert not admission.accepted and "mallory may not submit" in admission.refused[0]
