"""Claims while calm (pools.<name>.calm_claim_worklife): the broker advertises its word to the collector, a startd
cron job asks for it once a minute and puts into the slot ads until when it holds, and CLAIM_WORKLIFE reads that.

Facts from HTCondor (htcondor/htcondor 7491a14): a startd cron job's ARGS are parsed by ``CronJobParams::InitArgs``
(cron_job_params.cpp) with ``AppendArgsV1RawOrV2Quoted``: a value in double quotes is the quoted form, in which
single quotes group one argument and a double quote is written twice. The collector files an UPDATE_AD_GENERIC by
MyType, keys it by Name (hashkey.cpp ``makeGenericAdHashKey``) and stamps LastHeardFrom as it takes it
(collector_engine.cpp ``CollectorEngine::updateClassAd``)."""

from __future__ import annotations

from pathlib import Path

import htcondor2
import pytest
from classad2 import ClassAd, ExprTree

from enclave.batch import render
from enclave.batch.live import HTCondorBatch
from enclave.errors import ExternalError, IntegrityError
from enclave.spec.models import EnclaveSpec

from .conftest import Daemons

T = 1_800_000_000
"""A time for the startd's clock (``time()``)."""
CRON = ["STARTD_CRON_JOBLIST", "STARTD_CRON_ENCLAVECALM_EXECUTABLE", "STARTD_CRON_ENCLAVECALM_ARGS",
        "STARTD_CRON_ENCLAVECALM_PERIOD", "STARTD_CRON_ENCLAVECALM_MODE"]


@pytest.fixture
def calm(mini: EnclaveSpec) -> EnclaveSpec:
    """The minimal spec (no site, so no worklife by day) with DRP keeping its claims while calm."""
    pools = {**mini.pools, "drp": mini.pools["drp"].model_copy(update={"calm_claim_worklife": -1})}
    return EnclaveSpec.model_validate(mini.model_copy(update={"pools": pools}).model_dump())


def _worklife(text: str, slot: dict[str, int]) -> object:
    """CLAIM_WORKLIFE as the startd evaluates it against a slot ad holding ``slot``, its clock at ``T``."""
    return ExprTree(text.replace("time()", str(T))).eval(ClassAd(slot))


def test_drp_keeps_its_claims_while_the_word_holds(calm: EnclaveSpec, tmp_path: Path) -> None:
    render.write(render.render_all(calm), tmp_path)
    for name, env in ((tmp_path / "execute-drp.conf", {}),
                      (tmp_path / "worker-pod-whole.conf", {render.POD_POOL_ENV: "drp"})):
        text = render.read_pool_worklife(name, "drp", env=env)
        assert text is not None
        assert _worklife(text, {"EnclaveCalmUntil": T + 1}) == -1
        # Stale (the broker stopped, or said not calm: 0), or no word yet: HTCondor's 1200.
        assert [_worklife(text, {"EnclaveCalmUntil": t}) for t in (T, T - 1, 0)] == [1200, 1200, 1200]
        assert _worklife(text, {}) == 1200
    # The other pools keep HTCondor's worklife: their knob is the common one, which the bindings expand.
    assert render.read_pool_worklife(tmp_path / "execute-user.conf", "user") == "1200"
    assert render.read_back(tmp_path / "execute-user.conf", ["CLAIM_WORKLIFE"], subsystem="STARTD") == {
        "CLAIM_WORKLIFE": "1200"}


def test_the_cron_job_as_htcondor_reads_it(calm: EnclaveSpec, tmp_path: Path) -> None:
    [drp] = render.write([render.execute_node(calm, "drp")], tmp_path)
    got = render.read_back(drp, CRON, subsystem="STARTD")
    assert (got["STARTD_CRON_JOBLIST"] or "").split() == ["ENCLAVECALM"]
    assert (got["STARTD_CRON_ENCLAVECALM_EXECUTABLE"] or "").endswith("/condor_status")
    # The quoted form: the constraint and the expression one argument each, the type's quotes doubled.
    assert got["STARTD_CRON_ENCLAVECALM_ARGS"] == (
        '"-any -constraint \'MyType == ""EnclaveBroker""\' -format \'EnclaveCalmUntil = %d\\n\' '
        '\'ifThenElse(EnclaveCalm =?= true, LastHeardFrom + 180, 0)\'"')
    assert (got["STARTD_CRON_ENCLAVECALM_PERIOD"], got["STARTD_CRON_ENCLAVECALM_MODE"]) == ("60", "periodic")


def test_the_collector_takes_the_brokers_ad(calm: EnclaveSpec, mini: EnclaveSpec, tmp_path: Path) -> None:
    """UPDATE_AD_GENERIC is registered at DAEMON (collector.cpp): the broker's identity is added there, and only
    where a pool reads its word."""
    for spec, broker in ((calm, True), (mini, False)):
        [cm] = render.write([render.central_manager(spec)], tmp_path)
        allowed = (render.read_back(cm, ["ALLOW_DAEMON"], subsystem="COLLECTOR")["ALLOW_DAEMON"] or "").split(", ")
        assert ("enclave-broker@*/*" in allowed) is broker
        assert "condor@*/login.example.org" in allowed  # the submit hosts' daemons keep theirs


def test_no_cron_job_where_no_pool_reads_the_word(mini: EnclaveSpec, tmp_path: Path) -> None:
    """Neither where no pool sets a worklife of its own, nor where one sets only a number (claim_worklife)."""
    by_day = {**mini.pools, "drp": mini.pools["drp"].model_copy(update={"claim_worklife": 3600})}
    for spec in (mini, mini.model_copy(update={"pools": by_day})):
        [drp] = render.write([render.execute_node(spec, "drp")], tmp_path)
        assert render.read_back(drp, CRON, subsystem="STARTD")["STARTD_CRON_ENCLAVECALM_ARGS"] is None


def test_check_refuses_a_worklife_while_calm_edited_by_hand(calm: EnclaveSpec, tmp_path: Path) -> None:
    rendered = render.execute_node(calm, "drp")
    [path] = render.write([rendered], tmp_path)
    assert "CLAIM_WORKLIFE = 1200" in render.verify(calm, rendered, path)
    path.write_text(path.read_text().replace("$(ENCLAVE_CALM), -1, 1200)", "$(ENCLAVE_CALM), 7200, 1200)"))
    with pytest.raises(IntegrityError, match="for a startd serving pool drp"):
        render.verify(calm, rendered, path)


def test_the_broker_ad_gives_the_cron_job_its_word(daemons: Daemons) -> None:
    """What the broker advertises is what the startds' cron job finds and evaluates: LastHeardFrom plus three
    broker cycles (60 s each on the LDF spec) while calm, 0 when not; each cycle's ad replaces the last."""
    spec = daemons.spec
    batch = HTCondorBatch(spec, bindings=daemons.bindings, clock=lambda: float(T))
    collector = daemons.bindings.collector(spec.batch.central_manager)
    for word, until in ((True, daemons.heard_at + 180), (False, 0)):
        batch.advertise_calm(word)
        [ad] = collector.query(htcondor2.AdType.Any, constraint=render.calm_constraint())
        assert ExprTree(render.calm_until(spec)).eval(ad) == until
    assert ("collector_advertise", "UPDATE_AD_GENERIC", 1) in daemons.calls


def test_advertising_fails_when_the_collector_does(daemons: Daemons) -> None:
    daemons.fail = "advertise"
    batch = HTCondorBatch(daemons.spec, bindings=daemons.bindings)
    with pytest.raises(ExternalError, match="advertising the broker's ad to collector lsst-condor-cm"):
        batch.advertise_calm(True)
