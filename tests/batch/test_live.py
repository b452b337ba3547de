"""The live adapter against stand-ins for the public htcondor2 API (conftest), with real classad2 ads."""

from __future__ import annotations

import inspect

import htcondor2
import pytest
from classad2 import ClassAd, ExprTree

from enclave.batch import policy, render
from enclave.batch.live import RUNTIME_HISTORY, HTCondorBatch, demand_of, pool_constraint
from enclave.domain.capacity import DeletePods, DrainStartd, PoolDemand, Relabel, RunningJob, Startd, StartdKind
from enclave.errors import Conflict, ExternalError, InvalidTransition, NotFound
from enclave.spec.models import EnclaveSpec

from .conftest import (
    DEV,
    NOTEBOOK_SCHEDD,
    Daemons,
    FakeCollector,
    FakeRemoteParam,
    FakeSchedd,
    FakeStartdClient,
)


def adapter(daemons: Daemons, now: float = 1_000_000.0) -> HTCondorBatch:
    """The adapter for ``daemons.spec``, talking to ``daemons`` through the stand-ins."""
    return HTCondorBatch(daemons.spec, bindings=daemons.bindings, clock=lambda: now)


def _parameters(f: object) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(f).parameters.values()]  # type: ignore[arg-type]


@pytest.mark.parametrize(("fake", "real", "methods"), [
    (FakeCollector, htcondor2.Collector, ["__init__", "query", "locate", "advertise"]),
    (FakeSchedd, htcondor2.Schedd, ["__init__", "query", "history", "act"]),
    (FakeStartdClient, htcondor2.Startd, ["__init__", "drainJobs", "cancelDrainJobs"]),
    (FakeRemoteParam, htcondor2.RemoteParam, ["__init__", "__getitem__", "__setitem__"]),
])
def test_the_stand_ins_have_the_bindings_signatures(fake: type, real: type, methods: list[str]) -> None:
    for name in methods:
        assert _parameters(getattr(fake, name)) == _parameters(getattr(real, name)), name


def test_send_command_stand_in_has_the_bindings_signature(daemons: Daemons) -> None:
    assert _parameters(daemons.send_command) == _parameters(htcondor2.send_command)


def test_the_stand_ins_refuse_what_they_do_not_implement(ldf: EnclaveSpec, daemons: Daemons) -> None:
    b = daemons.bindings
    with pytest.raises(AssertionError, match="Collector.locateAll is not implemented"):
        b.collector(ldf.batch.central_manager).locateAll(htcondor2.DaemonType.Startd)
    location = daemons.schedd_ad(DEV)
    with pytest.raises(AssertionError, match="Schedd.submit is not implemented"):
        b.schedd(location).submit(None)
    with pytest.raises(AssertionError, match="Startd.vacate is not implemented"):
        b.startd(daemons.slot_ad(daemons.startds["condor-001"])).vacate()
    with pytest.raises(TypeError, match="location must be a ClassAd"):
        b.schedd("not an ad")


def test_startds_map_onto_the_broker_model(ldf: EnclaveSpec, daemons: Daemons) -> None:
    startds = adapter(daemons).startds()
    assert [s.name for s in startds] == ["condor-001", "condor-002", "condor-011", "kub-003"]
    first = startds[0]
    assert (first.pool, first.kind, first.cores, first.memory_mib, first.busy_cores) == (
        "prompt", StartdKind.STANDALONE, 24, 131072, 4)
    assert startds[-1].kind == StartdKind.POD
    assert first.busy_memory_mib == 0  # the fixture's slots have all their memory free
    kind, ad_type, constraint = daemons.calls[0]
    assert kind == "collector_query" and ad_type == int(htcondor2.AdType.Startd)
    assert "EnclavePool =!= undefined" in constraint


def test_claimed_memory_is_total_minus_free(ldf: EnclaveSpec, daemons: Daemons) -> None:
    """A partitionable slot advertises what is left in Memory and its size in TotalSlotMemory (HTCondor admin
    manual, "Partitionable slots"): claimed memory is the difference."""
    daemons.add(Startd(name="condor-012", node="condor-012", kind=StartdKind.STANDALONE, pool="drp", cores=24,
                       memory_mib=131072, busy_cores=6, busy_memory_mib=6 * 20480), "<10.0.1.99:9618>")
    got = next(s for s in adapter(daemons).startds() if s.name == "condor-012")
    assert (got.busy_cores, got.busy_memory_mib) == (6, 6 * 20480)


def test_a_startd_with_several_partitionable_slots_is_one_startd(ldf: EnclaveSpec, daemons: Daemons) -> None:
    """A host set up by hand may advertise several partitionable slots (NUM_SLOTS_TYPE_<n>; HTCondor manual,
    "Configuring the Startd"), each with its own TotalSlotCpus and TotalSlotMemory ("Machine ClassAd
    Attributes"). The broker moves and drains a startd (condor_drain drains a machine, every slot of it), so the
    host is one startd holding their sum, draining when a slot is, and relabelled and drained by its address."""
    fs = daemons.startds["condor-011"]  # drp, 24 cores, 128 GiB, 4 busy
    fs.slots = 2
    assert len([ad for ad in daemons.ads(htcondor2.AdType.Startd) if ad["Machine"] == "condor-011"]) == 2
    batch = adapter(daemons)
    got = [s for s in batch.startds() if s.name == "condor-011"]
    assert len(got) == 1
    assert (got[0].cores, got[0].memory_mib, got[0].busy_cores) == (24, 131072, 4)
    assert got[0].pool == "drp" and not got[0].draining

    batch.apply(Relabel("broker", "test", "condor-011", "drp", "user"))
    assert [s.pool for s in batch.startds() if s.name == "condor-011"] == ["user"]
    batch.apply(DrainStartd("broker", "test", "condor-011"))
    assert [s.draining for s in batch.startds() if s.name == "condor-011"] == [True]


def test_demand_per_pool_over_every_schedd(ldf: EnclaveSpec, daemons: Daemons) -> None:
    now = 1_000_000
    daemons.jobs[DEV] = [policy.job_ad(ldf, owner="prompt-svc", pool="prompt", schedd=DEV, cluster_id=i,
                                       qdate=now - 30 * i) for i in range(1, 4)]
    daemons.jobs[NOTEBOOK_SCHEDD] = [
        policy.job_ad(ldf, owner="bob", pool="user", schedd=NOTEBOOK_SCHEDD, request_cpus=4, qdate=now - 5),
        policy.job_ad(ldf, owner="bob", pool="user", schedd=NOTEBOOK_SCHEDD, request_cpus=2,
                      extra={"JobStatus": 2}),
        policy.job_ad(ldf, owner="bob", pool="user", schedd=NOTEBOOK_SCHEDD, extra={"JobStatus": 4}),
        # DAGMan's own job (scheduler universe, 7) and a local-universe job (12) run beside the schedd, never on a
        # pool's slot ("Choosing an HTCondor Universe"): the submit transform labels them, yet they are no demand.
        policy.job_ad(ldf, owner="bob", pool="user", schedd=NOTEBOOK_SCHEDD, extra={"JobStatus": 2, "JobUniverse": 7}),
        policy.job_ad(ldf, owner="bob", pool="user", schedd=NOTEBOOK_SCHEDD, extra={"JobUniverse": 12}),
    ]
    demand = adapter(daemons, now).demand()
    # job_ad's request_memory_mib defaults to 2048: 3 idle prompt jobs request 6144 MiB.
    assert demand["prompt"] == PoolDemand(idle_jobs=3, idle_cores=3, oldest_idle_seconds=90.0,
                                          idle_memory_mib=3 * 2048, newest_submit=now - 30)
    assert demand["user"] == PoolDemand(idle_jobs=1, idle_cores=4, running_jobs=1, running_cores=2,
                                        oldest_idle_seconds=5.0, idle_memory_mib=2048, running_memory_mib=2048,
                                        newest_submit=now - 5)
    assert demand["drp"] == PoolDemand()
    queried = [c for c in daemons.calls if c[0] == "schedd_query"]
    assert len(queried) == len(ldf.batch.submit_hosts)


def test_a_schedd_is_the_one_whose_name_before_the_at_is_the_spec_s(ldf: EnclaveSpec, daemons: Daemons) -> None:
    """HTCondor qualifies a SCHEDD_NAME without an @ by its host ("If the string does not include an @ sign, HTCondor
    appends one, followed by the fully qualified host name", manual, MASTER_NAME): the schedd is found by the part
    before it, and two answering to one name are refused, not one of them guessed."""
    assert all("@" in ad["Name"] for ad in daemons.ads(htcondor2.AdType.Schedd))
    assert adapter(daemons).demand()["prompt"] == PoolDemand()
    daemons.jobs[f"{DEV}@elsewhere"] = []
    with pytest.raises(ExternalError, match=f"2 schedds answer to {DEV}"):
        adapter(daemons).demand()


def finished(spec: EnclaveSpec, pool: str, qdate: int, schedd: str = DEV, cluster_id: int = 100,
             completed: int | None = None) -> ClassAd:
    """A job in the history; it completed 30 s after submission unless told otherwise."""
    return policy.job_ad(spec, owner="prompt-svc", pool=pool, schedd=schedd, cluster_id=cluster_id, qdate=qdate,
                         extra={"JobStatus": 4, "CompletionDate": qdate + 30 if completed is None else completed})


def test_newest_submit_from_the_queue_only(ldf: EnclaveSpec, daemons: Daemons) -> None:
    now = 1_000_000
    daemons.jobs[DEV] = [policy.job_ad(ldf, owner="prompt-svc", pool="prompt", schedd=DEV, qdate=now - 40),
                         policy.job_ad(ldf, owner="prompt-svc", pool="prompt", schedd=DEV, qdate=now - 20,
                                       extra={"JobStatus": 2})]
    daemons.jobs[NOTEBOOK_SCHEDD] = [policy.job_ad(ldf, owner="bob", pool="drp", schedd=NOTEBOOK_SCHEDD,
                                                   qdate=now - 7)]
    demand = adapter(daemons, now).demand()
    assert demand["prompt"].newest_submit == now - 20  # running jobs count: they were submitted too
    assert demand["drp"].newest_submit == now - 7  # queue only: drp has no latency objective
    assert demand["user"].newest_submit is None


def test_newest_submit_from_the_history_only(ldf: EnclaveSpec, daemons: Daemons) -> None:
    now = 1_000_000
    daemons.finished[DEV] = [finished(ldf, "drp", now - 10), finished(ldf, "prompt", now - 600),
                             finished(ldf, "prompt", now - 900)]
    # A DAG's own job (scheduler universe) finishes after its node jobs, and was submitted before them: it is no
    # visit's submission, or the night's newest would look older than it is.
    dag = finished(ldf, "prompt", now - 3600, schedd=NOTEBOOK_SCHEDD, completed=now - 5)
    dag["JobUniverse"] = 7
    daemons.finished[NOTEBOOK_SCHEDD] = [dag, finished(ldf, "prompt", now - 300, schedd=NOTEBOOK_SCHEDD)]
    demand = adapter(daemons, now).demand()
    assert demand["prompt"] == PoolDemand(newest_submit=now - 300)  # the newer of the two schedds
    assert demand["drp"].newest_submit is None  # only pre-warmed pools look into the history


def test_newest_submit_is_the_later_of_queue_and_history(ldf: EnclaveSpec, daemons: Daemons) -> None:
    now = 1_000_000
    daemons.jobs[DEV] = [policy.job_ad(ldf, owner="prompt-svc", pool="prompt", schedd=DEV, qdate=now - 100)]
    daemons.finished[NOTEBOOK_SCHEDD] = [finished(ldf, "prompt", now - 50, schedd=NOTEBOOK_SCHEDD)]
    assert adapter(daemons, now).demand()["prompt"].newest_submit == now - 50
    daemons.finished[NOTEBOOK_SCHEDD] = [finished(ldf, "prompt", now - 500, schedd=NOTEBOOK_SCHEDD)]
    assert adapter(daemons, now).demand()["prompt"].newest_submit == now - 100


def test_newest_submit_unknown_without_jobs(ldf: EnclaveSpec, daemons: Daemons) -> None:
    assert all(d.newest_submit is None for d in adapter(daemons).demand().values())


def test_history_is_asked_for_the_newest_prompt_job(ldf: EnclaveSpec, daemons: Daemons) -> None:
    adapter(daemons, now=1_000_000.5).demand()
    asked = [c for c in daemons.calls if c[0] == "history_query" and c[3] == ("QDate", "EnclavePool")]
    assert [c[1] for c in asked] == [daemons.schedd_ad(h)["MyAddress"] for h in ldf.batch.submit_hosts]
    assert {c[2:] for c in asked} == {(
        '(EnclavePool =?= "prompt") && JobUniverse =!= 7 && JobUniverse =!= 9 && JobUniverse =!= 12',
        ("QDate", "EnclavePool"), 1, f"CompletionDate < {1_000_000 - 86400}")}


def test_history_scan_stops_a_day_back(ldf: EnclaveSpec, daemons: Daemons) -> None:
    now = 10_000_000
    day = 86400
    # A schedd that ran only drp jobs for a week, one an hour, and a prompt job eight days ago.
    daemons.finished[DEV] = [finished(ldf, "drp", now - 3600 * h, cluster_id=h) for h in range(1, 7 * 24)]
    daemons.finished[DEV].append(finished(ldf, "prompt", now - 8 * day))
    demand = adapter(daemons, now).demand()
    assert demand["prompt"].newest_submit is None  # older than a day: not tonight's
    asked = [c[1] for c in daemons.calls if c[0] == "history_query"]
    dev = asked.index(daemons.schedd_ad(DEV)["MyAddress"])
    assert daemons.scanned[dev] == 24  # the last day of drp jobs, not the week
    # Within the day it is found, whatever else finished after it.
    daemons.finished[DEV].insert(5, finished(ldf, "prompt", now - 6 * 3600, completed=now - 5 * 3600 - 60))
    assert adapter(daemons, now).demand()["prompt"].newest_submit == now - 6 * 3600


def test_history_looks_up_the_prewarmed_pool_without_a_latency_objective(ldf: EnclaveSpec,
                                                                          daemons: Daemons) -> None:
    now = 1_000_000
    spec = ldf.model_copy(update={"broker": ldf.broker.model_copy(update={"prewarm_pool": "drp"})})
    daemons.spec = spec
    daemons.finished[DEV] = [finished(spec, "drp", now - 120), finished(spec, "user", now - 60)]
    demand = adapter(daemons, now).demand()
    assert demand["drp"].newest_submit == now - 120
    assert demand["user"].newest_submit is None  # neither pre-warmed nor with a latency objective
    asked = {c[2] for c in daemons.calls if c[0] == "history_query" and c[3] == ("QDate", "EnclavePool")}
    on_pool = "JobUniverse =!= 7 && JobUniverse =!= 9 && JobUniverse =!= 12"
    assert asked == {f'(EnclavePool =?= "prompt") && {on_pool}', f'(EnclavePool =?= "drp") && {on_pool}'}


def test_history_constraint_of_the_default_pool_matches_demand_of(ldf: EnclaveSpec) -> None:
    jobs = [policy.job_ad(ldf, owner="x", pool="general", schedd=DEV, extra={"EnclavePool": value})
            for value in ("general", "prompt", "", "General", 3)]
    del jobs[0]["EnclavePool"]
    for pool in ("general", "prompt"):
        where = ExprTree(pool_constraint(ldf, pool))
        selected = [ad for ad in jobs if where.eval(ad) is True]
        assert demand_of(selected, ldf, now=0.0)[pool].idle_jobs == len(selected) > 0
        assert demand_of(jobs, ldf, now=0.0)[pool].idle_jobs == len(selected)


def test_history_failure_is_external(ldf: EnclaveSpec, daemons: Daemons) -> None:
    daemons.fail = "history"
    with pytest.raises(ExternalError, match=f"schedd {DEV} history query failed: Failed to connect"):
        adapter(daemons).demand()


def test_missing_schedd_is_an_external_error(ldf: EnclaveSpec, daemons: Daemons) -> None:
    del daemons.jobs[NOTEBOOK_SCHEDD]
    with pytest.raises(ExternalError, match=f"schedd {NOTEBOOK_SCHEDD} is not advertised"):
        adapter(daemons).demand()


def test_relabel_sets_the_pool_knob_and_reconfigs(ldf: EnclaveSpec, daemons: Daemons) -> None:
    live = adapter(daemons, now=1234.0)
    live.apply(Relabel(actor="broker", reason="BCS 1", startd="condor-011", from_pool="drp", to_pool="prompt"))
    address = daemons.startds["condor-011"].address
    sets = [c for c in daemons.calls if c[0] == "set"]
    # No vacate_after_seconds: DRP's jobs left there drain, and a deadline an earlier relabel set is cleared.
    assert sets == [("set", address, render.POOL_KNOB, "prompt"), ("set", address, render.SINCE_KNOB, "1234"),
                    ("set", address, render.vacate_knob("drp"), render.NO_DEADLINE)]
    master = Daemons.master_address(daemons.startds["condor-011"])
    assert ("command", master, htcondor2.DaemonType.Master, htcondor2.DaemonCommand.Reconfig) in daemons.calls
    after = {s.name: s for s in live.startds()}
    assert after["condor-011"].pool == "prompt" and after["condor-011"].since == 1234.0
    # Idempotent: the same action again changes nothing.
    calls = len(daemons.calls)
    live.apply(Relabel(actor="broker", reason="BCS 1", startd="condor-011", from_pool="drp", to_pool="prompt"))
    assert not [c for c in daemons.calls[calls:] if c[0] in ("set", "command")]


def test_relabel_refuses_stale_and_unknown(ldf: EnclaveSpec, daemons: Daemons) -> None:
    live = adapter(daemons)
    with pytest.raises(Conflict, match="serves pool 'prompt', not 'drp'"):
        live.relabel(Relabel(actor="a", reason="r", startd="condor-001", from_pool="drp", to_pool="user"))
    with pytest.raises(NotFound, match="pool 'nightly'"):
        live.relabel(Relabel(actor="a", reason="r", startd="condor-001", from_pool="prompt", to_pool="nightly"))
    with pytest.raises(NotFound, match="startd 'condor-999'"):
        live.relabel(Relabel(actor="a", reason="r", startd="condor-999", from_pool="prompt", to_pool="user"))
    assert not [c for c in daemons.calls if c[0] in ("set", "command")]


def test_runtime_config_denied_is_external(ldf: EnclaveSpec, daemons: Daemons) -> None:
    daemons.fail = "config"
    with pytest.raises(ExternalError, match="DENIED"):
        adapter(daemons).relabel(Relabel(actor="a", reason="r", startd="condor-001", from_pool="prompt",
                                         to_pool="user"))


def test_collector_down_is_external(ldf: EnclaveSpec, daemons: Daemons) -> None:
    daemons.fail = "collector"
    with pytest.raises(ExternalError, match="collector lsst-condor-cm.ncsa.illinois.edu query failed"):
        adapter(daemons).startds()
    with pytest.raises(ExternalError, match="collector lsst-condor-cm.ncsa.illinois.edu query failed"):
        adapter(daemons).collector_since()


def test_collector_since_is_when_the_collector_started(ldf: EnclaveSpec, daemons: Daemons) -> None:
    """Its own ad tells by its self-monitoring: sampled at 1,790,000,600 and 600 s old then, it started at
    1,790,000,000 (self_monitor.cpp: MonitorSelfTime, MonitorSelfAge). Until DaemonStartTime was read alone, which
    only ads sent to a collector carry, a real pool's collector never had a start."""
    daemons.collector_started = 1_790_000_000
    assert adapter(daemons).collector_since() == 1_790_000_000.0
    assert ("collector_query", int(htcondor2.AdType.Collector), None) in daemons.calls
    daemons.collector_age = None  # before its first sample both are -1: not known
    assert adapter(daemons).collector_since() is None
    daemons.collector_forwarded = True  # forwarded by another collector: DaemonStartTime, "the time that this
    assert adapter(daemons).collector_since() == 1_790_000_000.0  # daemon was started" (manual, Collector ads)


def test_drain_and_vacate(ldf: EnclaveSpec, daemons: Daemons) -> None:
    live = adapter(daemons)
    live.apply(DrainStartd(actor="broker", reason="BCS 3", startd="kub-003"))
    drains = [c for c in daemons.calls if c[0] == "drain"]
    assert drains == [("drain", daemons.startds["kub-003"].address, int(htcondor2.DrainType.Graceful),
                       "enclave: broker: BCS 3", "isUndefined(EnclaveDrainDue)")]
    # No deadline: the pool's own retirement time applies, whatever an earlier drain left (test_vacate).
    assert [c[2:] for c in daemons.calls if c[0] == "set"] == [(render.DRAIN_DUE_KNOB, render.NO_DEADLINE)]
    assert {s.name: s.draining for s in live.startds()} == {"condor-001": False, "condor-002": False,
                                                           "condor-011": False, "kub-003": True}
    live.apply(DrainStartd(actor="broker", reason="again", startd="kub-003"))
    assert len([c for c in daemons.calls if c[0] == "drain"]) == 1  # already draining: no-op

    live.apply(DrainStartd(actor="broker", reason="BCS 1", startd="condor-011", vacate_after_seconds=599.5))
    address = daemons.startds["condor-011"].address
    # The adapter's clock (``adapter``) is 1,000,000: the deadline is 600 s on, rounded up; what the startd does
    # with it is tested through HTCondor's parser in test_vacate.
    assert ("set", address, render.DRAIN_DUE_KNOB, "1000600") in daemons.calls
    master = Daemons.master_address(daemons.startds["condor-011"])
    reconfig = daemons.calls.index(("command", master, htcondor2.DaemonType.Master, htcondor2.DaemonCommand.Reconfig))
    assert reconfig < daemons.calls.index(("drain", address, int(htcondor2.DrainType.Graceful),
                                           "enclave: broker: BCS 1", "EnclaveDrainDue =?= 1000600"))


@pytest.mark.parametrize(("late", "tries"), [(0, 1), (3, 4)])
def test_a_drain_waits_for_the_startd_to_apply_its_deadline(ldf: EnclaveSpec, daemons: Daemons, late: int,
                                                            tries: int) -> None:
    """The reconfig that carries the deadline reaches the startd through its master, after drain requests sent
    to the startd itself (``Daemons.reconfig_late``): the startd refuses the drain until it publishes the
    deadline (the check expression), and the adapter asks again a second later."""
    daemons.reconfig_late = late
    slept: list[float] = []
    live = HTCondorBatch(ldf, bindings=daemons.bindings, clock=lambda: 1_000_000.0, sleep=slept.append)
    live.apply(DrainStartd(actor="broker", reason="BCS 1", startd="condor-011", vacate_after_seconds=60))
    assert len([c for c in daemons.calls if c[0] == "drain"]) == tries
    assert slept == [1.0] * (tries - 1)
    fs = daemons.startds["condor-011"]
    assert fs.draining and fs.runtime[render.DRAIN_DUE_KNOB] == "1000060"


def test_a_drain_the_startd_keeps_refusing_fails(ldf: EnclaveSpec, daemons: Daemons) -> None:
    daemons.reconfig_late = 100
    live = HTCondorBatch(ldf, bindings=daemons.bindings, clock=lambda: 1_000_000.0, sleep=lambda s: None)
    with pytest.raises(ExternalError, match="drain of startd condor-011 failed: it refused 10 times, 1 s apart "
                                            r"\(Startd failed to start draining jobs.\); its check was "
                                            "EnclaveDrainDue =\\?= 1000060"):
        live.apply(DrainStartd(actor="broker", reason="BCS 1", startd="condor-011", vacate_after_seconds=60))
    assert len([c for c in daemons.calls if c[0] == "drain"]) == 10
    fs = daemons.startds["condor-011"]
    assert not fs.draining
    # The deadline is set back (on a best effort), so it cannot cut a later drain short.
    assert [c[3] for c in daemons.calls if c[0] == "set"] == ["1000060", render.NO_DEADLINE]


def test_a_drain_whose_answer_was_lost_keeps_its_deadline(ldf: EnclaveSpec, daemons: Daemons) -> None:
    """The startd accepted the drain and the answer was lost: asked again, it refuses, as it refuses any drain
    while one is in progress (``ResMgr::startDraining``, DRAINING_ALREADY_IN_PROGRESS; the bindings raise the
    same error for every refusal). The collector lists it draining: the drain is done, its deadline kept — set
    back, the jobs would get their pool's whole retirement time instead."""
    daemons.lost_replies = 1
    slept: list[float] = []
    live = HTCondorBatch(ldf, bindings=daemons.bindings, clock=lambda: 1_000_000.0, sleep=slept.append)
    live.apply(DrainStartd(actor="broker", reason="BCS 1", startd="condor-011", vacate_after_seconds=60))
    fs = daemons.startds["condor-011"]
    assert fs.draining and fs.runtime[render.DRAIN_DUE_KNOB] == "1000060"
    assert [c[3] for c in daemons.calls if c[0] == "set"] == ["1000060"]
    assert len([c for c in daemons.calls if c[0] == "drain"]) == 1 and slept == []


def test_other_actions_belong_to_kubernetes(ldf: EnclaveSpec, daemons: Daemons) -> None:
    with pytest.raises(InvalidTransition, match="DeletePods is not an HTCondor action"):
        adapter(daemons).apply(DeletePods(actor="a", reason="r", pods=("p",)))


def test_demand_of_ignores_foreign_pools_and_defaults(ldf: EnclaveSpec) -> None:
    jobs = [policy.job_ad(ldf, owner="x", pool="elsewhere", schedd=DEV),
            policy.job_ad(ldf, owner="x", pool="general", schedd=DEV, request_cpus=3)]
    del jobs[1]["EnclavePool"]
    demand = demand_of(jobs, ldf, now=10.0)
    assert demand["general"].idle_cores == 3 and sum(d.idle_jobs for d in demand.values()) == 1


def test_reconfig_needs_the_hosts_master(ldf: EnclaveSpec, daemons: Daemons) -> None:
    """Without the master the reconfig cannot go; the knobs set for it wait for the next reconfig, anyone's, so they
    are set back to what they were: that reconfig keeps the startd where the broker was told it stayed, and the old
    pool's jobs without a deadline (review: it moved the startd later, unjournaled)."""
    daemons.masters = False
    fs = daemons.startds["condor-001"]
    before = (fs.startd.pool, fs.since)
    with pytest.raises(ExternalError, match="the master of condor-001 is not advertised"):
        adapter(daemons).relabel(Relabel(actor="a", reason="r", startd="condor-001", from_pool="prompt",
                                         to_pool="user", vacate_after_seconds=600))
    fs.apply()  # someone runs condor_reconfig on the host
    assert (fs.startd.pool, fs.since) == before
    assert fs.runtime[render.vacate_knob("prompt")] == render.NO_DEADLINE


def test_cancel_drain(ldf: EnclaveSpec, daemons: Daemons) -> None:
    live = adapter(daemons)
    live.apply(DrainStartd(actor="broker", reason="BCS 3", startd="condor-002"))
    calls = len(daemons.calls)
    live.cancel_drain("condor-002")
    address = daemons.startds["condor-002"].address
    master = Daemons.master_address(daemons.startds["condor-002"])
    # The drain is cancelled first, then its deadline goes back to what the config renders (test_vacate).
    assert [c for c in daemons.calls[calls:] if c[0] != "collector_query"] == [
        ("cancel", address, None),
        ("set", address, render.DRAIN_DUE_KNOB, render.NO_DEADLINE),
        ("command", master, htcondor2.DaemonType.Master, htcondor2.DaemonCommand.Reconfig)]
    assert not {s.name: s for s in live.startds()}["condor-002"].draining


def test_demand_of_sums_the_jobs_memory_requests(ldf: EnclaveSpec) -> None:
    """Idle and running jobs' RequestMemory (MiB, condor_submit's request_memory) per pool (issue 15); a job
    without one adds nothing."""
    ads = [ClassAd({"EnclavePool": "prompt", "JobStatus": 1, "RequestCpus": 1, "RequestMemory": 8192}),
           ClassAd({"EnclavePool": "prompt", "JobStatus": 1, "RequestCpus": 1, "RequestMemory": 8192}),
           ClassAd({"EnclavePool": "prompt", "JobStatus": 2, "RequestCpus": 2, "RequestMemory": 4096}),
           ClassAd({"EnclavePool": "prompt", "JobStatus": 1, "RequestCpus": 1})]
    d = demand_of(ads, ldf, now=0.0)["prompt"]
    assert (d.idle_jobs, d.idle_memory_mib, d.running_memory_mib) == (3, 16384, 4096)


# --- what the broker's least-work-lost victims read (enclave.broker.victims) --------------------------------


def test_running_jobs_from_the_dynamic_slots(ldf: EnclaveSpec, daemons: Daemons) -> None:
    """Each running job is a dynamic slot of its startd's partitionable slot: its Cpus, its JobStart and the
    accounting group that claimed it (RemoteGroup, whose pool the spec names: ldf's group_<pool>; a subgroup
    ``group_drp.alice`` is drp's). A claimed slot that runs no job has no JobStart and is no running job."""
    daemons.run_job("condor-011", 1, 999_000, "group_drp", limit=7200)
    daemons.run_job("condor-011", 4, 998_000, "group_drp.alice")
    daemons.run_job("condor-011", 2, 0, "group_drp", running=False)
    daemons.run_job("condor-001", 2, 999_500, "group_user")  # a user job left on a startd relabelled to prompt
    daemons.run_job("condor-002", 1, 999_600, "group_elsewhere")
    startds = {s.name: s for s in adapter(daemons).startds()}
    assert startds["condor-011"].jobs == (RunningJob(cores=4, start=998_000, pool="drp"),
                                          RunningJob(cores=1, start=999_000, pool="drp", limit_seconds=7200))
    assert startds["condor-001"].jobs == (RunningJob(cores=2, start=999_500, pool="user"),)
    assert startds["condor-002"].jobs == (RunningJob(cores=1, start=999_600, pool=None),)
    assert startds["kub-003"].jobs == ()
    queried = [c[2] for c in daemons.calls if c[0] == "collector_query"]
    assert any("DynamicSlot =?= true" in c and "JobStart =!= undefined" in c for c in queried)
    # The partitionable slots are still one startd each: the dynamic slots' ads add no startd.
    assert sorted(startds) == ["condor-001", "condor-002", "condor-011", "kub-003"]


def _ran(spec: EnclaveSpec, pool: str, started: int, seconds: int, status: int = 4, cluster_id: int = 100) -> ClassAd:
    return policy.job_ad(spec, owner="x", pool=pool, schedd=DEV, cluster_id=cluster_id,
                         extra={"JobStatus": status, "JobCurrentStartDate": started,
                                "CompletionDate": started + seconds, "QDate": started - 10})


def test_runtimes_of_the_pools_that_vacate_from_the_history(ldf: EnclaveSpec, daemons: Daemons) -> None:
    """drp vacates after its grace (lsst-ldf.yaml): its completed jobs' CompletionDate − JobCurrentStartDate over
    both schedds, ascending; a removed job (JobStatus 3) did not run to its end; a DAG's own job (scheduler
    universe, 7) ran on no slot; prompt drains: not reported."""
    now = 1_000_000
    dag = _ran(ldf, "drp", now - 300, 20000)
    dag["JobUniverse"] = 7
    daemons.finished[DEV] = [_ran(ldf, "drp", now - 4000, 3600), _ran(ldf, "drp", now - 500, 90), dag,
                             _ran(ldf, "drp", now - 900, 300, status=3), _ran(ldf, "prompt", now - 100, 40)]
    daemons.finished[NOTEBOOK_SCHEDD] = [_ran(ldf, "drp", now - 2000, 600)]
    demand = adapter(daemons, now).demand()
    assert demand["drp"].runtimes == (90.0, 600.0, 3600.0)
    assert demand["prompt"].runtimes == ()
    asked = [c for c in daemons.calls if c[0] == "history_query" and c[3] == ("CompletionDate", "JobCurrentStartDate")
             and "drp" in c[2]]
    assert len(asked) == len(ldf.batch.submit_hosts)
    assert {(c[2], c[4], c[5]) for c in asked} == {(
        '((EnclavePool =?= "drp") && JobUniverse =!= 7 && JobUniverse =!= 9 && JobUniverse =!= 12) && JobStatus == 4',
        RUNTIME_HISTORY, f"CompletionDate < {now - 86400}")}


def test_each_schedd_query_finds_its_schedd_when_not_given_one(ldf: EnclaveSpec, daemons: Daemons) -> None:
    """``jobs``, ``newest_finished`` and ``finished_runtimes`` take the schedd ``demand`` located once per cycle;
    called alone, each locates it by the spec's host name."""
    now = 1_000_000
    daemons.jobs[DEV] = [policy.job_ad(ldf, owner="prompt-svc", pool="prompt", schedd=DEV, qdate=now - 40)]
    daemons.finished[DEV] = [_ran(ldf, "drp", now - 700, 600), finished(ldf, "prompt", now - 300)]
    live = adapter(daemons, now)
    assert [ad["QDate"] for ad in live.jobs(DEV)] == [now - 40]
    assert live.newest_finished(DEV, "prompt") == now - 300
    assert live.finished_runtimes(DEV, "drp") == [600.0]


def test_a_failure_enclave_names_keeps_its_own_fix(ldf: EnclaveSpec, daemons: Daemons) -> None:
    """A reconfig refused for a reason enclave names (no master advertised) reaches the operator with that reason's
    fix, not wrapped as the bindings' failure ("check that the daemon is up…")."""
    daemons.masters = False
    with pytest.raises(ExternalError) as err:
        adapter(daemons).relabel(Relabel(actor="a", reason="r", startd="condor-001", from_pool="prompt",
                                         to_pool="user"))
    assert err.value.problems[0].what == "the master of condor-001 is not advertised"
    assert "condor_status -master" in err.value.problems[0].fix
