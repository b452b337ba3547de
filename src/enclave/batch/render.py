"""HTCondor configuration for every role of the enclave's pool, rendered from the spec (seed §7, §7.1).

Files (one self-contained config each, so HTCondor's own parser can read any of them alone):

- ``central-manager.conf``: collector + negotiator, outside Kubernetes at a fixed address (seed §7),
  with one accounting group per pool whose dynamic quota is the pool's guaranteed share;
- ``submit-<host>.conf``: a schedd: the submit transform and submit requirements of ``policy``, the
  membership user map, and job attributes users may not change afterwards;
- ``enclave-groups.map``: owner → accounting groups, read by the schedd's ``userMap()``;
- ``execute-<pool>.conf``: a standalone execute node serving one pool;
- ``worker-pod-whole.conf`` / ``worker-pod-partitioned.conf``: the HTCondor worker container run as a
  Kubernetes pod (seed §7.1): whole node (HTCondor sees and partitions every core) or a fixed share of
  the node (cores and memory from the pod's limits, so HTCondor never overcommits its pod).

Every startd carries its pool in one knob, ``ENCLAVE_POOL``, from which both the published pool
attribute and ``ALLOW_DAEMON``/``ALLOW_WRITE`` (which schedds may connect to it as daemons) are derived:
relabelling a node (BCS 1/2) is ``ENCLAVE_POOL`` through RemoteParam plus a reconfig, and nothing else. Those
lists do not decide who claims a startd: a claim comes over its match's session, which every startd admits
(``_startd_common``); the collector's ``ALLOW_ADVERTISE_SCHEDD`` decides which schedds get matches at all.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from classad2 import ExprTree

from enclave.batch import idtoken, policy
from enclave.domain.night import TROPICAL_YEAR_S, day_bands, mean_time_offset
from enclave.errors import ExternalError, InputError, IntegrityError, Problem
from enclave.outdir import output_dir
from enclave.spec.models import Drain, EnclaveSpec, NodeRole

POOL_KNOB = "ENCLAVE_POOL"
"""The one config knob that says which pool a startd serves (set at runtime to relabel)."""
SINCE_KNOB = "ENCLAVE_POOL_SINCE"
"""When the label last changed (Unix seconds), published as EnclavePoolSince."""
RETIREMENT_KNOB = "ENCLAVE_RETIREMENT_SECONDS"
"""How long running jobs may retire when the startd drains (MaxJobRetirementTime): the pool's grace, or until a
drain's deadline (``retirement_expr``)."""
DRAIN_DUE_KNOB = "ENCLAVE_DRAIN_DUE"
"""A broker drain's deadline (Unix seconds; ``undefined`` when none), set at runtime before the drain."""
DRAIN_DUE_ATTR = "EnclaveDrainDue"
"""``DRAIN_DUE_KNOB`` as the startd publishes it: the drain's check expression reads it (``batch.live``)."""
LET_FINISH_SECONDS = 7 * 24 * 3600
"""Retirement for pools whose jobs are let finish (take_away: drain)."""
VACATE_DUE_MACRO = "ENCLAVE_VACATE_DUE"
"""Config macro holding ``policy.vacate_expr``: PREEMPT, and MAXJOBRETIREMENTTIME 0 for the jobs it is true of."""
NO_DEADLINE = "undefined"
"""A ``vacate_knob`` value: the pool's jobs left on the startd drain (run to their end)."""


def vacate_knob(pool: str) -> str:
    """The runtime knob holding the deadline of the last relabel that took a startd from ``pool`` (its entry of
    ``policy.VACATE_ATTR``). An HTCondor macro name may not hold '-' ("Illegal Identifier"): the spec refuses
    it in pool names (``spec.checks``), and '-' → '_' keeps this knob valid for any name a caller passes ('_'
    may not appear in a pool name, spec ``Name``, so the names stay apart)."""
    return f"ENCLAVE_VACATE_{pool.replace('-', '_')}"


def vacate_value(since: int, vacate_after_seconds: float | None) -> str:
    """A ``vacate_knob`` value for a relabel at ``since`` (Unix seconds): the ClassAd list ``{since, deadline}``,
    the deadline rounded up so no job goes before it; ``NO_DEADLINE`` when the old pool's jobs drain."""
    if vacate_after_seconds is None:
        return NO_DEADLINE
    return f"{{{since}, {_deadline(since, vacate_after_seconds, 'Relabel')}}}"


def drain_due(since: int, vacate_after_seconds: float) -> int:
    """A ``DRAIN_DUE_KNOB`` value for a drain at ``since`` with a deadline, rounded up so no job goes before it."""
    return _deadline(since, vacate_after_seconds, "DrainStartd")


def retirement_expr(spec: EnclaveSpec) -> str:
    """``RETIREMENT_KNOB``'s rendered value: the grace of the job's own pool (its ``batch.pool_attribute``, which the
    submit transform writes and users cannot change; looked up in a record of the ``ENCLAVE_GRACE_<pool>`` knobs),
    else of the pool the startd serves, or, once a broker drain set its deadline (``DRAIN_DUE_KNOB``), a retirement
    that lasts until that deadline for every job, then ends: each job is soft-killed at the deadline, as the twin
    and the broker's least work lost (``enclave.broker.victims``) count it.

    HTCondor (condor_startd.V6/Resource.cpp, htcondor/htcondor 7491a14) counts MaxJobRetirementTime from the
    job's start: the remaining retirement is it minus the job's run time (``Resource::evalRetirementRemaining``;
    the claim's time running, ``Claim::getJobTotalRunTime``, now − JobStart for a job never suspended, and the
    render never suspends: WANT_SUSPEND default False). And the startd starts evicting once what remains is no
    more than the job's vacate time ("begin evicting the job before the end of retirement so that if the job
    uses the full eviction time, it will finish by the end of retirement", ``Resource::retirementExpired``;
    MachineMaxVacateTime default $(MaxVacateTime) = 10 * $(MINUTE), param_info.in). So the seconds alone would
    evict a job older than them at once, and any within 600 s of them too. Before the deadline the expression
    leaves every job a week (``LET_FINISH_SECONDS`` plus its run time, so what remains is a week whatever its
    start: a graceful drain's coordinated retirement, the longest remaining of the startd's jobs, is that too,
    ``ResMgr::gracefulDrainingTimeRemaining``); from the deadline on it is 0, so the job is vacated within
    POLLING_INTERVAL (5 s) with its own vacate time (``Resource::evalMaxVacateTime``), as the relabel's PREEMPT
    does (``_vacate``). ``MY.JobStart``: the slot's "time stamp in integer seconds of when the job began
    executing" (HTCondor manual, "Machine ClassAd Attributes"); the startd evaluates MaxJobRetirementTime with
    the slot as MY. Only while the startd drains (``MY.Draining``, which ``ResMgr::startDraining`` inserts into
    every slot's ad "in case the retirement expression uses them"): a deadline left by a drain that never
    started (the startd refused it) or was cancelled does not shorten a later shutdown's retirement; the next
    broker drain sets the knob anew (``batch.live.HTCondorBatch.drain``), while a drain started by hand would
    still read a deadline left behind."""
    due = f"MY.{DRAIN_DUE_ATTR}"
    return (f"ifThenElse(isUndefined({due}) || MY.Draining =!= true, {_grace_of_the_job(spec)}, "
            f"ifThenElse(time() < {due}, {LET_FINISH_SECONDS} + time() - MY.JobStart, 0))")


def _grace_of_the_job(spec: EnclaveSpec) -> str:
    """The job's own pool's grace: a prompt job overflowing onto a DRP startd keeps prompt's (docs/batch.md), where
    the startd's pool's 600 s, from the job's start and within the 600 s vacate time, soft-killed it at once on a
    graceful shutdown (review, stop 48). The startd evaluates MaxJobRetirementTime with the slot as MY and the
    job as TARGET (``Resource::evalRetirementRemaining``: ``EvalInteger(ATTR_MAX_JOB_RETIREMENT_TIME, r_classad,
    r_cur->ad(), …)``, condor_startd.V6/Resource.cpp, htcondor/htcondor 7491a14); a record subscripted by a string
    is its attribute of that name, undefined when it has none (then the startd's pool decides)."""
    graces = "[" + "; ".join(f"{_attr_name(p)} = $(ENCLAVE_GRACE_{p})" for p in spec.pools) + "]"
    own = f"{graces}[TARGET.{spec.batch.pool_attribute}]"
    return f"ifThenElse(isInteger({own}), {own}, $(ENCLAVE_GRACE_$({POOL_KNOB})))"


def _deadline(since: int, vacate_after_seconds: float, action: str) -> int:
    if not 0 <= vacate_after_seconds < math.inf:
        raise InputError([Problem(f"{action}.vacate_after_seconds", f"{vacate_after_seconds!r} is no grace period",
                                  "give seconds >= 0, or None to let the pool's jobs finish")])
    return since + math.ceil(vacate_after_seconds)


def retirement_seconds(spec: EnclaveSpec, pool: str) -> int:
    """MaxJobRetirementTime of a startd labelled ``pool`` (the rendered ``ENCLAVE_GRACE_<pool>``), counted from each
    job's start: how long a job may run in all once its startd retires it without a broker deadline, less the
    vacate time (``retirement_ends``)."""
    settings = spec.pools[pool]
    return LET_FINISH_SECONDS if settings.take_away == Drain.DRAIN else int(settings.grace_seconds)


MACHINE_MAX_VACATE_SECONDS = 600
"""MachineMaxVacateTime, which the render leaves at its default: $(MaxVacateTime) = 10 * $(MINUTE)
(src/condor_utils/param_info.in, htcondor/htcondor 7491a14)."""


def retirement_ends(spec: EnclaveSpec, pool: str, job_start: float, now: float) -> float:
    """When the startd starts evicting a job of ``pool`` (the job's own, ``_grace_of_the_job``) it retires without a
    broker deadline (a graceful shutdown:
    the pod deleted or its node drained; a drain started by hand): retirement is counted from the job's start
    (``Resource::evalRetirementRemaining``) and eviction begins once what remains is no more than the vacate time
    (``Resource::retirementExpired``, condor_startd.V6/Resource.cpp, htcondor/htcondor 7491a14), so at
    ``job_start + retirement_seconds − MACHINE_MAX_VACATE_SECONDS``, or at once if that is past. A pool of 600 s
    grace or less vacates every job at once; one that lets jobs finish keeps them a week (the kubelet kills a
    pod's container at ``pod_grace_seconds`` before that)."""
    return max(now, job_start + retirement_seconds(spec, pool) - MACHINE_MAX_VACATE_SECONDS)


def pod_grace_seconds(spec: EnclaveSpec) -> int:
    """terminationGracePeriodSeconds of every HTCondor worker pod: the longest grace any pool gives its jobs, so a
    deleted pod's jobs retire (``retirement_seconds``) up to that before the kubelet kills the container."""
    return int(max((p.grace_seconds for p in spec.pools.values()), default=600))


POD_CPUS_ENV = "ENCLAVE_POD_CPUS"
POD_MEMORY_ENV = "ENCLAVE_POD_MEMORY_MIB"
POD_POOL_ENV = "ENCLAVE_POOL"
POD_NODE_ENV = "ENCLAVE_NODE"
POD_SINCE_ENV = "ENCLAVE_POD_SINCE"
"""When the broker created the pod (Unix seconds, the broker's clock): its pool label's since (``SINCE_KNOB``)."""
POD_INFO_DIR = "/etc/enclave/pod"
"""Where a worker pod's downward-API volume holds its pool's config as the pod's annotation says now
(``objects.worker_pod``): file ``POD_POOL_FILE``, written by ``pod_pool_config``."""
POD_POOL_FILE = "pool.conf"


def pod_pool_config(pool: str, since: float) -> str:
    """What a worker pod's startd reads from ``POD_POOL_FILE``: its pool and when it got it, as the broker set them
    last (at the pod's creation, then at each relabel)."""
    return f"{POOL_KNOB} = {pool}\n{SINCE_KNOB} = {since:.0f}\n"
TRANSFORM = "EnclavePolicy"
PREEMPTION_REQUIREMENTS = ("(SubmitterGroupResourcesInUse < SubmitterGroupQuota) && "
                           "(RemoteGroupResourcesInUse > RemoteGroupQuota) && (RemoteGroup =!= SubmitterGroup)")
"""Group-quota preemption (render option ``preemption``), the clause the HTCondor manual gives for pools with
groups and quotas (Configuration Macros, Negotiator: PREEMPTION_REQUIREMENTS: "(SubmitterGroupResourcesInUse <
SubmitterGroupQuota) && (RemoteGroupResourcesInUse > RemoteGroupQuota)"): a group below its quota may take a
slot from a group running beyond its quota, i.e. on surplus (manual, "Group Accounting": jobs of a group
using surplus may be preempted when the owning group wants its quota back). The negotiator inserts
Submitter* into the candidate job's ad and Remote* into the claimed slot's ad. Evaluated by the twin's
``quotas-preempt`` policy with classad2, so the rule simulated is the rule rendered."""
PREEMPTION_RANK = "-ifThenElse(isUndefined(TotalJobRuntime), 0, TotalJobRuntime)"
"""Which claimed slot to preempt first: the one whose job has run least (the least work lost). HTCondor's
default also weighs the running user's priority (``RemoteUserPrio * 1000000 - TotalJobRuntime``); the
enclave's pools submit as service owners of equal priority, so only the runtime term is kept."""
DEFAULT_CONFIG_DIR = "/etc/condor/config.d"
GROUP_SORT_DEFAULT = ("ifThenElse(AccountingGroup =?= \"<none>\", 3.4e+38, "
                      "ifThenElse(GroupQuota > 0, GroupResourcesInUse / GroupQuota, 3.3e+38))")
"""HTCondor's default GROUP_SORT_EXPR (htcondor/htcondor ``src/condor_utils/param_info.in``): the group using the
smallest fraction of its quota first ("starvation order"), groups without a quota after, ``<none>`` last."""


def group_sort_expr(spec: EnclaveSpec) -> str:
    """GROUP_SORT_EXPR: the groups of pools with a latency objective first, most starved first among them, then
    the others in HTCondor's default starvation order (``GROUP_SORT_DEFAULT``), ``<none>`` last.

    HTCondor manual, Configuration Macros, Negotiator: GROUP_SORT_EXPR is "a floating point ClassAd expression
    that controls the order in which the condor_negotiator considers groups when allocating resources. The
    smallest magnitude positive value goes first" (the code sorts the values ascending: GroupEntry.h,
    ``group_order``; GroupEntry.cpp, ``hgq_negotiate_with_all_groups``). The negotiator negotiates one group,
    and within it one submitter, at a time and each submitter's schedd claims its matches during its session
    (matchmaker.cpp: ``negotiateWithGroup``, ``negotiate``), so the group that goes first has its matches
    claimed first, ``cycle_base_s`` plus one turn after the cycle starts (``enclave.twin.sim.Sim._negotiate``)
    instead of after every other submitter's turn. Order is all it changes: each group is still held to the
    slots its quota and surplus allocate it. Values: a latency group's usage / quota r maps to r / (1 + r), in
    [0, 1), and to 1 without a quota; the others' to 2 + r, or 3.3e+38 without a quota; ``<none>`` 3.4e+38.
    GroupResourcesInUse and GroupQuota are reals in the negotiator's group ad (GroupEntry.cpp assigns them as
    doubles), so the divisions do not truncate."""
    latency = [policy.accounting_group(spec, p) for p, pool in spec.pools.items() if pool.latency_objective]
    if not latency:
        return GROUP_SORT_DEFAULT
    names = ", ".join(json.dumps(g) for g in dict.fromkeys(latency))
    return ("ifThenElse(AccountingGroup =?= \"<none>\", 3.4e+38, "
            f"ifThenElse(member(AccountingGroup, {{{names}}}), "
            "ifThenElse(GroupQuota > 0, GroupResourcesInUse / (GroupResourcesInUse + GroupQuota), 1.0), "
            "ifThenElse(GroupQuota > 0, 2.0 + GroupResourcesInUse / GroupQuota, 3.3e+38)))")


PRE_JOB_RANK_CORE_WEIGHT = 100000
"""What one unclaimed core weighs against one MiB in HTCondor's default NEGOTIATOR_PRE_JOB_RANK (below); the twin
orders its candidate slots by it (``enclave.twin.sim.Sim._candidates``)."""
PRE_JOB_RANK_DEFAULT = ("(10000000 * My.Rank) + (1000000 * (RemoteOwner =?= UNDEFINED)) - "
                        f"({PRE_JOB_RANK_CORE_WEIGHT} * Cpus) - Memory")
"""HTCondor's default NEGOTIATOR_PRE_JOB_RANK (htcondor/htcondor ``src/condor_utils/param_info.in``, read at
7491a14; the test reads it back from the installed HTCondor): the startd's own RANK, then unclaimed slots, then the
smallest. Evaluated with the slot as MY and the job as TARGET; the negotiator sorts a job's candidate slots by it
first, then by the job's Rank (HTCondor manual, "The Negotiator's algorithm": "sort the potential match list, first
by NEGOTIATOR_PRE_JOB_RANK ..."; matchmaker.cpp, ``calculateRanks``)."""
OWN_POOL_RANK = 10**8
"""Weight of the own-pool term in ``pre_job_rank``: above the default's whole range for any slot a node can hold
(a startd RANK of 0, 1e6 for an unclaimed slot, -1e5 per core and -1 per MiB: some -1.4e7 for 128 cores and
1 TiB), and small enough that the negotiator, which keeps the rank as a float (matchmaker.cpp,
``EvalNegotiatorMatchRank``: ``rank = (float)val``), still tells slots 8 MiB apart (float's step at 1e8: 8)."""


def pre_job_rank(spec: EnclaveSpec) -> str:
    """NEGOTIATOR_PRE_JOB_RANK: a slot of the job's own pool before any other pool's, then HTCondor's default
    order among them (``PRE_JOB_RANK_DEFAULT``). An overflowing job (``policy.overflow_pools``) so fills its own
    pool's free slots first and takes another pool's only for what they cannot hold; the twin's negotiator offers a
    submitter its own pool's slots first, and the smallest first among them, in the same way
    (``enclave.twin.sim.Sim._candidates``)."""
    a = spec.batch.pool_attribute
    return f"({OWN_POOL_RANK} * (MY.{a} =?= TARGET.{a})) + {PRE_JOB_RANK_DEFAULT}"


@dataclass(frozen=True)
class Rendered:
    name: str
    role: str
    """central-manager | submit | execute | worker-pod | usermap"""
    subsystem: str
    """The HTCondor subsystem whose view of the file matters (for read-back)."""
    text: str
    host: str = ""
    """For a submit file: the submit host whose schedd reads it (its transform names that host)."""


def _header(spec: EnclaveSpec, what: str) -> list[str]:
    return [
        f"# {what}",
        f"# Rendered by `enclave render condor` from the spec of enclave '{spec.cluster.name}'.",
        "# Do not edit by hand: change enclave.yaml and render again.",
        "",
    ]


BROKER_IDENTITY = "enclave-broker"
"""The user of the IDTOKEN enclave's own pods present to HTCondor (``deploy.HTCONDOR_SECRET``, docs/deploy.md): the
broker's drains (ADMINISTRATOR: ``DRAIN_JOBS``, condor_startd.V6 startd_main.cpp) and its reconfigs through a
startd host's master (ADMINISTRATOR) and runtime settings (CONFIG, or ADMINISTRATOR through the rendered
SETTABLE_ATTRS_ADMINISTRATOR: daemon_core.cpp accepts a knob at any level that lists it) come from the
``enclave-api`` pod, whose address is no fixed host, so the startd hosts admit it by identity alone —
authenticated, signed and encrypted — and no other daemon does (``_startd_common``), but for the schedds' WRITE:
its holds and removals of departed accounts' jobs (``submit_host``)."""


def _security(spec: EnclaveSpec) -> list[str]:
    # Identities are authenticated (IDTOKENS between daemons, FS for local tools) and every hop is
    # signed and encrypted, so the host-and-identity lists below are trustworthy.
    return [
        f"CONDOR_HOST = {spec.batch.central_manager}",
        "COLLECTOR_HOST = $(CONDOR_HOST)",
        "SEC_DEFAULT_AUTHENTICATION = REQUIRED",
        "SEC_DEFAULT_AUTHENTICATION_METHODS = FS, IDTOKENS",
        "SEC_DEFAULT_ENCRYPTION = REQUIRED",
        "SEC_DEFAULT_INTEGRITY = REQUIRED",
        "SEC_READ_AUTHENTICATION = OPTIONAL",
        "# One trust domain for the pool: a client presents only tokens whose issuer is the server's TRUST_DOMAIN",
        "# (condor_auth_passwd.cpp, checkToken), which defaults to each host's own name (UID_DOMAIN, FULL_HOSTNAME).",
        "TRUST_DOMAIN = $(CONDOR_HOST)",
        "ALLOW_READ = *",
        "ALLOW_ADMINISTRATOR = condor@*/$(CONDOR_HOST)",
        "ALLOW_CONFIG = condor@*/$(CONDOR_HOST)",
        "ALLOW_NEGOTIATOR = condor@*/$(CONDOR_HOST)",
        "",
    ]


def _daemons(hosts: Sequence[str]) -> str:
    return ", ".join(f"condor@*/{h}" for h in hosts)


def _ad_value(text: str) -> str:
    """A ClassAd expression as a config value: one line, and no '$' for the macro expander to eat."""
    if "$" in text or "\n" in text:
        raise InputError([Problem("render", f"cannot write {text!r} into HTCondor config",
                                  "remove '$' and line breaks from names in the spec")])
    return text


DEDICATED_KNOB = "ENCLAVE_DEDICATED_POOL"
"""On a schedd dedicated to one pool (batch.htcondor.dedicated_schedds): that pool, whose jobs alone it takes."""


def _settings(spec: EnclaveSpec, role: str) -> list[str]:
    """The operator's HTCondor settings (spec batch.htcondor) that the daemons of ``role`` read; a setting the
    spec leaves out is not written, so HTCondor's own default holds."""
    h = spec.batch.htcondor
    knobs = {
        "central-manager": [("NEGOTIATOR_INTERVAL", h.negotiator_interval),
                            ("NEGOTIATOR_CYCLE_DELAY", h.negotiator_cycle_delay),
                            ("NEGOTIATOR_MIN_INTERVAL", h.negotiator_min_interval)],
        "submit": [("JOB_START_COUNT", h.job_start_count), ("JOB_START_DELAY", h.job_start_delay),
                   ("SCHEDD_INTERVAL", h.schedd_interval), ("SUBMIT_SEND_RESCHEDULE", h.submit_send_reschedule)],
        "startd": [("CLAIM_WORKLIFE", h.claim_worklife)],
    }[role]
    lines = [f"{name} = {value}" for name, value in knobs if value is not None]
    if role == "startd" and (per_pool := _pool_worklives(spec)):
        lines = per_pool  # CLAIM_WORKLIFE by pool, batch.htcondor's value the fallback of those that set none
    if not lines:
        return []
    return ["", "# Scheduling pace set in the spec (batch.htcondor); the twin reads these back.", *lines]


CLAIM_WORKLIFE_DEFAULT = 1200
"""htcondor/htcondor 7491a14 src/condor_utils/param_info.in, [CLAIM_WORKLIFE] default=1200."""
WORKLIFE_KNOB = "ENCLAVE_WORKLIFE"
"""Where pools set their own CLAIM_WORKLIFE: the worklife of a pool that does not (and of the twin's unlabelled
slots); ``<knob>_<pool>`` is each pool's."""
DAYTIME_KNOB = "ENCLAVE_DAYTIME"
"""The test of the day a pool's worklife by day reads (``daytime``)."""
CALM_KNOB = "ENCLAVE_CALM"
"""The test of the broker's word that the latency pools are calm, which a pool's worklife while calm reads."""
BROKER_AD_TYPE = "EnclaveBroker"
"""MyType of the ad the broker advertises to the collector each cycle (``HTCondorBatch.advertise_calm``)."""
CALM_ATTR = "EnclaveCalm"
"""The broker ad's word: True while the latency pools are calm (``enclave.broker.calm``)."""
CALM_UNTIL_ATTR = "EnclaveCalmUntil"
"""What the startd cron job (``calm_cron``) puts in each slot ad: until when the broker's word of calm holds."""
CALM_POLL_SECONDS = 60
"""How often a startd asks the collector for the broker's ad (STARTD_CRON_<name>_PERIOD)."""
CALM_STALE_CYCLES = 3
"""The broker's word of calm holds this many broker cycles after the collector last heard it: a cycle or two the
broker misses change nothing, and a broker that has stopped leaves the pools' own worklives in force."""


def claim_worklife(spec: EnclaveSpec, pool: str | None = None) -> int:
    """The CLAIM_WORKLIFE a startd serving ``pool`` reads (None: a startd of no pool): the pool's own, else
    batch.htcondor's, else HTCondor's default."""
    own = spec.pools[pool].claim_worklife if pool in spec.pools else None
    common = spec.batch.htcondor.claim_worklife
    return own if own is not None else CLAIM_WORKLIFE_DEFAULT if common is None else common


def _pool_worklives(spec: EnclaveSpec) -> list[str]:
    """CLAIM_WORKLIFE per pool (spec pools.<name>.claim_worklife), chosen by the pool the startd serves now: a
    relabel sets the pool knob and reconfigs, and the startd reads CLAIM_WORKLIFE again as it does START. The
    startd checks it each time a job ends on a claim (Resource.cpp ``claimWorklifeExpired``: claim age against
    the slot ad's CLAIM_WORKLIFE, -1 never)."""
    if all(p.claim_worklife is None and p.day_claim_worklife is None and p.calm_claim_worklife is None
           for p in spec.pools.values()):
        return []
    lines = ["# CLAIM_WORKLIFE per pool (pools.<name>.claim_worklife), by the pool this startd serves now.",
             f"{WORKLIFE_KNOB} = {claim_worklife(spec)}"]
    if any(p.day_claim_worklife is not None for p in spec.pools.values()):
        lines += ["# The hours of local mean time that are day in each season at the site "
                  "(pools.<name>.day_claim_worklife).",
                  f"{DAYTIME_KNOB} = {daytime(spec)}"]
    if calm_pools(spec):
        lines += calm_cron(spec)
    lines += [f"{WORKLIFE_KNOB}_{name} = {_pool_worklife(spec, name, f'$({DAYTIME_KNOB})', f'$({CALM_KNOB})')}"
              for name in spec.pools]
    return [*lines, f"CLAIM_WORKLIFE = $({WORKLIFE_KNOB}_$({POOL_KNOB}))"]


def calm_pools(spec: EnclaveSpec) -> list[str]:
    """The pools whose startds read the broker's word of calm (``pools.<name>.calm_claim_worklife``): where there
    are any, the startds run the cron job, the collector takes the broker's ad, and the broker advertises it."""
    return [name for name, p in spec.pools.items() if p.calm_claim_worklife is not None]


def calm_test() -> str:
    """True while the broker's word of calm holds: the slot ad's ``CALM_UNTIL_ATTR`` is later than the startd's
    clock. ``=?=`` makes a slot that has no word yet (the cron job has not run, no broker ad) not calm. The startd
    looks CLAIM_WORKLIFE up in the slot ad alone (Resource.cpp ``claimWorklifeExpired``:
    ``r_classad->LookupInteger("CLAIM_WORKLIFE", …)``, htcondor 7491a14), with no job ad beside it, so no job's
    attribute of the same name can stand in for the word."""
    return f"(({CALM_UNTIL_ATTR} > time()) =?= true)"


def calm_constraint() -> str:
    """Which collector ads are the broker's (``HTCondorBatch.advertise_calm``)."""
    return f'MyType == "{BROKER_AD_TYPE}"'


def calm_until(spec: EnclaveSpec) -> str:
    """Evaluated on the broker's ad: until when its word of calm holds (0: it says not calm)."""
    stale = CALM_STALE_CYCLES * round(spec.broker.cycle_seconds)
    return f"ifThenElse({CALM_ATTR} =?= true, LastHeardFrom + {stale}, 0)"


def calm_cron(spec: EnclaveSpec) -> list[str]:
    """A startd cron job that asks the collector for the broker's ad once a minute and puts into every slot ad
    until when its word of calm holds (``CALM_UNTIL_ATTR``): the collector's LastHeardFrom for the ad (set as the
    ad arrives, collector_engine.cpp ``CollectorEngine::updateClassAd``, htcondor 7491a14) plus
    ``CALM_STALE_CYCLES`` broker cycles, or 0 when the broker says not calm. A startd cron job's output is ClassAd
    attributes, one ``name = value`` a line, published into the slot ads (HTCondor manual, "Startd Cron");
    condor_status ``-format`` prints an attribute or an expression of the ad (condor_status(1)). ARGS in the
    quoted form (cron_job_params.cpp ``InitArgs``: ``AppendArgsV1RawOrV2Quoted``): single quotes group an
    argument, a double quote inside is doubled."""
    constraint = calm_constraint().replace('"', '""')
    args = f"-any -constraint '{constraint}' -format '{CALM_UNTIL_ATTR} = %d\\n' '{calm_until(spec)}'"
    return ["# Whether the broker says the latency pools are calm (pools.<name>.calm_claim_worklife): a cron job "
            "asks the collector for its ad.",
            "STARTD_CRON_JOBLIST = $(STARTD_CRON_JOBLIST) ENCLAVECALM",
            "STARTD_CRON_ENCLAVECALM_EXECUTABLE = $(BIN)/condor_status",
            f'STARTD_CRON_ENCLAVECALM_ARGS = "{args}"',
            f"STARTD_CRON_ENCLAVECALM_PERIOD = {CALM_POLL_SECONDS}",
            "STARTD_CRON_ENCLAVECALM_MODE = periodic",
            f"{CALM_KNOB} = {calm_test()}"]


def daytime(spec: EnclaveSpec) -> str:
    """True in the hours that are day on every day of the season at the site (``night.day_bands``) and before the
    pre-warm's lead (broker.prewarm_lead_seconds: from then the broker readies prompt's capacity, and the claims
    of the night's overflow must be ending), by the startd's own clock: ``time()`` is seconds since the epoch in
    the ClassAd language (HTCondor manual, ClassAd functions), and CLAIM_WORKLIFE is an expression the startd
    evaluates against the slot ad each time a job ends (startd configuration, CLAIM_WORKLIFE: "This expression
    specifies…"; ResMgr.cpp inserts it with ``configInsert``, which assigns it as an expression, htcondor
    7491a14). A season in which some day has no day before the lead (a polar night) adds no hours."""
    site = spec.cluster.site
    lead = round(spec.broker.prewarm_lead_seconds)
    bands = [] if site is None else [b for b in day_bands(site, spec.broker.twilight_altitude_deg)
                                     if b.end - lead > b.start]
    if site is None or not bands:
        pools = [name for name, p in spec.pools.items() if p.day_claim_worklife is not None]
        raise InputError([Problem(f"pools.{name}.day_claim_worklife", "no hours are day at cluster.site before the "
                                  "pre-warm's lead in any season of the year, so a startd cannot tell the day by "
                                  "its clock", "remove day_claim_worklife, or shorten broker.prewarm_lead_seconds")
                          for name in pools])
    offset = round(mean_time_offset(site))
    clock = f"(time() {'+' if offset >= 0 else '-'} {abs(offset)}) % 86400"
    season = f"time() % {TROPICAL_YEAR_S}"
    return "(" + " || ".join(f"({season} >= {b.since} && {season} < {b.until} && {clock} >= {b.start} && "
                             f"{clock} < {b.end - lead})" for b in bands) + ")"


def _pool_worklife(spec: EnclaveSpec, pool: str, day: str, calm: str) -> str:
    """What ``<knob>_<pool>`` holds: the pool's worklife; by day (``day``, the daytime test) its worklife by day,
    and while the broker says calm (``calm``, ``calm_test``) its worklife while calm, where it sets them."""
    conf = spec.pools[pool]
    if conf.day_claim_worklife is None and conf.calm_claim_worklife is None:
        return f"$({WORKLIFE_KNOB})" if conf.claim_worklife is None else str(conf.claim_worklife)
    worklife = str(claim_worklife(spec, pool))
    if conf.calm_claim_worklife is not None:
        worklife = f"ifThenElse({calm}, {conf.calm_claim_worklife}, {worklife})"
    if conf.day_claim_worklife is not None:
        worklife = f"ifThenElse({day}, {conf.day_claim_worklife}, {worklife})"
    return worklife


def worklife_expression(spec: EnclaveSpec, pool: str | None) -> bool:
    """Whether a startd serving ``pool`` reads its CLAIM_WORKLIFE as an expression of its clock or of the broker's
    word (a worklife by day or while calm), not a number."""
    return pool in spec.pools and (spec.pools[pool].day_claim_worklife is not None
                                   or spec.pools[pool].calm_claim_worklife is not None)


def worklife_read(spec: EnclaveSpec, pool: str | None) -> str:
    """CLAIM_WORKLIFE as HTCondor reads it (its macros expanded) on a startd serving ``pool``."""
    if pool is not None and worklife_expression(spec, pool):
        day = daytime(spec) if spec.pools[pool].day_claim_worklife is not None else ""
        return _pool_worklife(spec, pool, day, calm_test())
    return str(claim_worklife(spec, pool))


def memory_per_core_mib(spec: EnclaveSpec) -> int:
    """MiB per core of the batch-only nodes (all non-control-plane nodes if there are none): the memory that
    counts as one core in a memory-aware SLOT_WEIGHT."""
    groups = [g for g in spec.cluster.node_groups if g.role == NodeRole.BATCH_ONLY] or [
        g for g in spec.cluster.node_groups if g.role != NodeRole.CONTROL_PLANE]
    return int(sum(g.count * g.memory_gib * 1024 for g in groups) // sum(g.count * g.cores for g in groups))


def slot_weight(spec: EnclaveSpec) -> str:
    """SLOT_WEIGHT counting a slot's memory as cores (HTCondor manual, Configuration Macros, startd:
    SLOT_WEIGHT, default ``Cpus``; group quotas and usage are in slot weight): a 1-core job holding a
    quarter of a node's memory weighs a quarter of the node, as the dominant resource it uses."""
    per_core = f"{memory_per_core_mib(spec)}.0"  # a real: ClassAd division of two integers truncates
    return f"ifThenElse(Memory / {per_core} > Cpus, Memory / {per_core}, Cpus)"


def _preemption() -> list[str]:
    return [
        "",
        "# Group-quota preemption: a group below its quota may preempt jobs running on another group's surplus.",
        "# Defaults changed: PREEMPTION_REQUIREMENTS is False (no preemption); NEGOTIATOR_CONSIDER_PREEMPTION",
        "# is True already and is set so the file says it.",
        "NEGOTIATOR_CONSIDER_PREEMPTION = True",
        f"PREEMPTION_REQUIREMENTS = {PREEMPTION_REQUIREMENTS}",
        f"PREEMPTION_RANK = {PREEMPTION_RANK}",
    ]


def central_manager(spec: EnclaveSpec, *, preemption: bool = False) -> Rendered:
    lines = _header(spec, "Central manager: collector and negotiator, outside Kubernetes (seed §7).")
    lines += _security(spec)
    groups = [policy.accounting_group(spec, p) for p in spec.pools]
    lines += [
        "# The workers' configs point here: the manager keeps one address, and its logs and state live on",
        "# a disk that survives restarts, which a container would not give it (seed §7).",
        "DAEMON_LIST = MASTER, COLLECTOR, NEGOTIATOR",
        f"COLLECTOR_NAME = enclave {spec.cluster.name}",
        # The pool's real bound on who claims a startd (the startds' ALLOW_DAEMON is none, _startd_common): the
        # negotiator matches only submitters the collector lists, and the collector takes UPDATE_SCHEDD_AD and
        # UPDATE_SUBMITTOR_AD at ADVERTISE_SCHEDD (htcondor/htcondor 7491a14 condor_collector.V6/collector.cpp),
        # which DAEMON does not imply (condor_utils/condor_perms.cpp, aImpliedNext) and which reads ALLOW_DAEMON
        # only when ALLOW_ADVERTISE_SCHEDD is unset (aConfigNext).
        "# Only the enclave's submit hosts may advertise a schedd, so only their jobs are ever matched.",
        f"ALLOW_ADVERTISE_SCHEDD = {_daemons(spec.batch.submit_hosts)}",
        "ALLOW_ADVERTISE_STARTD = condor@*/*",
        "ALLOW_ADVERTISE_MASTER = condor@*/*",
        f"ALLOW_DAEMON = condor@*/$(CONDOR_HOST), {_daemons(spec.batch.submit_hosts)}",
        *_broker_advertises(spec),
        "",
        "# One accounting group per pool; a pool's guaranteed share is its dynamic quota, and a group may",
        "# use idle capacity beyond it. Nodes move between pools by ClassAd (the broker), not by quota.",
        f"GROUP_NAMES = {', '.join(dict.fromkeys(groups))}",
        "GROUP_ACCEPT_SURPLUS = True",
        "# Latency pools' groups negotiate first (their matches are claimed one submitter's turn into the",
        "# cycle), the others most starved first (HTCondor's default order).",
        f"GROUP_SORT_EXPR = {group_sort_expr(spec)}",
    ]
    if policy.overflow_pools(spec):
        lines += ["# A job goes to a slot of its own pool before any other: latency pools' jobs may run on every",
                  "# startd, and take another pool's slots only where their own are full.",
                  f"NEGOTIATOR_PRE_JOB_RANK = {pre_job_rank(spec)}"]
    seen: set[str] = set()
    for name, pool in spec.pools.items():
        group = policy.accounting_group(spec, name)
        if group in seen:
            continue
        seen.add(group)
        lines.append(f"GROUP_QUOTA_DYNAMIC_{group} = {pool.guaranteed_share:g}")
    lines += _settings(spec, "central-manager")
    if preemption:
        lines += _preemption()
    return Rendered("central-manager.conf", "central-manager", "NEGOTIATOR", "\n".join(lines) + "\n")


def _broker_advertises(spec: EnclaveSpec) -> list[str]:
    """Where a pool reads the broker's word of calm (``calm_cron``): the collector takes the broker's generic ad
    at DAEMON (collector.cpp registers UPDATE_AD_GENERIC at DAEMON, htcondor 7491a14). The startd, schedd and
    master ads keep their own ALLOW_ADVERTISE_* above, which DAEMON does not reach."""
    if not calm_pools(spec):
        return []
    return ["# The broker advertises its word of calm (pools.<name>.calm_claim_worklife) as a generic ad.",
            f"ALLOW_DAEMON = $(ALLOW_DAEMON), {BROKER_IDENTITY}@*/*"]


def commons_schedd(spec: EnclaveSpec, host: str) -> bool:
    """Whether submit host ``host`` is a schedd in the Kubernetes commons that notebook pods submit to: a Service
    of the notebook namespace, ``<service>.<namespace>.svc`` and possibly the cluster domain after it (Kubernetes
    docs, "DNS for Services and Pods"), e.g. ``schedd.jupyter-lsst.svc``."""
    labels = host.split(".")
    return len(labels) >= 3 and labels[1] == spec.notebooks.namespace and labels[2] == "svc"


def _queue_writers(spec: EnclaveSpec, host: str) -> list[str]:
    """ALLOW_WRITE of the schedd on ``host``: who may submit to its queue (QMGMT_WRITE_CMD is registered at WRITE,
    htcondor/htcondor 7491a14 src/condor_schedd.V6/schedd.cpp).

    IpVerify matches an entry's host part against the peer's IP address and the names it resolves to
    (src/condor_io/condor_ipverify.cpp ``IpVerify::Verify``). A login host's users connect from the host itself;
    notebook pods reach a commons schedd from their own pod addresses, which are in no list and change with each
    spawn, and the spec names no pod network to list instead. So a commons schedd admits any authenticated user
    from anywhere: every method it accepts authenticates (SEC_DEFAULT_AUTHENTICATION = REQUIRED, ``_security``;
    FS works only on the host, so a pod presents the IDTOKEN the hub minted for its account, ``_daemon_peers``),
    and the network bound is the notebook namespace's NetworkPolicies (``access.render.namespace_objects``:
    default-deny, then the namespace's notebooks on 9618 alone: ``allow-notebook-submit``)."""
    if commons_schedd(spec, host):
        return ["# Notebook pods submit here from pod addresses no list can name: any authenticated user; the",
                "# notebook namespace's NetworkPolicies (default-deny, its notebooks on 9618) are the network bound.",
                "ALLOW_WRITE = *@*/*"]
    return ["# Users submit on this host; nobody else can write to the queue.",
            "ALLOW_WRITE = *@*/$(FULL_HOSTNAME), *@*/$(IP_ADDRESS), condor@*/$(CONDOR_HOST)"]


def _daemon_peers(spec: EnclaveSpec, host: str) -> list[str]:
    """ALLOW_DAEMON of the schedd on ``host``, and on a commons schedd what notebook pods' tokens need
    (docs/batch.md, "Notebook pods' tokens").

    A commons schedd holds the key notebook tokens are signed with (spec ``notebooks.batch_tokens.key``), and its
    holder, the hub, can mint any ``sub`` with it; an IDTOKEN's identity is its ``sub`` whatever key signed it
    (condor_auth_passwd.cpp ``analyze_token``). So here:

    - ``UID_DOMAIN`` is the domain notebook tokens name (``idtoken.commons_uid_domain``), by default the pod's own
      host name (param_info.in: $(FULL_HOSTNAME)), which changes with each pod; TRUST_DOMAIN stays the pool's
      (``_security`` sets it; its default would follow UID_DOMAIN);
    - no token fetch or request: with a notebook's token a client could ask this schedd for a token of the same
      identity signed with the pool's key, with no expiry unless it asks for one (daemon_core_main.cpp
      ``handle_dc_session_token``: SEC_ENABLE_TOKEN_FETCH, the requested lifetime else -1; SEC_ENABLE_TOKEN_REQUEST
      for ``handle_dc_start_token_request`` and the approvals; both default true, param_info.in), good on every
      daemon and past the pod's end;
    - DAEMON only from the central manager: a login host's schedd admits ``condor@*/*``, but here a minted
      ``condor@…`` would be a daemon from any pod. The startds do not need it: a schedd talks to its claimed
      startds over the claim's session, which it creates at DAEMON for ``execute-side@matchsession``
      (schedd.cpp, ``CreateNonNegotiatedSecuritySession``; SEC_ENABLE_MATCH_PASSWORD_AUTHENTICATION, which the
      pool keeps true), and the negotiator comes at NEGOTIATOR.
    """
    if not commons_schedd(spec, host):
        return ["ALLOW_DAEMON = condor@*/$(CONDOR_HOST), condor@*/*"]
    tokens = spec.notebooks.batch_tokens
    lines = ["ALLOW_DAEMON = condor@*/$(CONDOR_HOST)",
             "# Notebook pods' tokens name <account>@this domain, the same for every commons schedd.",
             f"UID_DOMAIN = {idtoken.commons_uid_domain(spec)}",
             "# A notebook's token must not buy one signed with the pool's key, valid everywhere and for ever.",
             "SEC_ENABLE_TOKEN_FETCH = False",
             "SEC_ENABLE_TOKEN_REQUEST = False"]
    if tokens.enabled:
        lines += ["# The key the hub signs notebook tokens with: this file, on the commons schedds and the hub alone.",
                  f"{NOTEBOOK_KEY_KNOB} = $(SEC_PASSWORD_DIRECTORY)/{tokens.key}"]
    return lines


NOTEBOOK_KEY_KNOB = "ENCLAVE_NOTEBOOK_KEY"
"""On a commons schedd with notebook tokens: where its notebook signing key must be (for the operator; HTCondor
reads every file of SEC_PASSWORD_DIRECTORY as a key of that name, store_cred.cpp ``getTokenSigningKeyPath``)."""


def submit_host(spec: EnclaveSpec, host: str, *, config_dir: str = DEFAULT_CONFIG_DIR) -> Rendered:
    if host not in spec.batch.submit_hosts:
        raise InputError([Problem("submit host", f"'{host}' is not in batch.submit_hosts",
                                  f"use one of: {', '.join(spec.batch.submit_hosts)}")])
    lines = _header(spec, f"Submit host {host}: a schedd trusted by the enclave's startds (seed §7).")
    lines += _security(spec)
    lines += [
        "DAEMON_LIST = MASTER, SCHEDD",
        "# The name the collector lists this schedd under (batch.live finds it by it). START trusts the",
        f"# {policy.SCHEDD_ATTR} the transform below writes, this same name as a literal.",
        f"SCHEDD_NAME = {host}",
        *_queue_writers(spec, host),
        "# The broker, from its pod: holds and removes the jobs of departed accounts (ACT_ON_JOBS is WRITE,",
        "# schedd.cpp), others' jobs, so as a queue super user. HTCondor's default list is 'root, condor'",
        "# (param_info.in); an entry with an @ is the whole authenticated name, a bare one user@UID_DOMAIN",
        "# (qmgmt.cpp), this host's: the broker's token names it enclave-broker@<central manager>.",
        f"ALLOW_WRITE = $(ALLOW_WRITE), {BROKER_IDENTITY}@*/*",
        f"QUEUE_SUPER_USERS = root, condor, {BROKER_IDENTITY}@$(CONDOR_HOST)",
        *_daemon_peers(spec, host),
        "",
        "# Membership: owner -> accounting groups the owner may use (userMap in the transform below).",
        f"SCHEDD_CLASSAD_USER_MAP_NAMES = $(SCHEDD_CLASSAD_USER_MAP_NAMES) {policy.GROUP_MAP}",
        f"CLASSAD_USER_MAPFILE_{policy.GROUP_MAP} = {config_dir}/enclave-groups.map",
        "",
        "# Whatever the user wrote, the schedd decides the pool, accounting group and submit host. EVALSET",
        "# stores each value as a literal, so an expression that would read the machine ad cannot survive.",
        "# The submit host is this host's name, not derived from GlobalJobId, which the user may rewrite",
        "# before the transform runs (policy.transform_rules).",
        f"JOB_TRANSFORM_NAMES = $(JOB_TRANSFORM_NAMES) {TRANSFORM}",
        f"JOB_TRANSFORM_{TRANSFORM} @=end",
    ]
    for attr, rule in policy.transform_rules(spec, host):
        lines.append(f"   EVALSET {attr} {_ad_value(repr(rule))}")
    lines.append("@end")
    reqs = policy.submit_requirements(spec)
    dedicated = [p for p, h in spec.batch.htcondor.dedicated_schedds.items() if h == host]
    if dedicated:
        reqs = [*reqs, policy.dedicated_requirement(spec, dedicated[0])]
    lines += ["", f"SUBMIT_REQUIREMENT_NAMES = $(SUBMIT_REQUIREMENT_NAMES) {' '.join(r.name for r in reqs)}"]
    for r in reqs:
        lines.append(f"SUBMIT_REQUIREMENT_{r.name} = {_ad_value(repr(r.expr))}")
        lines.append(f"SUBMIT_REQUIREMENT_{r.name}_REASON = {_ad_value(repr(r.reason))}")
    if dedicated:
        lines += [f"# This schedd serves pool '{dedicated[0]}' alone (batch.htcondor.dedicated_schedds).",
                  f"{DEDICATED_KNOB} = {dedicated[0]}"]
    lines += _settings(spec, "submit")
    lines += _leftovers(spec)
    protected = [policy.SCHEDD_ATTR, spec.batch.pool_attribute, "AcctGroup", "AcctGroupUser", "AccountingGroup"]
    lines += [
        "",
        "# After submit, only the schedd and queue superusers may change what START relies on.",
        "IMMUTABLE_JOB_ATTRS = $(IMMUTABLE_JOB_ATTRS) GlobalJobId",
        f"PROTECTED_JOB_ATTRS = $(PROTECTED_JOB_ATTRS) {' '.join(protected)}",
        # htcondor/htcondor 7491a14 src/condor_schedd.V6/qmgmt.cpp: ModifyAttrCheck ignores a client's write of a
        # SECURE_JOB_ATTRS attribute (IGNORE_ATTEMPTS_TO_SET_SECURE_JOB_ATTRS default true, param_info.in) even
        # before commit, where IMMUTABLE_JOB_ATTRS does not hold; NewProcInternal writes GlobalJobId straight
        # into the queue, past that check. Not the transform's attributes: its writes made during the user's
        # commit are ignored the same way.
        "# GlobalJobId as the schedd wrote it: whatever the user sends for it is ignored (logs and history).",
        "SECURE_JOB_ATTRS = $(SECURE_JOB_ATTRS) GlobalJobId",
    ]
    return Rendered(f"submit-{host}.conf", "submit", "SCHEDD", "\n".join(lines) + "\n", host=host)


def usermap(spec: EnclaveSpec, members: Mapping[str, Sequence[str]] | None = None) -> Rendered:
    return Rendered("enclave-groups.map", "usermap", "SCHEDD", policy.membership_map(spec, members))


def settable_knobs(spec: EnclaveSpec) -> list[str]:
    """The knobs a startd lets the manager host set at runtime (SETTABLE_ATTRS_CONFIG), and only these."""
    return [POOL_KNOB, SINCE_KNOB, DRAIN_DUE_KNOB, *(vacate_knob(p) for p in spec.pools)]


PREEMPTED = "!isUndefined(MY.PreemptingUser)"
"""True on a slot whose claim another claim is preempting (the ``preemption`` render's group-quota preemption; the
enclave sets no startd RANK). The startd publishes PreemptingUser (with PreemptingRank, PreemptingOwner, …) while
its preempting claim holds the requesting schedd's user, and deletes them once its preempting claim holds none
(htcondor/htcondor 7491a14 src/condor_startd.V6/claim.cpp ``Claim::publishPreemptingClaim``; command.cpp
``request_claim`` loads that user into the preempting claim when it accepts it, ``Claim::loadAccountingInfo``; a
slot entering Claimed gets a fresh, empty one, ResState.cpp). It refreshes the slot's ad before each policy evaluation
(ResMgr.cpp ``ResMgr::eval_all``: ``compute_dynamic``, then ``Resource::eval_state``), so the preempted job sees
it within a POLLING_INTERVAL. Drains and shutdowns make no preempting claim, so their retirement stays."""


def _vacate(spec: EnclaveSpec, preemption: bool = False) -> list[str]:
    """PREEMPT and MAXJOBRETIREMENTTIME: a relabel's deadline (``Relabel.vacate_after_seconds``) evicts the old
    pool's jobs still running at it (``policy.vacate_expr``), and nothing else is preempted. With ``preemption``
    (group-quota preemption), a job whose claim another claim preempts has no retirement either (``PREEMPTED``):
    it would hold its slot that long while the preempting job waits, and prompt's objective is 60 s.

    HTCondor's defaults, changed here (htcondor/htcondor 7491a14, src/condor_utils/param_info.in: PREEMPT
    default=False; MAXJOBRETIREMENTTIME has no entry and the startd publishes 0 when it is unset,
    condor_startd.V6/Resource.cpp). MaxJobRetirementTime is evaluated with the slot as MY and the job as TARGET
    and counted from the job's start (``Resource::evalRetirementRemaining``): 0 for a job PREEMPT is true of, so
    it is vacated (WANT_VACATE default True: soft kill, then MachineMaxVacateTime, default 600 s, before the hard
    kill) as soon as the startd sees the deadline passed, within POLLING_INTERVAL (default 5 s) while claimed
    (HTCondor manual, "Configuration for Execution Points", "Claimed State"). Every other job keeps its pool's
    retirement when the startd drains or shuts down. One definition: HTCondor keeps the last of several."""
    a = spec.batch.pool_attribute
    evict_now = f"$({VACATE_DUE_MACRO})" + (f" || {PREEMPTED}" if preemption else "")
    entries = "; ".join(f"{_attr_name(p)} = $({vacate_knob(p)})" for p in spec.pools)
    lines = ["# A relabel that vacates (the old pool's take_away: vacate) sets the old pool's deadline at runtime:",
             f"# {{since, deadline}} in Unix seconds; {NO_DEADLINE}: its jobs left here drain."]
    lines += [f"{vacate_knob(p)} = {NO_DEADLINE}" for p in spec.pools]
    return lines + [
        f"{policy.VACATE_ATTR} = [ {entries} ]",
        f"STARTD_ATTRS = $(STARTD_ATTRS) {policy.VACATE_ATTR}",
        f"# True for a job of a pool this startd was taken from once that relabel's deadline passed ({a}).",
        f"{VACATE_DUE_MACRO} = {_ad_value(repr(policy.vacate_expr(spec)))}",
        f"PREEMPT = $({VACATE_DUE_MACRO})",
        *(["# Group-quota preemption: a preempted job would retire this long while the preempting one waits."]
          if preemption else []),
        f"MAXJOBRETIREMENTTIME = ifThenElse({evict_now}, 0, $({RETIREMENT_KNOB}))",
        "",
    ]


def _attr_name(name: str) -> str:
    """``name`` as a ClassAd attribute name: quoted when it is not an identifier (a pool name with '-')."""
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else f"'{name}'"


def _startd_common(spec: EnclaveSpec, preemption: bool = False, memory_weight: bool = False) -> list[str]:
    a = spec.batch.pool_attribute
    lines = [
        "DAEMON_LIST = MASTER, STARTD",
        "",
        "# The broker, from its pod at no fixed address: drains, reconfigs and its runtime settings (this host alone).",
        f"ALLOW_ADMINISTRATOR = $(ALLOW_ADMINISTRATOR), {BROKER_IDENTITY}@*/*",
        f"ALLOW_CONFIG = $(ALLOW_CONFIG), {BROKER_IDENTITY}@*/*",
        "",
        f"# The pool this startd serves. Relabel (BCS 1/2): set {POOL_KNOB} at runtime and reconfig.",
        f'{a} = "$({POOL_KNOB})"',
        f"{policy.GROUPS_ATTR} = {_ad_value(repr(policy.groups_table(spec)))}",
        f"{policy.SCHEDDS_ATTR} = {_ad_value(repr(policy.schedds_table(spec)))}",
        f"STARTD_ATTRS = $(STARTD_ATTRS) {a} {policy.GROUPS_ATTR} {policy.SCHEDDS_ATTR} "
        f"{policy.KIND_ATTR} {policy.NODE_ATTR}",
        f"START = {_ad_value(repr(policy.start_expr(spec)))}",
        "",
        "# Only the schedds this pool trusts, and those of the latency pools that overflow onto every startd",
        "# (and the manager), may connect to this startd as daemons. That is no bound on who claims it: a",
        "# claim travels over its match's own session, which the startd admits whatever these lists say; the",
        "# collector's ALLOW_ADVERTISE_SCHEDD decides which schedds are matched at all, START which jobs run.",
    ]
    for pool in spec.pools:
        lines.append(f"ENCLAVE_SCHEDDS_{pool} = {_daemons(policy.claiming_hosts(spec, pool))}")
    # htcondor/htcondor 7491a14: with SEC_ENABLE_MATCH_PASSWORD_AUTHENTICATION (default true, param_info.in) every
    # startd punches DAEMON and CLIENT holes for submit-side@matchsession (condor_startd.V6/startd_main.cpp), which
    # IpVerify::Verify admits before reading any ALLOW list (condor_io/condor_ipverify.cpp); the schedd sends its
    # claim over the claim ID's session (condor_daemon_client/dc_startd.cpp), which the startd made with that
    # identity when it handed the claim ID to the negotiator (condor_startd.V6/claim.cpp).
    lines += [
        f"ALLOW_DAEMON = condor@*/$(CONDOR_HOST), $(ENCLAVE_SCHEDDS_$({POOL_KNOB}))",
        f"ALLOW_WRITE = condor@*/$(CONDOR_HOST), $(ENCLAVE_SCHEDDS_$({POOL_KNOB}))",
        "",
        f"EnclavePoolSince = $({SINCE_KNOB}:0)",
        "STARTD_ATTRS = $(STARTD_ATTRS) EnclavePoolSince",
        "",
        "# A running job's declared limit in its slot's ad, for the broker's least-work-lost victims",
        "# (STARTD_JOB_ATTRS: job attributes the startd advertises while claimed, HTCondor manual).",
        "STARTD_JOB_ATTRS = $(STARTD_JOB_ATTRS) AllowedExecuteDuration",
        "",
        "# When the startd drains, jobs retire for as long as their pool allows (take_away: drain lets",
        "# them finish; vacate gives them grace_seconds), or until the deadline a broker drain sets at runtime.",
    ]
    for name in spec.pools:
        lines.append(f"ENCLAVE_GRACE_{name} = {retirement_seconds(spec, name)}")
    lines += [f"{DRAIN_DUE_KNOB} = {NO_DEADLINE}",
              f"{DRAIN_DUE_ATTR} = $({DRAIN_DUE_KNOB})",
              f"STARTD_ATTRS = $(STARTD_ATTRS) {DRAIN_DUE_ATTR}",
              f"{RETIREMENT_KNOB} = {retirement_expr(spec)}", ""]
    lines += _vacate(spec, preemption)
    if memory_weight:
        lines += [
            "# Quotas and usage count memory as cores: a slot weighs its dominant resource.",
            f"SLOT_WEIGHT = {slot_weight(spec)}",
            "",
        ]
    lines += [
        "# Runtime changes come from the manager host only, and only to these knobs.",
        "ENABLE_RUNTIME_CONFIG = True",
        f"SETTABLE_ATTRS_CONFIG = {', '.join(settable_knobs(spec))}",
        "SETTABLE_ATTRS_ADMINISTRATOR = $(SETTABLE_ATTRS_CONFIG)",
        "",
        "# One partitionable slot: jobs carve the cores and memory they request.",
        "NUM_SLOTS = 1",
        "NUM_SLOTS_TYPE_1 = 1",
        "SLOT_TYPE_1 = 100%",
        "SLOT_TYPE_1_PARTITIONABLE = True",
        "",
        *_consumption(spec),
    ]
    return lines + _settings(spec, "startd")


def _leftovers(spec: EnclaveSpec) -> list[str]:
    """The schedd's half of the consumption policy: CLAIM_PARTITIONABLE_LEFTOVERS off. A startd with a consumption
    policy gives a claim's leftovers whenever the schedd asks (command.cpp, the startd's own setting is read only
    for slots without one), and the schedd asks by default (param_info.in ``CLAIM_PARTITIONABLE_LEFTOVERS``
    default=$(NEGOTIATOR_USE_SLOT_WEIGHTS), itself true; dc_startd.cpp) and runs more idle jobs there, unmatched and
    uncharged, on resources the negotiator gave later matches; a new claim of the same partitionable slot also
    replaces the leftovers claim just handed out (ResMgr.cpp ``get_by_any_id``). HTCondor's own consumption-policy
    tests turn it off ("turn off schedd-side resource splitting since we are demonstrating neg-side alternative",
    job_consumption_policies_basic_van.run)."""
    if not spec.batch.htcondor.consumption_policy:
        return []
    return ["", "# Under the startds' consumption policy the negotiator splits partitionable slots, not the schedd.",
            "CLAIM_PARTITIONABLE_LEFTOVERS = False"]


def _consumption(spec: EnclaveSpec) -> list[str]:
    """CONSUMPTION_POLICY as the spec sets it (batch.htcondor.consumption_policy, true unless set false).

    Without it the negotiator charges a match against a partitionable slot the offer's whole SLOT_WEIGHT, its
    unclaimed cores, and takes the slot out of the cycle (htcondor/htcondor 7491a14 matchmaker.cpp ``negotiate``:
    "traditional match cost is just slot weight expression", "2g. Delete ad from list"); a pool's group then
    reaches its quota after a few matches on large, partly used slots while the schedd runs only the jobs that
    fit there. With it the cost is the slot weight the job takes ("the difference in the slot weight expression
    before and after the resources consumed by the match are deducted", HTCondor manual, startd configuration:
    SLOT_WEIGHT; consumption_policy.cpp ``cp_deduct_assets``) and the slot stays offered ("we don't remove
    offers"). The default CONSUMPTION_CPUS / _MEMORY / _DISK (param_info.in: the request, quantized to 1 core,
    128 MiB, 1024 KiB) are what a job asks for."""
    if not spec.batch.htcondor.consumption_policy:
        return ["# Matches are charged a partitionable slot's whole weight (spec: consumption_policy false).",
                "CONSUMPTION_POLICY = False"]
    return ["# The negotiator charges each match the slot weight its job takes, and may match more jobs to",
            "# one partitionable slot in a cycle; otherwise a group's quota pays for whole slots (spec:",
            "# batch.htcondor.consumption_policy; HTCondor calls consumption policies experimental).",
            "CONSUMPTION_POLICY = True"]


def execute_node(spec: EnclaveSpec, pool: str, *, preemption: bool = False,
                 memory_weight: bool = False) -> Rendered:
    policy.require_pool(spec, pool)
    lines = _header(spec, f"Standalone execute node serving pool '{pool}'.")
    lines += _security(spec)
    lines += [f"{POOL_KNOB} = {pool}", f'{policy.KIND_ATTR} = "standalone"',
              f'{policy.NODE_ATTR} = "$(HOSTNAME)"']
    lines += _startd_common(spec, preemption, memory_weight)
    return Rendered(f"execute-{pool}.conf", "execute", "STARTD", "\n".join(lines) + "\n")


def worker_pod(spec: EnclaveSpec, *, whole_node: bool, preemption: bool = False,
               memory_weight: bool = False) -> Rendered:
    variant = "whole" if whole_node else "partitioned"
    what = ("HTCondor worker pod that takes a whole Kubernetes node" if whole_node
            else "HTCondor worker pod holding a fixed share of a Kubernetes node")
    lines = _header(spec, f"{what} (seed §7.1).")
    lines += _security(spec)
    lines += [
        "# The pod spec sets these from the broker's DeployPods action and the downward API.",
        f"{POOL_KNOB} = $ENV({POD_POOL_ENV})",
        "# Its label's since is the pod's start until a relabel sets it at run time: the broker's cooldown then",
        "# holds for a pod it has just started (EnclavePoolSince would otherwise say 0, long ago).",
        f"{SINCE_KNOB} = $ENV({POD_SINCE_ENV})",
        # A relabel's runtime setting "is lost on restarts" (htcondor/htcondor src/condor_daemon_core.V6/
        # README.config, DC_CONFIG_RUNTIME), and the environment is the container's as it started: a startd its
        # master restarts reads the pool the broker set last from the pod's annotation, which the kubelet keeps in
        # this file (absent for a pod made before the volume: then the environment's).
        "# The pool and its since as the pod's annotation says now: read again after a restart of the startd.",
        f"include ifexist : {POD_INFO_DIR}/{POD_POOL_FILE}",
        # A whole-node pod is BCS 5's "node" startd (the broker's StartdKind.NODE); a share is a "pod".
        f'{policy.KIND_ATTR} = "{"node" if whole_node else "pod"}"',
        f'{policy.NODE_ATTR} = "$ENV({POD_NODE_ENV})"',
        "# Pod IPs are not routable from the manager outside the cluster: connect back through it.",
        "CCB_ADDRESS = $(COLLECTOR_HOST)",
        "USE_SHARED_PORT = True",
        "# Long-running service (seed §7.1 assumption 2): never shut down when idle.",
        "STARTD_NOCLAIM_SHUTDOWN = 0",
        "# /software holds the stack and HTCondor binaries; the image stays small (seed §7.1).",
        "ENCLAVE_SOFTWARE = /software",
    ]
    if whole_node:
        lines += ["# The pod owns what the node has beside the kubelet's reservations and the DaemonSet pods:",
                  "# detected, HTCondor would offer the whole machine (KubeCluster._room_left sets these)."]
    else:
        lines += ["# The pod owns only its limits: tell HTCondor, or it would offer the whole node's cores."]
    lines += [f"NUM_CPUS = $ENV({POD_CPUS_ENV})",
              f"MEMORY = $ENV({POD_MEMORY_ENV})"]
    lines += _startd_common(spec, preemption, memory_weight)
    return Rendered(f"worker-pod-{variant}.conf", "worker-pod", "STARTD", "\n".join(lines) + "\n")


def render_all(spec: EnclaveSpec, *, members: Mapping[str, Sequence[str]] | None = None,
               config_dir: str = DEFAULT_CONFIG_DIR, preemption: bool = False,
               memory_weight: bool = False) -> list[Rendered]:
    """Every config file of the pool, in a stable order; ``preemption``: with group-quota preemption,
    ``memory_weight``: with a memory-aware SLOT_WEIGHT (the twin's ``quotas-preempt`` and
    ``quotas-preempt-mem`` baselines)."""
    policy.validate(spec)
    files = [central_manager(spec, preemption=preemption)]
    files += [submit_host(spec, h, config_dir=config_dir) for h in spec.batch.submit_hosts]
    files.append(usermap(spec, members))
    files += [execute_node(spec, p, preemption=preemption, memory_weight=memory_weight) for p in spec.pools]
    files += [worker_pod(spec, whole_node=True, preemption=preemption, memory_weight=memory_weight),
              worker_pod(spec, whole_node=False, preemption=preemption, memory_weight=memory_weight)]
    return files


def write(files: Sequence[Rendered], out: Path) -> list[Path]:
    """Write rendered files under ``out`` (created if missing); returns the paths written."""
    output_dir(out)
    paths = []
    for f in files:
        path = out / f.name
        path.write_text(f.text)
        paths.append(path)
    return paths


_READ_BACK = """
import json, sys
import classad2, htcondor2
subsystem, names, exprs = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
htcondor2.set_subsystem(subsystem)
htcondor2.reload_config()
htcondor2.reload_config_usermaps()
out = {}
for name in names:
    value = htcondor2.param.get(name)
    out[name] = None if value is None else str(value)
for text in exprs:
    out[text] = repr(classad2.ExprTree(text).eval())
json.dump(out, sys.stdout)
"""


def read_back(path: Path, names: Sequence[str], *, subsystem: str = "TOOL",
              env: Mapping[str, str] | None = None, expressions: Sequence[str] = ()) -> dict[str, str | None]:
    """What HTCondor's own config parser reads from ``path`` for each knob in ``names``.

    ``expressions`` are evaluated with classad2 in the configured process (after the subsystem's
    ClassAd user maps are loaded), keyed by their text, as Python reprs of the values.
    Runs in a child process: the bindings' configuration is process-global, and reading one file
    must not leave its settings behind for the next (or for the caller).
    """
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("_CONDOR_")}
    child_env.update(env or {})
    child_env["CONDOR_CONFIG"] = str(path)
    result = subprocess.run([sys.executable, "-c", _READ_BACK, subsystem, json.dumps(list(names)),
                             json.dumps(list(expressions))],
                            capture_output=True, text=True, env=child_env, timeout=60, check=False)
    if result.returncode != 0:
        raise ExternalError(f"HTCondor could not read {path}: {result.stderr.strip()[-500:]}", where=str(path),
                            fix="check the rendered file; `condor_config_val -config` shows what HTCondor reads")
    data: dict[str, str | None] = json.loads(result.stdout)
    return data


def _verify_worklives(spec: EnclaveSpec, rendered: Rendered, path: Path, env: Mapping[str, str],
                      got: Mapping[str, str | None]) -> None:
    """CLAIM_WORKLIFE as a startd of this file reads it while serving each pool (a pod serves the pool of its
    environment, a node the one a relabel sets: both are ENCLAVE_POOL, which a _CONDOR_ variable overrides
    as runtime config does), against the spec's for that pool."""
    reads: dict[str | None, str | None] = {got[POOL_KNOB]: got["CLAIM_WORKLIFE"]}
    if _pool_worklives(spec):
        for name in spec.pools:
            if name not in reads:
                reads[name] = read_back(path, ["CLAIM_WORKLIFE"], subsystem=rendered.subsystem,
                                        env={**env, f"_CONDOR_{POOL_KNOB}": name})["CLAIM_WORKLIFE"]
    for pool, value in reads.items():
        if worklife_expression(spec, pool):
            value = _expression_read(spec, rendered, path, env, str(pool), value)
        if value != (worklife := worklife_read(spec, pool)):
            raise IntegrityError(f"HTCondor reads CLAIM_WORKLIFE {value} from {path} for a startd serving pool "
                                 f"{pool}, not the {worklife} the spec gives that pool", where=str(path),
                                 fix="render again; do not edit the file by hand")


def _expression_read(spec: EnclaveSpec, rendered: Rendered, path: Path, env: Mapping[str, str], pool: str,
                     evaluated: str | None) -> str:
    """A worklife by day or while calm is an expression, which the bindings evaluate as they read an int knob (to
    the worklife by day or by night, whichever holds now: with no slot ad there is no word of calm); the text
    the startd evaluates is the pool knob's, which they read as written."""
    conf = spec.pools[pool]
    if evaluated not in (str(conf.day_claim_worklife), str(claim_worklife(spec, pool))):
        return f"{evaluated} now, neither its worklife by day nor by night"
    return str(read_pool_worklife(path, pool, subsystem=rendered.subsystem, env=env))


def read_pool_worklife(path: Path, pool: str, *, subsystem: str = "STARTD",
                       env: Mapping[str, str] | None = None) -> str | None:
    """The text of a pool's worklife knob (``<knob>_<pool>``) as HTCondor reads it from ``path``, its macros
    expanded: for a worklife by day, the expression the startd evaluates, where a read of CLAIM_WORKLIFE (an int
    knob, which the bindings evaluate as they read it) gives only its value now."""
    knob = f"{WORKLIFE_KNOB}_{pool}"
    return read_back(path, [knob], subsystem=subsystem, env=env)[knob]


def verify(spec: EnclaveSpec, rendered: Rendered, path: Path) -> str:
    """Read a written file back through HTCondor and check the policy-bearing knobs; say what was read."""
    env = {POD_POOL_ENV: spec.batch.default_pool, POD_NODE_ENV: "check", POD_CPUS_ENV: "1", POD_MEMORY_ENV: "1024",
           POD_SINCE_ENV: "0"}
    if rendered.role in ("execute", "worker-pod"):
        got = read_back(path, ["START", "PREEMPT", "ALLOW_DAEMON", "CLAIM_WORKLIFE", POOL_KNOB],
                        subsystem=rendered.subsystem, env=env)
        for knob, expected in (("START", policy.start_expr(spec)), ("PREEMPT", policy.vacate_expr(spec))):
            if got[knob] is None or ExprTree(got[knob] or "") != expected:
                raise IntegrityError(f"HTCondor reads a different {knob} from {path}", where=str(path),
                                     fix="render again; do not edit the file by hand")
        _verify_worklives(spec, rendered, path, env, got)
        return (f"START and PREEMPT as rendered, CLAIM_WORKLIFE = {got['CLAIM_WORKLIFE']}, "
                f"ALLOW_DAEMON = {got['ALLOW_DAEMON']}")
    if rendered.role == "submit":
        got = read_back(path, [f"JOB_TRANSFORM_{TRANSFORM}"], subsystem=rendered.subsystem)
        rules = [line.strip().split(" ", 2) for line in (got[f"JOB_TRANSFORM_{TRANSFORM}"] or "").splitlines()]
        if [(attr, ExprTree(text)) for _, attr, text in rules] != policy.transform_rules(spec, rendered.host):
            raise IntegrityError(f"HTCondor reads a different submit transform from {path}", where=str(path),
                                 fix="render again; do not edit the file by hand")
        return f"submit transform as rendered ({len(rules)} rules)"
    got = read_back(path, ["CONDOR_HOST", "GROUP_NAMES"], subsystem=rendered.subsystem)
    return f"CONDOR_HOST = {got['CONDOR_HOST']}, GROUP_NAMES = {got['GROUP_NAMES']}"
