"""ClassAd policy of the enclave's HTCondor pool (seed §7, §7.1), built and evaluated with classad2.

One HTCondor pool serves several kinds of processing (prompt, drp, user, general). Each startd carries
a pool label in ``spec.batch.pool_attribute``; every startd runs the *same* START expression, which
looks the label up in two tables the startd also publishes (pool → accounting group, pool → trusted
submit hosts). Relabelling a startd (BCS 1/2) therefore changes one config knob and nothing else.

Anti-spoofing. A user can put any ``+Attr`` in a submit file, so START trusts only attributes the
user cannot set:

- ``Owner``: set by the schedd from the authenticated identity;
- ``EnclaveSchedd``: the name of the submit host, a literal each host's rendered submit transform writes
  (``transform_rules``), not anything derived from the job: a user can rewrite even ``GlobalJobId`` before
  the transform runs (``transform_rules`` says how);
- ``AcctGroup`` / ``AccountingGroup``: forced by the schedd's submit transform from the owner's
  membership (``userMap``), whatever the user wrote.

The transform uses EVALSET (evaluate, store the literal), so a user cannot smuggle in an expression
such as ``+EnclavePool = TARGET.EnclavePool`` that would compare equal to every node. The transform
and submit requirements are rendered from the same ExprTrees this module evaluates in
``schedd_admit``, so what the tests prove is what the schedd runs. The remaining trust — that the job
came through a trusted schedd at all — is the collector's: the negotiator matches only the submitters whose
ads the collector took, which the rendered ``ALLOW_ADVERTISE_SCHEDD`` limits to ``batch.submit_hosts``, and
the claim then travels over the match's own security session, which every startd admits at DAEMON level
whatever its ``ALLOW_DAEMON`` says (``enclave.batch.spoof``, layer 3).

Overflow. A pool with a latency objective may run on every startd (``overflow_pools``): its jobs still need
its own forced group and one of its own trusted schedds (the clauses look the job's pool up), and every startd
admits its schedds as well as its own pool's (``claiming_hosts``). That widens whom a startd trusts: a schedd
prompt trusts may now claim a DRP startd, so a compromised one of them could run forged DRP-labelled jobs there
— which START still refuses unless they carry DRP's forced group, i.e. unless the schedd forges the transform.
Where prompt has a schedd of its own (``htcondor.dedicated_schedds``) and ``pools.prompt.submit_hosts`` names
it alone, only that schedd is added.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import classad2
import htcondor2  # registers HTCondor's ClassAd functions (split, userMap, …) with classad2
from classad2 import ClassAd, ExprTree

from enclave.domain.capacity import Startd, StartdKind
from enclave.errors import InputError, NotFound, Problem, SpecError
from enclave.spec.models import Drain, EnclaveSpec, NodeRole

SCHEDD_ATTR = "EnclaveSchedd"
"""Job attribute: the submit host the job came through, a literal written by that host's submit transform."""
GROUPS_ATTR = "EnclavePoolGroups"
"""Machine attribute: record pool → accounting group its jobs must carry."""
SCHEDDS_ATTR = "EnclavePoolSchedds"
"""Machine attribute: record pool → list of submit hosts whose jobs it accepts."""
VACATE_ATTR = "EnclaveVacate"
"""Machine attribute: record pool → ``{since, deadline}`` of the last relabel that took the startd from that pool
with a deadline (undefined: its jobs drain); read by ``vacate_expr``."""
KIND_ATTR = "EnclaveStartdKind"
NODE_ATTR = "EnclaveNode"
GROUP_MAP = "EnclaveGroups"
"""Name of the schedd's ClassAd user map: owner → accounting groups the owner may use."""
ARCH = "X86_64"
OPSYS = "LINUX"
EVERYONE = "*"
"""Membership key meaning every owner not listed by name."""

_OWNER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_GROUP_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_expr(text: str, *, where: str = "expression") -> ExprTree:
    """Parse ClassAd text, turning the binding's exception into a typed error that says where."""
    try:
        return ExprTree(text)
    except classad2.ClassAdException as exc:
        raise InputError([Problem(where, f"not a valid ClassAd expression: {text!r} ({exc})",
                                  "check quotes and parentheses")]) from exc


def _str_list(items: Iterable[str]) -> str:
    return "{" + ", ".join(classad2.quote(i) for i in items) + "}"


# --- Spec-derived tables ---------------------------------------------------------------------------


def pool_names(spec: EnclaveSpec) -> tuple[str, ...]:
    return tuple(spec.pools)


def require_pool(spec: EnclaveSpec, pool: str, *, where: str = "pool") -> None:
    if pool not in spec.pools:
        raise NotFound(f"pool '{pool}' is not defined in the spec", where=where,
                       fix=f"use one of: {', '.join(spec.pools)}")


def accounting_group(spec: EnclaveSpec, pool: str) -> str:
    """The accounting group the schedd forces on jobs of ``pool`` (default ``group_<pool>``)."""
    require_pool(spec, pool)
    return _pool_group(spec, pool)


def _pool_group(spec: EnclaveSpec, pool: str) -> str:
    return spec.accounting_group(pool)


def vacating_pools(spec: EnclaveSpec) -> tuple[str, ...]:
    """Pools whose jobs a move may evict after a grace period (``take_away: vacate``, ``grace_seconds`` > 0):
    for these the observers report finished runtimes (``PoolDemand.runtimes``), from which the broker tells
    whether a running job ends within the grace (``enclave.broker.victims``). A pool that drains loses no work,
    one that vacates at once has no grace to wait out."""
    return tuple(name for name, p in spec.pools.items() if p.take_away == Drain.VACATE and p.grace_seconds > 0)


def overflow_pools(spec: EnclaveSpec) -> tuple[str, ...]:
    """Pools whose jobs may run on every startd of the enclave, not only their own: those with a latency
    objective. Their groups negotiate first (``render.group_sort_expr``) and prefer their own pool's slots
    (``render.PRE_JOB_RANK``), so what their own capacity cannot hold at a peak (two visits overlapping) runs on
    the slots the other pools free, as HTCondor's group quotas with surplus would let it, while the capacity the
    broker keeps for them stays theirs alone (issue 15: held for the peak it idled between visits, docs/broker.md
    "Overflow")."""
    return tuple(name for name, p in spec.pools.items() if p.latency_objective is not None)


def _pool_clause(spec: EnclaveSpec, job: str, slot: str) -> str:
    """The job (``job``: MY or TARGET) may run on the slot (``slot``): the slot's pool is the job's, or the job's
    pool overflows (``overflow_pools``). ``=?=`` and ``identicalMember(...) =?= true``: case-sensitive and never
    undefined, so a job without a pool is refused by a plain false."""
    a = spec.batch.pool_attribute
    same = f"{job}.{a} =?= {slot}.{a}"
    overflow = overflow_pools(spec)
    if not overflow:
        return same
    # identicalMember, not member: member compares strings without case, and "PROMPT" must not pass for prompt.
    return f"{same} || identicalMember({job}.{a}, {{{', '.join(classad2.quote(p) for p in overflow)}}}) =?= true"


def claiming_hosts(spec: EnclaveSpec, pool: str) -> tuple[str, ...]:
    """Submit hosts whose schedds may claim a startd of ``pool``: the pool's own, then those of the pools that
    overflow onto it (``overflow_pools``), each once. START still holds each job to its own pool's hosts."""
    hosts = list(pool_submit_hosts(spec, pool))
    for other in overflow_pools(spec):
        hosts += [h for h in pool_submit_hosts(spec, other) if h not in hosts]
    return tuple(hosts)


def pool_submit_hosts(spec: EnclaveSpec, pool: str) -> tuple[str, ...]:
    """Submit hosts whose jobs ``pool``'s nodes accept."""
    require_pool(spec, pool)
    hosts = spec.pools[pool].submit_hosts
    if hosts is not None:
        return tuple(hosts)
    # By default every submit host, but not one dedicated to another pool: its schedd refuses this pool's jobs.
    others = {h for p, h in spec.batch.htcondor.dedicated_schedds.items() if p != pool}
    return tuple(h for h in spec.batch.submit_hosts if h not in others)


def _dedicated_problems(spec: EnclaveSpec) -> list[Problem]:
    problems: list[Problem] = []
    dedicated = spec.batch.htcondor.dedicated_schedds
    where = "batch.htcondor.dedicated_schedds"
    for pool, host in dedicated.items():
        if pool not in spec.pools:
            problems.append(Problem(f"{where}.{pool}", f"no pool '{pool}'", f"use one of: {', '.join(spec.pools)}"))
        elif host not in spec.batch.submit_hosts:
            problems.append(Problem(f"{where}.{pool}", f"'{host}' is not a batch submit host",
                                    "add it to batch.submit_hosts"))
        elif host not in pool_submit_hosts(spec, pool):
            problems.append(Problem(f"{where}.{pool}", f"pool '{pool}' does not accept jobs from '{host}'",
                                    f"add '{host}' to pools.{pool}.submit_hosts"))
        for other, settings in spec.pools.items():
            if other != pool and host in (settings.submit_hosts or ()):
                problems.append(Problem(f"pools.{other}.submit_hosts", f"'{host}' is dedicated to pool '{pool}'",
                                        f"remove it here, or from {where}"))
    if len(set(dedicated.values())) < len(dedicated):
        problems.append(Problem(where, "two pools name the same schedd", "give each pool a host of its own"))
    return problems


def schedds(spec: EnclaveSpec) -> list[str]:
    """Every schedd the spec names: batch.submit_hosts, then any other a pool lists, in order, once each."""
    hosts = [*spec.batch.submit_hosts, *(h for p in spec.pools for h in pool_submit_hosts(spec, p))]
    return list(dict.fromkeys(hosts))


def check(spec: EnclaveSpec) -> list[Problem]:
    """Batch rules the spec models cannot express on their own."""
    problems: list[Problem] = []
    if spec.batch.default_pool not in spec.pools:
        problems.append(Problem("batch.default_pool", f"default pool '{spec.batch.default_pool}' is not defined",
                                f"use one of: {', '.join(spec.pools)}"))
    for name, pool in spec.pools.items():
        for host in pool.submit_hosts or ():
            if host not in spec.batch.submit_hosts:
                problems.append(Problem(f"pools.{name}.submit_hosts", f"'{host}' is not a batch submit host",
                                        "list only hosts that appear in batch.submit_hosts"))
        if pool.submit_hosts is not None and not pool.submit_hosts:
            problems.append(Problem(f"pools.{name}.submit_hosts", "empty: no job could ever run in this pool",
                                    "remove the key to accept every batch submit host, or list some"))
        group = accounting_group(spec, name)
        if not _GROUP_RE.match(group):
            problems.append(Problem(f"pools.{name}.accounting_group", f"'{group}' is not an HTCondor group name",
                                    "use letters, digits and '_' (e.g. group_prompt)"))
    return problems + _dedicated_problems(spec)


def validate(spec: EnclaveSpec) -> EnclaveSpec:
    """Raise SpecError listing every batch problem of ``spec``; return it unchanged when sound."""
    problems = check(spec)
    if problems:
        raise SpecError(problems)
    return spec


def groups_table(spec: EnclaveSpec) -> ClassAd:
    return ClassAd({p: accounting_group(spec, p) for p in spec.pools})


def schedds_table(spec: EnclaveSpec) -> ClassAd:
    return ClassAd({p: list(pool_submit_hosts(spec, p)) for p in spec.pools})


# --- START ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clause:
    """One named conjunct of START, with what it protects against."""

    name: str
    expr: ExprTree
    why: str


def start_clauses(spec: EnclaveSpec) -> list[Clause]:
    a = spec.batch.pool_attribute
    # The group and submit-host clauses look the job's own pool up (TARGET.pool): on a slot of its pool that is
    # the slot's; an overflowing job (``overflow_pools``) on another pool's slot must still carry its own pool's
    # forced group and come through a schedd its own pool trusts. The pool clause admits only those two cases.
    return [
        Clause("pool", parse_expr(_pool_clause(spec, "TARGET", "MY")),
               f"the job's pool ({a}) is this node's, or overflows onto every node"),
        Clause("accounting-group", parse_expr(f"TARGET.AcctGroup =?= MY.{GROUPS_ATTR}[TARGET.{a}]"),
               "the accounting group the schedd forced on the job is its pool's"),
        Clause("accounting-user",
               parse_expr('TARGET.AccountingGroup =?= strcat(TARGET.AcctGroup, ".", TARGET.Owner)'),
               "usage is charged to the job's authenticated owner"),
        Clause("submit-host",
               parse_expr(f"member(TARGET.{SCHEDD_ATTR}, MY.{SCHEDDS_ATTR}[TARGET.{a}]) =?= true"),
               "the job came through a schedd its pool trusts"),
    ]


def start_expr(spec: EnclaveSpec) -> ExprTree:
    """The START expression every startd of the enclave runs."""
    return parse_expr(" && ".join(f"({c.expr!r})" for c in start_clauses(spec)), where="START")


# --- PREEMPT: a relabel's deadline ------------------------------------------------------------------


def vacate_clauses(spec: EnclaveSpec) -> list[Clause]:
    """The conjuncts of ``vacate_expr``. The slot's ``VACATE_ATTR`` entry for the job's pool is a list
    ``{since, deadline}`` (Unix seconds) set by the last relabel that took the startd from that pool with a
    deadline (``enclave.batch.live.HTCondorBatch.relabel``), undefined when that pool's jobs drain."""
    a = spec.batch.pool_attribute
    entry = f"MY.{VACATE_ATTR}[TARGET.{a}]"
    clauses = [
        Clause("other-pool", parse_expr(f"TARGET.{a} =!= MY.{a}"),
               "a startd never evicts a job of the pool it serves (relabelled back, its jobs are home)"),
        # time() is the startd's clock (ClassAd built-in: seconds since the epoch); =?= true: false, never
        # undefined, when the pool has no deadline (eval_expr logs a WARNING for an undefined PREEMPT).
        Clause("deadline", parse_expr(f"(time() >= {entry}[1]) =?= true"),
               "the relabel's deadline (since + vacate_after_seconds) has passed"),
    ]
    overflow = overflow_pools(spec)
    if overflow:
        # A latency pool's jobs run on every startd (overflow_pools): those that started after the relabel took
        # the startd from it are overflow, placed under the new label, and keep their own pool's policy. JobStart
        # is the dynamic slot's "time stamp in integer seconds of when the job began executing" (HTCondor
        # manual, "Machine ClassAd Attributes"; the startd assigns it, condor_startd.V6/claim.cpp).
        names = ", ".join(classad2.quote(p) for p in overflow)
        clauses.append(Clause(
            "ran-before", parse_expr(f"identicalMember(TARGET.{a}, {{{names}}}) =!= true || "
                                     f"(MY.JobStart < {entry}[0]) =?= true"),
            "a latency pool's job is evicted only if it was running when the relabel took the startd"))
    return clauses


def vacate_expr(spec: EnclaveSpec) -> ExprTree:
    """PREEMPT of every startd: true for a running job its startd must evict now, because a relabel took the
    startd from the job's pool with a deadline (``Relabel.vacate_after_seconds``) and the deadline has passed.
    Never true for the pool the startd serves, for a pool whose jobs drain (no deadline), nor for a latency pool's
    job that started on the startd after the relabel (overflow). The twin's rule: ``enclave.twin.sim.Sim.relabel``
    queues ``EV_VACATE`` at the deadline and ``Sim._vacate`` evicts the old pool's jobs then.

    HTCondor evaluates PREEMPT on a claimed slot with the slot as MY and the running job as TARGET
    (htcondor/htcondor 7491a14, condor_startd.V6/Resource.cpp ``Resource::eval_expr``), every POLLING_INTERVAL
    (default 5 s) while claimed; when it is True the claim retires (Claimed/Retiring) until the job has run for
    MaxJobRetirementTime, counted from the job's start, then is vacated (HTCondor manual, "Configuration for
    Execution Points", "condor_startd Policy Configuration": "Claimed State" and "State/Activity Transition
    Expression Summary", PREEMPT and MAXJOBRETIREMENTTIME). The rendered MAXJOBRETIREMENTTIME is therefore 0 for
    the jobs this is true of (``enclave.batch.render``): they go at the deadline, not a retirement later."""
    return parse_expr(" && ".join(f"({c.expr!r})" for c in vacate_clauses(spec)), where="PREEMPT")


def requirement_clauses(spec: EnclaveSpec) -> list[Clause]:
    """The Requirements condor_submit gives an enclave job where its submit file leaves them out, clause by
    clause: its pool (or, for a latency pool, every pool: ``overflow_pools``), platform and resources."""
    return [
        Clause("pool", parse_expr(_pool_clause(spec, "MY", "TARGET")),
               "a node of the job's pool, or any if it overflows"),
        Clause("arch", parse_expr(f"TARGET.Arch == {classad2.quote(ARCH)}"), "the platform"),
        Clause("opsys", parse_expr(f"TARGET.OpSys == {classad2.quote(OPSYS)}"), "the platform"),
        Clause("cpus", parse_expr("TARGET.Cpus >= MY.RequestCpus"), "enough free cores"),
        Clause("memory", parse_expr("TARGET.Memory >= MY.RequestMemory"), "enough free memory"),
    ]


def default_requirements(spec: EnclaveSpec) -> ExprTree:
    """What condor_submit would give an enclave job: its pool, platform and resources."""
    return parse_expr(" && ".join(f"({c.expr!r})" for c in requirement_clauses(spec)), where="Requirements")


# --- Ads ------------------------------------------------------------------------------------------


def machine_ad(
    spec: EnclaveSpec,
    startd: Startd,
    *,
    cpus: int | None = None,
    memory_mib: int | None = None,
    arch: str = ARCH,
    opsys: str = OPSYS,
) -> ClassAd:
    """The partitionable-slot ad a startd publishes: pool label, policy tables and START.

    ``cpus``/``memory_mib`` are what is still free on the slot (default: the startd's cores minus its
    busy cores and its memory minus its busy memory).
    """
    require_pool(spec, startd.pool, where=f"startd {startd.name}")
    free_cpus = startd.cores - startd.busy_cores if cpus is None else cpus
    free_mem = startd.memory_mib - startd.busy_memory_mib if memory_mib is None else memory_mib
    if free_cpus < 0 or free_mem < 0:
        raise InputError([Problem(f"startd {startd.name}", "free cpus or memory is negative",
                                  "busy_cores must not exceed cores")])
    ad = ClassAd({
        "MyType": "Machine",
        "TargetType": "Job",
        "Name": f"slot1@{startd.name}",
        "Machine": startd.name,
        NODE_ATTR: startd.node,
        KIND_ATTR: startd.kind.value,
        spec.batch.pool_attribute: startd.pool,
        "Arch": arch,
        "OpSys": opsys,
        "PartitionableSlot": True,
        "SlotType": "Partitionable",
        "Cpus": free_cpus,
        "Memory": free_mem,
        "TotalSlotCpus": startd.cores,
        "TotalSlotMemory": startd.memory_mib,
        # The startd's RANK, which the enclave does not configure: the startd then publishes 0 (condor_startd.V6/
        # Resource.cpp, "if (!public_ad.Lookup(ATTR_RANK)) public_ad.Assign(ATTR_RANK, 0)"); the negotiator's
        # NEGOTIATOR_PRE_JOB_RANK reads it (render.PRE_JOB_RANK_DEFAULT).
        "Rank": 0,
    })
    ad[GROUPS_ATTR] = groups_table(spec)
    ad[SCHEDDS_ATTR] = schedds_table(spec)
    ad["Start"] = start_expr(spec)
    # The startd publishes Requirements = START (plus platform checks that are always true here).
    ad["Requirements"] = ExprTree("START")
    return ad


def job_ad(
    spec: EnclaveSpec,
    *,
    owner: str,
    pool: str,
    schedd: str,
    accounting_group: str | None = None,
    request_cpus: int = 1,
    request_memory_mib: int = 2048,
    cluster_id: int = 1,
    proc_id: int = 0,
    qdate: int = 0,
    requirements: ExprTree | str | None = None,
    extra: Mapping[str, object] | None = None,
) -> ClassAd:
    """An idle job as the schedd stores it, *after* its submit transform ran.

    The arguments are what the schedd decided (authenticated owner, its own name, the enforced
    group); to model what a user *wrote* and let the schedd decide, use ``schedd_admit``.
    ``accounting_group`` defaults to the pool's group (or ``group_<pool>`` for an unknown pool).
    """
    problems = []
    if not _OWNER_RE.match(owner):
        problems.append(Problem("owner", f"'{owner}' is not a user name", "use letters, digits, '_', '.', '-'"))
    if request_cpus < 1:
        problems.append(Problem("request_cpus", f"{request_cpus} is below 1", "request at least one core"))
    if request_memory_mib < 1:
        problems.append(Problem("request_memory_mib", f"{request_memory_mib} is below 1", "request some memory"))
    if not pool or not schedd:
        problems.append(Problem("pool/schedd", "must not be empty", "name the pool and the submitting schedd"))
    if problems:
        raise InputError(problems)
    if accounting_group is not None:
        group = accounting_group
    elif pool in spec.pools:
        group = _pool_group(spec, pool)
    else:
        group = "group_" + pool.replace("-", "_")
    ad = ClassAd({
        "MyType": "Job",
        "TargetType": "Machine",
        "Owner": owner,
        "ClusterId": cluster_id,
        "ProcId": proc_id,
        "QDate": qdate,
        "GlobalJobId": f"{schedd}#{cluster_id}.{proc_id}#{qdate}",
        SCHEDD_ATTR: schedd,
        spec.batch.pool_attribute: pool,
        "AcctGroup": group,
        "AcctGroupUser": owner,
        "AccountingGroup": f"{group}.{owner}",
        "RequestCpus": request_cpus,
        "RequestMemory": request_memory_mib,
        "JobStatus": 1,
        "JobUniverse": 5,
    })
    if isinstance(requirements, str):
        requirements = parse_expr(requirements, where="requirements")
    ad["Requirements"] = requirements if requirements is not None else default_requirements(spec)
    for key, value in (extra or {}).items():
        ad[key] = value
    return ad


# --- The schedd side: submit transform, submit requirements, membership --------------------------


def transform_rules(spec: EnclaveSpec, schedd: str) -> list[tuple[str, ExprTree]]:
    """EVALSET rules of the submit transform of the schedd on submit host ``schedd``, in order.

    ``SCHEDD_ATTR`` is the literal ``schedd``, not read from GlobalJobId. Upstream (htcondor/htcondor 7491a14):
    the schedd writes GlobalJobId when it creates the proc (src/condor_schedd.V6/qmgmt.cpp ``NewProcInternal``),
    but condor_submit sends the proc's ad after that (src/condor_submit.V6/submit.cpp, the ``get_NewProc`` then
    ``MySendJobAttributes`` loop), and for every proc past the first that ad holds each attribute whose value
    differs from the cluster's (src/condor_utils/submit_utils.cpp ``fold_job_into_base_ad``): ``+GlobalJobId =
    "<a trusted host>#$(Cluster).$(Process)#0"`` with ``queue 2`` rewrites proc 1's. ``ModifyAttrCheck``
    (qmgmt.cpp) lets a user set any attribute of an ad not yet committed in its own transaction but the
    SECURE_JOB_ATTRS (GlobalJobId is not among SYSTEM_SECURE_JOB_ATTRS, src/condor_utils/param_info.in), and
    IMMUTABLE_JOB_ATTRS hold only for committed jobs; the transform runs at commit, on what the user left
    (qmgmt.cpp, ``JobTransforms::transformJob`` in the commit). The transform's own writes come last and pass
    every check but the secure one (job_transforms.cpp ``set_dirty_attributes``: SetAttribute_SubmitTransform;
    ModifyAttrCheck), so a literal here is what the job keeps; ``PROTECTED_JOB_ATTRS`` keeps it so afterwards
    (``render.submit_host``). Not ``SUBMIT_ATTRS``: condor_submit, the user's own process, reads it
    (submit_utils.cpp); not ``SCHEDD_ATTRS``: that fills the schedd's own ad (condor_config.cpp
    ``config_fill_ad``)."""
    a = spec.batch.pool_attribute
    groups = repr(groups_table(spec))
    return [
        (SCHEDD_ATTR, parse_expr(classad2.quote(schedd))),
        # A missing pool means the default pool; anything else is kept (as a string) so the submit
        # requirement can refuse an unknown pool by name. EVALSET turns an expression into its value.
        (a, parse_expr(f"ifThenElse(isUndefined({a}), {classad2.quote(spec.batch.default_pool)}, string({a}))")),
        ("AcctGroup", parse_expr(f"userMap({classad2.quote(GROUP_MAP)}, Owner, {groups}[{a}])")),
        ("AcctGroupUser", parse_expr("Owner")),
        ("AccountingGroup", parse_expr('strcat(AcctGroup, ".", Owner)')),
    ]


def apply_transform(ad: ClassAd, rules: Sequence[tuple[str, ExprTree]]) -> None:
    """Run EVALSET rules on ``ad`` in order, as the schedd's transform does: each expression evaluated with
    classad2 in the job's ad as it stands, its value stored as a literal (undefined and error as such)."""
    for attr, rule in rules:
        value = rule.eval(ad)
        if isinstance(value, classad2.Value):
            ad[attr] = ExprTree("undefined") if value == classad2.Value.Undefined else ExprTree("error")
        else:
            ad[attr] = value


@dataclass(frozen=True)
class SubmitRequirement:
    name: str
    expr: ExprTree
    reason: ExprTree


def submit_requirements(spec: EnclaveSpec) -> list[SubmitRequirement]:
    """Checked by the schedd after the transform: refuse at submit what START would never run."""
    a = spec.batch.pool_attribute
    pools = _str_list(spec.pools)
    groups = repr(groups_table(spec))
    schedds = repr(schedds_table(spec))
    return [
        SubmitRequirement(
            "EnclaveKnownPool", parse_expr(f"identicalMember({a}, {pools})"),
            parse_expr(f'strcat("unknown pool ", {a}, "; set +{a} to one of ", '
                       f'{classad2.quote(", ".join(spec.pools))})'),
        ),
        SubmitRequirement(
            "EnclavePoolMember", parse_expr(f"AcctGroup =?= {groups}[{a}]"),
            parse_expr(f'strcat("user ", Owner, " may not submit to pool ", {a}, '
                       '"; ask the HTCondor administrator for membership")'),
        ),
        SubmitRequirement(
            "EnclaveSubmitHost", parse_expr(f"member({SCHEDD_ATTR}, {schedds}[{a}]) =?= true"),
            parse_expr(f'strcat("pool ", {a}, " does not accept jobs submitted from ", {SCHEDD_ATTR})'),
        ),
    ]


def dedicated_requirement(spec: EnclaveSpec, pool: str) -> SubmitRequirement:
    """On a schedd dedicated to ``pool``: refuse every other pool's jobs (after the transform set the pool)."""
    a = spec.batch.pool_attribute
    return SubmitRequirement(
        "EnclaveDedicatedSchedd", parse_expr(f"{a} =?= {classad2.quote(pool)}"),
        parse_expr(f'strcat("this schedd serves pool {pool} only; submit pool ", {a}, " elsewhere")'))


def membership_map(spec: EnclaveSpec, members: Mapping[str, Sequence[str]] | None = None) -> str:
    """The schedd's user map file (owner → accounting groups), from owner → pools.

    ``members`` maps an owner (or ``"*"`` for everyone else) to the pools they may use; the default
    lets everyone use only the default pool. Owners listed by name do not also get the ``"*"`` pools.
    """
    members = {EVERYONE: [spec.batch.default_pool]} if members is None else members
    lines = ["# owner -> accounting groups (enclave render condor); first group is the fallback"]
    problems = []
    for owner, pools in members.items():
        if owner != EVERYONE and not _OWNER_RE.match(owner):
            problems.append(Problem(f"members.{owner}", "not a user name", "use letters, digits, '_', '.', '-'"))
            continue
        unknown = [p for p in pools if p not in spec.pools]
        if unknown or not pools:
            problems.append(Problem(f"members.{owner}", f"unknown or no pools: {', '.join(unknown) or '(none)'}",
                                    f"use pools from: {', '.join(spec.pools)}"))
            continue
        groups = ",".join(dict.fromkeys(accounting_group(spec, p) for p in pools))
        if owner != EVERYONE:
            lines.append(f"* {owner} {groups}")
    if problems:
        raise InputError(problems)
    if EVERYONE in members:
        groups = ",".join(dict.fromkeys(accounting_group(spec, p) for p in members[EVERYONE]))
        lines.append(f"* /.*/ {groups}")
    return "\n".join(lines) + "\n"


def load_membership(spec: EnclaveSpec, members: Mapping[str, Sequence[str]] | None = None,
                    directory: Path | None = None) -> Path:
    """Load the membership map into this process's userMap() (what the schedd does at reconfig)."""
    text = membership_map(spec, members)
    directory = directory or Path(tempfile.mkdtemp(prefix="enclave-usermap-"))
    path = directory / "enclave-groups.map"
    path.write_text(text)
    htcondor2.load_a_config_usermap_file(GROUP_MAP, str(path))
    return path


SCHEDD_OWNED = ("Owner", "ClusterId", "ProcId", "QDate", "MyType", "JobStatus")
"""Attributes only the schedd sets; whatever the user wrote for them is discarded. Not GlobalJobId: the schedd writes
it when it makes the proc, and the user's proc ad may replace it before commit (``transform_rules``)."""


@dataclass(frozen=True)
class Admission:
    """A job after the schedd: the stored ad, and why the schedd refused it (empty when accepted)."""

    ad: ClassAd
    refused: tuple[str, ...] = field(default_factory=tuple)

    @property
    def accepted(self) -> bool:
        return not self.refused


def schedd_admit(
    spec: EnclaveSpec,
    submitted: ClassAd,
    *,
    owner: str,
    schedd: str,
    cluster_id: int = 1,
    proc_id: int = 0,
    qdate: int = 0,
) -> Admission:
    """What the trusted enclave schedd of submit host ``schedd`` stores for a submitted job ad.

    Sets the schedd-owned attributes (``SCHEDD_OWNED``) from the authenticated ``owner``, and GlobalJobId from its
    own name unless the user wrote one (the worst case, which the rendered SECURE_JOB_ATTRS prevents: nothing
    below may rely on it), then runs the rendered submit transform (``apply_transform``) and the submit
    requirements. Needs the membership map loaded (``load_membership``) for userMap().
    """
    ad = ClassAd(repr(submitted))
    values = {"MyType": "Job", "Owner": owner, "ClusterId": cluster_id, "ProcId": proc_id, "QDate": qdate,
              "JobStatus": 1}
    for key in SCHEDD_OWNED:
        ad[key] = values[key]
    if "GlobalJobId" not in ad:
        ad["GlobalJobId"] = f"{schedd}#{cluster_id}.{proc_id}#{qdate}"
    apply_transform(ad, transform_rules(spec, schedd))
    refused = []
    for req in submit_requirements(spec):
        if req.expr.eval(ad) is not True:
            reason = req.reason.eval(ad)
            refused.append(reason if isinstance(reason, str) else f"{req.name} is not true")
    return Admission(ad=ad, refused=tuple(refused))


# --- Matchmaking with autoclusters ----------------------------------------------------------------


@dataclass(frozen=True)
class _Refs:
    own: frozenset[str]
    """Attributes of the ad the expression is evaluated in (MY.x and unscoped x)."""
    other: frozenset[str]
    """Attributes of the match candidate (TARGET.x and unscoped x: HTCondor looks unscoped names up in
    MY first, then TARGET, so they are significant on both sides)."""


_REFS_CACHE: dict[str, _Refs] = {}
_EMPTY = ClassAd()


def _refs(text: str) -> _Refs:
    """Which attributes an expression references, from classad2's own reference analysis."""
    found = _REFS_CACHE.get(text)
    if found is None:
        own: set[str] = set()
        other: set[str] = set()
        for ref in _EMPTY.externalRefs(ExprTree(text)):
            if not ref:
                continue
            scope, _, rest = ref.partition(".")
            if rest and scope.lower() == "my":
                own.add(rest.split(".")[0].lower())
            elif rest and scope.lower() == "target":
                other.add(rest.split(".")[0].lower())
            else:
                own.add(scope.lower())
                other.add(scope.lower())
        found = _REFS_CACHE[text] = _Refs(frozenset(own), frozenset(other))
    return found


_SIGNATURES: dict[tuple[tuple[str, str | None], ...], int] = {}
"""Interned projections: equal projections get the same small integer, so cache keys hash fast."""


def _attribute_texts(ad: ClassAd) -> dict[str, str]:
    """Every attribute of ``ad`` as lower-case name → unevaluated expression text.

    One ``printOld`` call (HTCondor's own one-attribute-per-line serialisation) instead of a binding
    call per attribute: a per-attribute lookup costs microseconds, and autoclustering 100,000 jobs
    per cycle cannot afford many of them. The texts are only compared, never interpreted here; their
    references come from classad2 (``_refs``).
    """
    lines = ad.printOld().splitlines()
    if len(lines) != len(ad):
        # A string value with a line break spans lines (and could even forge one): ask per attribute.
        return {name.lower(): repr(ad.lookup(name)) for name in ad}
    out: dict[str, str] = {}
    for line in lines:
        name, _, text = line.partition(" = ")
        out[name.lower()] = text
    return out


def target_refs(expr: ExprTree) -> frozenset[str]:
    """Lower-case names of the match candidate's attributes ``expr`` may read (TARGET.x and unscoped x)."""
    return _refs(repr(expr)).other


class AdView:
    """An ad prepared for autoclustering.

    ``own_sig`` identifies what the ad's own Requirements depend on in the ad itself (the
    expression and, transitively, the attributes it reads); ``other`` names what it reads from a
    match candidate; ``project(names)`` identifies the values of ``names`` (and what they read in
    turn) in this ad. Equal identifiers mean indistinguishable to matchmaking.
    """

    __slots__ = ("ad", "other", "own_sig", "cacheable", "_attrs", "_proj")

    def __init__(self, ad: ClassAd) -> None:
        self.ad = ad
        self._attrs = _attribute_texts(ad)
        self._proj: dict[frozenset[str], int] = {}
        self.cacheable = True
        own, other = self._closure(["requirements"])
        self.own_sig = _SIGNATURES.setdefault(tuple(own.items()), len(_SIGNATURES))
        self.other = frozenset(other)

    def _closure(self, names: Iterable[str]) -> tuple[dict[str, str | None], set[str]]:
        # The traversal order depends only on the texts met, so equal closures come out in equal order
        # and their items can be interned without sorting.
        values: dict[str, str | None] = {}
        other: set[str] = set()
        attrs = self._attrs
        todo = sorted(names)
        while todo:
            name = todo.pop()
            if name in values:
                continue
            text = values[name] = attrs.get(name)
            if text is not None:
                refs = _REFS_CACHE.get(text) or _refs(text)
                if refs.other:
                    other |= refs.other
                if refs.own:
                    todo.extend(sorted(refs.own - values.keys()))
        return values, other

    def project(self, names: frozenset[str]) -> int:
        found = self._proj.get(names)
        if found is None:
            values, reads_other = self._closure(names)
            if reads_other:
                # An attribute the other side reads that is itself an expression over TARGET makes the
                # answer depend on more than this projection: such ads are matched uncached.
                self.cacheable = False
            found = self._proj[names] = _SIGNATURES.setdefault(tuple(values.items()), len(_SIGNATURES))
        return found


class Matcher:
    """Can this job run on this slot? Real classad2 evaluation, cached by autocluster signature.

    A match is symmetric: the slot's Requirements (its START) with the job as TARGET, and the job's
    Requirements with the slot as TARGET. Each direction is cached on its own, by the signature of
    the evaluating ad's expression and the projection of the attributes it reads from the other ad;
    so START is evaluated once per (job credentials, slot label) and Requirements once per (job size,
    slot size), and a simulator asking millions of times pays for few evaluations.

    Use ``view`` once per ad and ``match`` per pair for the fastest path; ``matches`` for one-offs;
    ``can_run`` with hashable shapes when you have no ads at all (the twin).
    """

    def __init__(self, spec: EnclaveSpec) -> None:
        self.spec = spec
        self._slot_side: dict[tuple[int, int], bool] = {}
        self._job_side: dict[tuple[int, int], bool] = {}
        self._shape_cache: dict[tuple[JobShape, SlotShape], bool] = {}
        self.evaluations = 0
        self.lookups = 0

    @staticmethod
    def view(ad: ClassAd) -> AdView:
        return AdView(ad)

    def accepts(self, evaluator: AdView, candidate: AdView, *, slot_side: bool) -> bool:
        """One direction: does ``evaluator``'s Requirements accept ``candidate``?"""
        proj = candidate.project(evaluator.other)
        if not (evaluator.cacheable and candidate.cacheable):
            self.evaluations += 1
            return bool(candidate.ad.matches(evaluator.ad))
        cache = self._slot_side if slot_side else self._job_side
        key = (evaluator.own_sig, proj)
        hit = cache.get(key)
        if hit is None:
            self.evaluations += 1
            hit = cache[key] = bool(candidate.ad.matches(evaluator.ad))
        return hit

    def match(self, job: AdView, slot: AdView) -> bool:
        self.lookups += 1
        return self.accepts(slot, job, slot_side=True) and self.accepts(job, slot, slot_side=False)

    def matches(self, job: ClassAd, slot: ClassAd) -> bool:
        return self.match(AdView(job), AdView(slot))

    def can_run(self, job: JobShape, slot: SlotShape) -> bool:
        """The same answer as ``matches`` on the ads these shapes describe, from a dict lookup."""
        key = (job, slot)
        hit = self._shape_cache.get(key)
        if hit is None:
            hit = self._shape_cache[key] = self.matches(job.ad(self.spec), slot.ad(self.spec))
        return hit

    @property
    def autoclusters(self) -> int:
        """Distinct (evaluator, candidate) signature pairs evaluated so far, both directions."""
        return len(self._slot_side) + len(self._job_side)


@dataclass(frozen=True)
class JobShape:
    """Everything job_ad() needs, hashable: how the twin describes an idle job."""

    owner: str
    pool: str
    schedd: str
    accounting_group: str | None = None
    request_cpus: int = 1
    request_memory_mib: int = 2048

    def ad(self, spec: EnclaveSpec) -> ClassAd:
        return job_ad(spec, owner=self.owner, pool=self.pool, schedd=self.schedd,
                      accounting_group=self.accounting_group, request_cpus=self.request_cpus,
                      request_memory_mib=self.request_memory_mib)


@dataclass(frozen=True)
class SlotShape:
    """Everything machine_ad() needs about a slot's free resources, hashable."""

    pool: str
    cpus: int
    memory_mib: int
    kind: StartdKind = StartdKind.STANDALONE

    def ad(self, spec: EnclaveSpec) -> ClassAd:
        startd = Startd(name="slot-shape", node="slot-shape", kind=self.kind, pool=self.pool,
                        cores=self.cpus, memory_mib=self.memory_mib)
        return machine_ad(spec, startd)


# --- Static layout --------------------------------------------------------------------------------


def apportion(units: Sequence[str], spec: EnclaveSpec) -> dict[str, str]:
    """Unit → pool: the one rule that lays batch capacity out by guaranteed share.

    Each pool gets its guaranteed share of the units (whole units, largest remainders first, ties to
    higher priority); what is left goes to the default pool. Units are handed out in the order given, in
    blocks, pools by priority. Used for the standalone nodes (``static_labels``) and for any other whole
    units laid out the same way (the twin's static worker pods).
    """
    exact = {p: len(units) * pool.guaranteed_share for p, pool in spec.pools.items()}
    counts = {p: int(x + 1e-9) for p, x in exact.items()}
    left = len(units) - sum(counts.values())
    for p in sorted(exact, key=lambda p: (-(exact[p] - counts[p]), -spec.pools[p].priority, p)):
        if left > 0 and exact[p] - counts[p] > 1e-9:
            counts[p] += 1
            left -= 1
    counts[spec.batch.default_pool] = counts.get(spec.batch.default_pool, 0) + left
    labels: dict[str, str] = {}
    it = iter(units)
    for p in sorted(counts, key=lambda p: (-spec.pools[p].priority, p)):
        for _ in range(counts[p]):
            labels[next(it)] = p
    return labels


def static_labels(spec: EnclaveSpec) -> dict[str, str]:
    """Standalone batch node → the pool its rendered execute config starts it in (``apportion``d by
    guaranteed share). The broker moves nodes from here."""
    return apportion(spec.node_names(NodeRole.BATCH_ONLY), spec)
