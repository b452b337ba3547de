"""A relabel's deadline (``Relabel.vacate_after_seconds``) on a live startd: the rendered PREEMPT and
MAXJOBRETIREMENTTIME, read back through HTCondor's own config parser and evaluated with classad2 the way the startd
evaluates them, and the knobs ``batch.live`` sets for them.

The rules (HTCondor manual, "Configuration for Execution Points", "condor_startd Policy Configuration"; htcondor/
htcondor 7491a14 condor_startd.V6/Resource.cpp):
- PREEMPT is evaluated on a claimed slot with the slot ad as MY and the running job's ad as TARGET
  (``Resource::eval_expr``); when True the claim retires (Claimed/Retiring).
- A retiring job is vacated once it has run MaxJobRetirementTime, counted from its start
  (``Resource::evalRetirementRemaining``: MaxJobRetirementTime − job age, evaluated with the same MY and TARGET).
- The twin's reference (``enclave.twin.sim``): a relabel with a deadline evicts the old pool's jobs still running
  on the startd at ``since + vacate_after``; with None they run to their end.
So a job PREEMPT is true of must have MaxJobRetirementTime 0 (vacated at the deadline, not a retirement later), and
every other job its pool's retirement (``render.retirement_seconds``).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from classad2 import ClassAd, ExprTree

from enclave.batch import policy, render
from enclave.batch.live import HTCondorBatch
from enclave.domain.capacity import DrainStartd, Relabel
from enclave.errors import InputError, IntegrityError, NotFound
from enclave.spec.models import EnclaveSpec

from .conftest import DEV, Daemons

KNOBS = ["PREEMPT", "MAXJOBRETIREMENTTIME", "EnclavePool", policy.VACATE_ATTR, "STARTD_ATTRS",
         "SETTABLE_ATTRS_CONFIG", "MachineMaxVacateTime", render.DRAIN_DUE_ATTR]


@pytest.fixture(scope="module")
def configs(ldf: EnclaveSpec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("vacate")
    render.write([render.execute_node(ldf, "user"), render.execute_node(ldf, "drp")], out)
    return out


def startd_config(path: Path, knobs: dict[str, str]) -> dict[str, str | None]:
    """What the startd reads from ``path`` once ``knobs`` are set at runtime: a runtime setting overrides the
    file as a ``_CONDOR_<knob>`` environment variable does (both take precedence over the config files)."""
    return render.read_back(path, KNOBS, subsystem="STARTD", env={f"_CONDOR_{k}": v for k, v in knobs.items()})


def dynamic_slot(got: dict[str, str | None], job_start: int) -> ClassAd:
    """A dynamic slot of that startd running a job since ``job_start``: the config attributes the startd publishes
    (STARTD_ATTRS) and JobStart ("Machine ClassAd Attributes")."""
    slot = ClassAd({"JobStart": job_start})
    for name in ("EnclavePool", policy.VACATE_ATTR):
        slot[name] = ExprTree(got[name] or "")
    return slot


def job(ldf: EnclaveSpec, pool: str) -> ClassAd:
    return policy.job_ad(ldf, owner="svc", pool=pool, schedd=DEV)


def evaluate(got: dict[str, str | None], slot: ClassAd, target: ClassAd) -> tuple[object, object]:
    """PREEMPT and MAXJOBRETIREMENTTIME as the startd evaluates them: MY the slot, TARGET the job."""
    return (ExprTree(got["PREEMPT"] or "").eval(slot, target),
            ExprTree(got["MAXJOBRETIREMENTTIME"] or "").eval(slot, target))


def test_htcondor_defaults_the_render_changes_or_relies_on(tmp_path: Path) -> None:
    """param_info.in (htcondor/htcondor 7491a14): PREEMPT default=False, so nothing is preempted unless rendered;
    MAXJOBRETIREMENTTIME has no default (the startd publishes 0); WANT_SUSPEND default=False, so a busy claim
    consults PREEMPT (ResState.cpp: ``_act==busy_act && !want_suspend``); PREEMPT_VANILLA is unset, so it does not
    replace PREEMPT for vanilla jobs (``Resource::eval_expr``); POLLING_INTERVAL default=5: how soon after the
    deadline a claimed slot sees it; WANT_VACATE default=True, KILL default=False, MachineMaxVacateTime
    default=$(MaxVacateTime) = 10 * $(MINUTE): a vacated job is soft-killed and hard-killed 600 s later at most
    (docs/broker.md, "Left")."""
    empty = tmp_path / "empty.conf"
    empty.write_text("")
    got = render.read_back(empty, ["PREEMPT", "MAXJOBRETIREMENTTIME", "WANT_SUSPEND", "PREEMPT_VANILLA",
                                   "POLLING_INTERVAL", "WANT_VACATE", "KILL", "MachineMaxVacateTime"],
                           subsystem="STARTD")
    assert got == {"PREEMPT": "False", "MAXJOBRETIREMENTTIME": None, "WANT_SUSPEND": "False",
                   "PREEMPT_VANILLA": None, "POLLING_INTERVAL": "5", "WANT_VACATE": "True", "KILL": "False",
                   "MachineMaxVacateTime": "600"}


def test_the_deadline_knobs_are_published_and_settable(configs: Path, ldf: EnclaveSpec) -> None:
    got = startd_config(configs / "execute-user.conf", {})
    assert {policy.VACATE_ATTR, render.DRAIN_DUE_ATTR} <= set((got["STARTD_ATTRS"] or "").split())
    settable = [k.strip() for k in (got["SETTABLE_ATTRS_CONFIG"] or "").split(",")]
    assert settable == [render.POOL_KNOB, render.SINCE_KNOB, render.DRAIN_DUE_KNOB,
                        *(f"ENCLAVE_VACATE_{p}" for p in ldf.pools)]
    # No relabel yet: every pool's entry is undefined, so nothing is preempted.
    assert ExprTree(got[policy.VACATE_ATTR] or "").eval() == ClassAd({p: ExprTree("undefined") for p in ldf.pools})


def test_old_pool_job_goes_at_the_deadline_and_no_other(configs: Path, ldf: EnclaveSpec) -> None:
    """A DRP startd relabelled to user at ``since`` with a deadline: the DRP job running there is preempted once
    the deadline has passed, with no retirement (before it, it keeps DRP's own retirement, 600 s); the user job
    (the new pool's) and a prompt job that overflowed onto it after the relabel are not, and keep their own
    pools' retirement (both let finish on the LDF spec)."""
    now = int(time.time())
    since = now - 600
    path = configs / "execute-user.conf"
    let_finish = render.retirement_seconds(ldf, "user")
    assert let_finish == render.LET_FINISH_SECONDS
    before = startd_config(path, {"ENCLAVE_VACATE_drp": f"{{{since}, {now + 3600}}}"})
    after = startd_config(path, {"ENCLAVE_VACATE_drp": f"{{{since}, {now - 1}}}"})
    old = dynamic_slot(after, since - 3000)
    assert evaluate(before, dynamic_slot(before, since - 3000), job(ldf, "drp")) == (
        False, render.retirement_seconds(ldf, "drp"))
    assert evaluate(after, old, job(ldf, "drp")) == (True, 0)
    assert evaluate(after, dynamic_slot(after, since + 60), job(ldf, "user")) == (False, let_finish)
    assert evaluate(after, dynamic_slot(after, since + 60), job(ldf, "prompt")) == (False, let_finish)
    # A general job (a pool without a deadline here) is not touched either.
    assert evaluate(after, old, job(ldf, "general")) == (False, let_finish)


@pytest.mark.parametrize(("ahead", "gone"), [(120, False), (0, True), (-1, True)])
def test_a_relabel_s_deadline_holds_its_jobs_until_it(configs: Path, ldf: EnclaveSpec, ahead: int,
                                                      gone: bool) -> None:
    """A DRP startd relabelled to user with a deadline ``ahead`` seconds from now (120 s: less than
    MachineMaxVacateTime): an hour-old and a minute-old DRP job both run until the deadline, not the deadline minus
    their vacate time, and are evicted from it on. The startd's rule (condor_startd.V6, htcondor/htcondor 7491a14):
    a claimed slot retires only once PREEMPT is true (ResState.cpp, "PREEMPT is TRUE" → retiring); a retiring job is
    evicted once its remaining retirement, MaxJobRetirementTime minus its run time (``evalRetirementRemaining``),
    is 0 or no more than its vacate time (``Resource::retirementExpired``)."""
    now = int(time.time())
    since = now - 600
    got = startd_config(configs / "execute-user.conf", {"ENCLAVE_VACATE_drp": f"{{{since}, {now + ahead}}}"})
    vacate = int(ExprTree(got["MachineMaxVacateTime"] or "").eval())
    assert vacate > ahead  # the deadline is within the vacate time: it must not bring the eviction forward
    for start in (since - 3600, since - 60):
        preempt, retirement = evaluate(got, dynamic_slot(got, start), job(ldf, "drp"))
        assert isinstance(retirement, int)
        left = max(0, retirement - (now - start))
        assert (preempt is True and (left <= 0 or vacate >= left)) is gone, start


def test_without_a_deadline_the_old_pool_s_jobs_drain(configs: Path, ldf: EnclaveSpec) -> None:
    """Not preempted: they run on. Should the startd later retire (its pod deleted), they keep their own pool's
    retirement, DRP's 600 s, not the user pool's (until stop 48 the startd's pool decided)."""
    got = startd_config(configs / "execute-user.conf", {"ENCLAVE_VACATE_drp": render.NO_DEADLINE})
    assert evaluate(got, dynamic_slot(got, 0), job(ldf, "drp")) == (False, render.retirement_seconds(ldf, "drp"))


def test_relabelled_back_its_own_jobs_stay(configs: Path, ldf: EnclaveSpec) -> None:
    """drp → user with a deadline, then back to drp before it: the deadline left in drp's entry does not evict
    drp's jobs on a drp startd; they keep drp's own retirement (its grace: drp vacates)."""
    now = int(time.time())
    got = startd_config(configs / "execute-user.conf",
                        {render.POOL_KNOB: "drp", "ENCLAVE_VACATE_drp": f"{{{now - 600}, {now - 1}}}"})
    assert ExprTree(got["EnclavePool"] or "").eval() == "drp"
    assert evaluate(got, dynamic_slot(got, now - 3000), job(ldf, "drp")) == (False, int(ldf.pools["drp"].grace_seconds))


def test_a_latency_pool_s_jobs_go_only_if_they_ran_before_the_relabel(configs: Path, ldf: EnclaveSpec) -> None:
    """A prompt startd relabelled to user with a deadline (were prompt to vacate): prompt's jobs that were running
    at the relabel go at the deadline; one that started after it is overflow (prompt runs on every startd,
    ``policy.overflow_pools``) and stays."""
    assert "prompt" in policy.overflow_pools(ldf)
    now = int(time.time())
    since = now - 600
    got = startd_config(configs / "execute-user.conf", {"ENCLAVE_VACATE_prompt": f"{{{since}, {now - 1}}}"})
    assert evaluate(got, dynamic_slot(got, since - 30), job(ldf, "prompt")) == (True, 0)
    assert evaluate(got, dynamic_slot(got, since + 30), job(ldf, "prompt")) == (False, render.LET_FINISH_SECONDS)


def test_with_group_quota_preemption_only_a_preempted_job_loses_its_retirement(tmp_path: Path,
                                                                               ldf: EnclaveSpec) -> None:
    """The preemption render (the twin's quotas-preempt baselines) gives no retirement to a job whose claim another
    claim preempts: the startd publishes PreemptingUser in the slot's ad while it holds such a claim
    (claim.cpp ``Claim::publishPreemptingClaim``, htcondor/htcondor 7491a14). Everything else keeps the rule
    without preemption: a relabel's old-pool job goes at the deadline, a broker drain's deadline holds every job
    until it, and otherwise a job retires for its pool's grace. HTCondor keeps the last definition of a knob, so
    this must be the one MAXJOBRETIREMENTTIME (a second ``= 0`` after it evicted at every drain)."""
    now = int(time.time())
    [path] = render.write([render.execute_node(ldf, "drp", preemption=True)], tmp_path)
    assert path.read_text().count("\nMAXJOBRETIREMENTTIME =") == 1
    relabelled = startd_config(path, {render.POOL_KNOB: "user", "ENCLAVE_VACATE_drp": f"{{{now - 600}, {now - 1}}}"})
    slot = dynamic_slot(relabelled, now - 3000)
    assert evaluate(relabelled, slot, job(ldf, "drp")) == (True, 0)
    assert evaluate(relabelled, slot, job(ldf, "user")) == (False, render.LET_FINISH_SECONDS)
    # A broker drain an hour from now: neither an hour-old nor a minute-old DRP job is evicted before it.
    draining = startd_config(path, {render.DRAIN_DUE_KNOB: str(now + 3600)})
    assert evicting(draining, [now - 3600, now - 60], job(ldf, "drp"), now) == [False, False]
    # Not draining, no relabel: DRP's grace, unless a preempting claim waits for the slot.
    plain = startd_config(path, {})
    idle = drain_slot(plain, now - 60, draining=False)
    retirement = ExprTree(plain["MAXJOBRETIREMENTTIME"] or "")
    assert retirement.eval(idle, job(ldf, "drp")) == render.retirement_seconds(ldf, "drp")
    idle["PreemptingUser"] = "prompt-svc@lsst-dev01.ncsa.illinois.edu"
    assert retirement.eval(idle, job(ldf, "drp")) == 0


def test_vacate_value_is_since_and_the_deadline_rounded_up() -> None:
    assert render.vacate_value(1234, 300) == "{1234, 1534}"
    assert render.vacate_value(1234, 299.2) == "{1234, 1534}"  # never before since + vacate_after
    assert render.vacate_value(1234, 0) == "{1234, 1234}"  # the broker's "evict at once"
    assert render.vacate_value(1234, None) == render.NO_DEADLINE
    assert render.vacate_knob("late-night") == "ENCLAVE_VACATE_late_night"  # '-' is no HTCondor macro character
    for bad in (-1.0, math.inf, math.nan):
        with pytest.raises(InputError, match="no grace period"):
            render.vacate_value(1234, bad)


# --- the live adapter ------------------------------------------------------------------------------------------


def _sets(daemons: Daemons, name: str) -> dict[str, str]:
    address = daemons.startds[name].address
    return {c[2]: c[3] for c in daemons.calls if c[0] == "set" and c[1] == address}


@pytest.mark.parametrize(("after", "value"), [(300.0, "{1234, 1534}"), (None, render.NO_DEADLINE)])
def test_relabel_sets_the_old_pool_s_deadline(ldf: EnclaveSpec, daemons: Daemons, after: float | None,
                                              value: str) -> None:
    live = HTCondorBatch(ldf, bindings=daemons.bindings, clock=lambda: 1234.0)
    live.apply(Relabel(actor="broker", reason="BCS 1", startd="condor-011", from_pool="drp", to_pool="user",
                       vacate_after_seconds=after))
    assert _sets(daemons, "condor-011") == {render.POOL_KNOB: "user", render.SINCE_KNOB: "1234",
                                            "ENCLAVE_VACATE_drp": value}


def test_relabel_deadline_from_a_pool_the_spec_does_not_know(ldf: EnclaveSpec, daemons: Daemons) -> None:
    with pytest.raises(NotFound, match="pool 'nightly'"):
        HTCondorBatch(ldf, bindings=daemons.bindings).relabel(
            Relabel(actor="a", reason="r", startd="condor-011", from_pool="nightly", to_pool="user",
                    vacate_after_seconds=60))
    assert not [c for c in daemons.calls if c[0] in ("set", "command")]


@pytest.mark.parametrize(("after", "due"), [(0.0, True), (3600.0, False), (None, False)])
def test_what_relabel_sets_is_what_the_rendered_startd_evicts(ldf: EnclaveSpec, daemons: Daemons, configs: Path,
                                                              after: float | None, due: bool) -> None:
    """End to end: the knobs the adapter set on the (stand-in) startd, read by HTCondor's parser through the
    rendered config of that startd (a DRP execute node), preempt its running DRP job when the deadline is now
    (vacate_after 0, the broker's "evict at once"), not an hour ahead, and never without one."""
    now = time.time()
    live = HTCondorBatch(ldf, bindings=daemons.bindings, clock=lambda: now)
    live.apply(Relabel(actor="broker", reason="BCS 1", startd="condor-011", from_pool="drp", to_pool="user",
                       vacate_after_seconds=after))
    got = startd_config(configs / "execute-drp.conf", daemons.startds["condor-011"].runtime)
    assert ExprTree(got["EnclavePool"] or "").eval() == "user"
    slot = dynamic_slot(got, int(now) - 3000)
    assert ExprTree(got["PREEMPT"] or "").eval(slot, job(ldf, "drp")) is due
    assert ExprTree(got["PREEMPT"] or "").eval(slot, job(ldf, "user")) is False



def drain_slot(got: dict[str, str | None], job_start: int, draining: bool) -> ClassAd:
    """A dynamic slot of a startd that drains (or not): ``dynamic_slot`` with the drain's deadline the startd
    publishes (STARTD_ATTRS) and ``Draining``, which ``ResMgr::startDraining`` inserts into every slot's ad."""
    slot = dynamic_slot(got, job_start)
    slot[render.DRAIN_DUE_ATTR] = ExprTree(got[render.DRAIN_DUE_ATTR] or "")
    slot["Draining"] = draining
    return slot


def evicting(got: dict[str, str | None], starts: list[int], drp_job: ClassAd, now: int) -> list[bool]:
    """Whether the draining startd evicts each of its jobs (started at ``starts``) at ``now``, as condor_startd.V6
    (htcondor/htcondor 7491a14) decides: ``Resource::evalRetirementRemaining`` is MaxJobRetirementTime (MY the
    slot, TARGET the job) minus the job's run time, at least 0; in a graceful drain a job START accepts waits for
    the longest of those on the startd (``Resource::retirementExpired`` → ``ResMgr::gracefulDrainingTimeRemaining``);
    it is evicted once that is 0 or no more than its MaxVacateTime (MachineMaxVacateTime here: the job sets no
    JobMaxVacateTime)."""
    left = []
    for start in starts:
        retirement = ExprTree(got["MAXJOBRETIREMENTTIME"] or "").eval(drain_slot(got, start, True), drp_job)
        assert isinstance(retirement, int)
        left.append(max(0, retirement - (now - start)))
    vacate = int(ExprTree(got["MachineMaxVacateTime"] or "").eval())
    longest = max(left)
    return [r <= 0 or vacate >= longest for r in left]


@pytest.mark.parametrize(("after", "gone"), [(3600.0, False), (120.0, False), (0.0, True)])
def test_a_drain_s_deadline_holds_every_job_until_it(ldf: EnclaveSpec, daemons: Daemons, configs: Path,
                                                     after: float, gone: bool) -> None:
    """The broker's drain with a deadline (``DrainStartd.vacate_after_seconds``, least work lost's 0..grace) on
    a DRP startd, read through HTCondor's parser with what the adapter set: every DRP job running there — one
    started an hour before the drain, one a minute before — runs while the deadline is ahead and is evicted
    once it is reached (``0``: the broker's "evict at once"), as the twin and ``victims`` count it. The
    ClassAd's ``time()`` is the clock, so the deadline is set from it."""
    now = int(time.time())
    live = HTCondorBatch(ldf, bindings=daemons.bindings, clock=lambda: float(now))
    live.apply(DrainStartd(actor="broker", reason="BCS 1", startd="condor-011", vacate_after_seconds=after))
    got = startd_config(configs / "execute-drp.conf", daemons.startds["condor-011"].runtime)
    assert got["MachineMaxVacateTime"] == "600"  # HTCondor's default, which the render leaves alone
    assert evicting(got, [now - 3600, now - 60], job(ldf, "drp"), now) == [gone, gone]


def test_the_seconds_alone_would_evict_at_the_drain(ldf: EnclaveSpec, configs: Path) -> None:
    """What the knob held before: a plain number of seconds ``S`` is retirement from each job's start, and the
    startd's jobs wait for the longest of what is left (the youngest's start + S); within the 600 s vacate
    time of that, all of them are evicted at once — with DRP's 600 s grace or less, at the drain."""
    got = startd_config(configs / "execute-drp.conf", {render.RETIREMENT_KNOB: "300"})
    now = int(time.time())
    assert evicting(got, [now - 3600, now - 60], job(ldf, "drp"), now) == [True, True]


def test_a_deadline_counts_only_while_the_startd_drains(ldf: EnclaveSpec, configs: Path) -> None:
    """A deadline left behind (a drain the startd refused, or one cancelled before the knob was reset) does not
    shorten the retirement of a startd that is not draining: its jobs keep DRP's grace."""
    now = int(time.time())
    got = startd_config(configs / "execute-drp.conf", {render.DRAIN_DUE_KNOB: str(now - 1)})
    slot = drain_slot(got, now - 60, draining=False)
    assert ExprTree(got["MAXJOBRETIREMENTTIME"] or "").eval(slot, job(ldf, "drp")) == render.retirement_seconds(
        ldf, "drp")


def test_a_drain_without_a_deadline_clears_one_left_behind(ldf: EnclaveSpec, daemons: Daemons,
                                                          configs: Path) -> None:
    """A deadline an earlier drain left on a startd (refused, or a cancel whose reset failed) that now serves the
    user pool, which lets jobs finish: a drain without a deadline sets it back first, so a job there keeps its
    week of retirement. Left in place, it would read 0: every job evicted at the drain."""
    now = int(time.time())
    startd = daemons.startds["kub-003"]
    startd.runtime[render.DRAIN_DUE_KNOB] = str(now - 1)
    path = configs / "execute-user.conf"
    left = startd_config(path, startd.runtime)
    assert evaluate(left, drain_slot(left, now - 3600, draining=True), job(ldf, "user")) == (False, 0)
    HTCondorBatch(ldf, bindings=daemons.bindings).apply(DrainStartd(actor="broker", reason="BCS 3",
                                                                    startd="kub-003"))
    got = startd_config(path, startd.runtime)
    assert startd.draining
    assert evaluate(got, drain_slot(got, now - 3600, draining=True), job(ldf, "user")) == (
        False, render.LET_FINISH_SECONDS)


def test_a_cancelled_drain_gives_back_the_pool_s_retirement(ldf: EnclaveSpec, daemons: Daemons,
                                                            configs: Path) -> None:
    """Cancelling the drain takes its deadline off the startd: read through HTCondor's parser, a DRP job there
    retires for DRP's grace again, as before the drain, not until the drain's deadline."""
    now = int(time.time())
    live = HTCondorBatch(ldf, bindings=daemons.bindings, clock=lambda: float(now))
    startd = daemons.startds["condor-011"]
    path = configs / "execute-drp.conf"
    grace = render.retirement_seconds(ldf, "drp")
    assert grace == int(ldf.pools["drp"].grace_seconds) > 0
    live.apply(DrainStartd(actor="broker", reason="BCS 1", startd="condor-011", vacate_after_seconds=120))
    during = startd_config(path, startd.runtime)
    assert ExprTree(during[render.DRAIN_DUE_ATTR] or "").eval() == now + 120
    live.cancel_drain("condor-011")
    after = startd_config(path, startd.runtime)
    assert not startd.draining
    assert after[render.DRAIN_DUE_ATTR] == render.NO_DEADLINE  # undefined, as rendered
    assert evaluate(after, drain_slot(after, now - 60, draining=True), job(ldf, "drp")) == (False, grace)


def test_check_reads_preempt_back(ldf: EnclaveSpec, tmp_path: Path) -> None:
    """``enclave render condor --check`` (``render.verify``) refuses a startd file whose PREEMPT is not the
    rendered rule: a hand edit would preempt what the broker never chose to."""
    rendered = render.execute_node(ldf, "drp")
    [path] = render.write([rendered], tmp_path)
    assert render.verify(ldf, rendered, path).startswith("START and PREEMPT as rendered")
    path.write_text(path.read_text().replace(f"PREEMPT = $({render.VACATE_DUE_MACRO})", "PREEMPT = True"))
    with pytest.raises(IntegrityError, match="different PREEMPT"):
        render.verify(ldf, rendered, path)


def test_a_job_keeps_its_own_pool_s_retirement_on_another_pool_s_startd(ldf: EnclaveSpec, configs: Path) -> None:
    """Review, stop 48: a prompt job that overflowed onto a DRP startd got DRP's 600 s from its start, which within
    the 600 s vacate time soft-killed it at once on a graceful shutdown, where docs/batch.md says overflow keeps its
    own pool's policy. Read through HTCondor's parser: a prompt job there retires as prompt's (the LDF spec lets
    prompt's jobs finish), a DRP job as DRP's, and a job of a pool the record does not know as the startd's."""
    got = startd_config(configs / "execute-drp.conf", {})
    now = int(time.time())
    slot = drain_slot(got, now - 100, draining=False)
    mjrt = ExprTree(got["MAXJOBRETIREMENTTIME"] or "")
    assert mjrt.eval(slot, job(ldf, "prompt")) == render.retirement_seconds(ldf, "prompt") > 600 + 100
    assert mjrt.eval(slot, job(ldf, "drp")) == render.retirement_seconds(ldf, "drp") == 600
    stranger = ClassAd({ldf.batch.pool_attribute: "nobody's"})
    assert mjrt.eval(slot, stranger) == render.retirement_seconds(ldf, "drp")
