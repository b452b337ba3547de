"""The spoofing catalogue: every attempt refused, every legitimate job runs, by classad2 evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest

from enclave.batch import policy, render, spoof
from enclave.spec.models import EnclaveSpec


def allowed_from_rendered(spec: EnclaveSpec, pool: str, tmp: Path) -> list[str]:
    """The schedds a startd of ``pool`` lets claim it, as HTCondor reads its rendered ALLOW_DAEMON."""
    path = tmp / f"execute-{pool}.conf"
    render.write([render.execute_node(spec, pool)], tmp)
    value = render.read_back(path, ["ALLOW_DAEMON"], subsystem="STARTD")["ALLOW_DAEMON"] or ""
    return [entry.strip().split("/", 1)[1] for entry in value.split(",")]


@pytest.mark.parametrize("which", ["ldf", "mini"])
def test_catalogue(which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    spec: EnclaveSpec = request.getfixturevalue(which)
    policy.load_membership(spec, spoof.catalogue_members(spec), tmp_path)
    allowed = {p: allowed_from_rendered(spec, p, tmp_path) for p in spec.pools}
    verdicts = [spoof.evaluate(spec, a, allowed_schedds=allowed[a.target_pool]) for a in spoof.catalogue(spec)]
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
    rogue = by_name["untrusted-schedd-forging-submit-host"]
    assert rogue.start_ok and not rogue.authorized  # only the startd's authorization stops this one
    assert by_name["untrusted-schedd"].start_failures == ("submit-host",)
    if which == "ldf":
        host = by_name["forged-submit-host"]
        assert host.start_failures == ("submit-host",)
        assert host.stored[policy.SCHEDD_ATTR] == "schedd.jupyter-lsst.svc"
        assert by_name["legit-drp"].runs


def test_a_stock_schedd_name_qualified_by_host_still_counts(ldf: EnclaveSpec, tmp_path: Path) -> None:
    policy.load_membership(ldf, spoof.catalogue_members(ldf), tmp_path)
    submitted = spoof.submitted_ad(spoof.catalogue(ldf)[0])
    ad = policy.schedd_admit(ldf, submitted, owner="prompt-svc", schedd="lsst-dev01.ncsa.illinois.edu@node7").ad
    assert ad[policy.SCHEDD_ATTR] == "lsst-dev01.ncsa.illinois.edu"


def test_without_membership_nobody_gets_a_group(ldf: EnclaveSpec, tmp_path: Path) -> None:
    policy.load_membership(ldf, {"alice": ["user"]}, tmp_path)
    submitted = spoof.submitted_ad(spoof.catalogue(ldf)[1])
    admission = policy.schedd_admit(ldf, submitted, owner="mallory", schedd="schedd.jupyter-lsst.svc")
    assert not admission.accepted and "mallory may not submit" in admission.refused[0]
