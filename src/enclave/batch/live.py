"""The live HTCondor adapter: observe slots and demand, relabel and drain startds, through htcondor2.

It covers the HTCondor half of the broker's Backend (``enclave.domain.capacity``): ``startds()`` and
``demand()`` fill ``Observed.startds`` / ``Observed.demand``; ``apply()`` carries out ``Relabel`` and
``DrainStartd``. The broker composes it with the Kubernetes adapter for the node and pod actions.

Pointing it at a real pool: run it on a host the central manager's ``ALLOW_ADMINISTRATOR`` and
``ALLOW_CONFIG`` admit (the rendered configs admit ``condor@<central manager>``), with an IDTOKEN for
that identity in ``~/.condor/tokens.d``; ``CONDOR_CONFIG`` may point at the rendered
``central-manager.conf``. The collector address comes from ``spec.batch.central_manager``.

Every call into HTCondor goes through the public htcondor2 API — ``Collector``, ``Schedd``, ``Startd``,
``RemoteParam`` and ``send_command`` — taken from a ``Bindings`` the adapter is given, so tests hand it stand-ins
with the same signatures (``tests/batch/conftest.py``) instead of patching the bindings' internals.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import classad2
import htcondor2
from classad2 import ClassAd

from enclave.batch import policy
from enclave.batch.render import (
    BROKER_AD_TYPE,
    CALM_ATTR,
    DRAIN_DUE_ATTR,
    DRAIN_DUE_KNOB,
    NO_DEADLINE,
    POOL_KNOB,
    SINCE_KNOB,
    drain_due,
    vacate_knob,
    vacate_value,
)
from enclave.domain.capacity import (
    Action,
    DrainStartd,
    PoolDemand,
    Relabel,
    RunningJob,
    Startd,
    StartdKind,
)
from enclave.domain.reach import JobState, JobVerb
from enclave.errors import Conflict, EnclaveError, ExternalError, InvalidTransition, NotFound
from enclave.logs import event, logger
from enclave.spec.models import EnclaveSpec

_log = logger("batch")

SLOT_PROJECTION = ["Name", "Machine", "MyAddress", "MyType", "CondorVersion", "PartitionableSlot", "Cpus",
                   "Memory", "TotalSlotCpus", "TotalSlotMemory", "Draining", policy.NODE_ATTR, policy.KIND_ATTR,
                   "EnclavePoolSince"]
COLLECTOR_PROJECTION = ["Name", "DaemonStartTime", "MonitorSelfTime", "MonitorSelfAge"]
JOB_PROJECTION = ["ClusterId", "ProcId", "JobStatus", "RequestCpus", "RequestMemory", "QDate"]
# A daemon's location, as htcondor2's Collector.locate projects it (``Collector._for_location``, _collector.py), and
# its MyType, which locate leaves out and send_command needs ("Daemon type not available in location ClassAd.",
# _loose_functions.py): the collector sends only the attributes asked for (collector.cpp, putClassAd's whitelist).
LOCATION_PROJECTION = ["MyAddress", "AddressV1", "CondorVersion", "CondorPlatform", "Name", "Machine", "MyType"]
# Scheduler (7) and local (12) universe jobs run beside the schedd, never on a pool's slots ("Choosing an HTCondor
# Universe"; condor_universe.h), grid (9) jobs elsewhere: DAGMan's own job among them, they are no pool's demand.
OFF_POOL_UNIVERSES = (7, 9, 12)
ON_POOL = " && ".join(f"JobUniverse =!= {u}" for u in OFF_POOL_UNIVERSES)
"""A job constraint: the jobs a pool's slots run."""
# A dynamic slot runs one job (HTCondor manual, "Machine ClassAd Attributes"): Cpus are its cores, JobStart "the
# time stamp in integer seconds of when the job began executing", RemoteGroup "the accounting group name
# corresponding to the submitter that claimed this resource"; AllowedExecuteDuration is the job's own
# ("Job ClassAd Attributes"), copied into the slot ad by the rendered STARTD_JOB_ATTRS.
DYNAMIC_PROJECTION = ["Machine", "Name", "Cpus", "JobStart", "RemoteGroup", "AllowedExecuteDuration"]
# How long a finished job ran: CompletionDate − JobCurrentStartDate ("the time when the job completed",
# "time at which the job most recently began running", "Job ClassAd Attributes").
RUNTIME_PROJECTION = ["CompletionDate", "JobCurrentStartDate"]
RUNTIME_HISTORY = 2000
"""Finished jobs read per schedd and pool for ``PoolDemand.runtimes`` (newest first)."""
# JobStatus values (HTCondor manual, "Job ClassAd Attributes": JobStatus): 1 Idle, 2 Running, 3 Removed,
# 4 Completed, 5 Held, 6 Transferring Output, 7 Suspended.
IDLE, RUNNING, HELD, SUSPENDED = 1, 2, 5, 7
HISTORY_LOOKBACK_SECONDS = 86400
COMPLETED = 4


def _external(what: str, exc: Exception) -> ExternalError:
    return ExternalError(f"{what}: {exc}", where="HTCondor",
                         fix="check that the daemon is up and that this host is allowed (ALLOW_ADMINISTRATOR/CONFIG)")


def _number(ad: ClassAd, attr: str) -> float | None:
    try:
        value = ad.eval(attr)
    except KeyError:
        return None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(ad: ClassAd, attr: str, default: int = 0) -> int:
    value = _number(ad, attr)
    return int(value) if value is not None else default


def _started(ad: ClassAd) -> float | None:
    """When the daemon of a collector ad started (``HTCondorBatch.collector_since``)."""
    forwarded = _number(ad, "DaemonStartTime")
    if forwarded is not None:
        return forwarded
    sampled, age = _number(ad, "MonitorSelfTime"), _number(ad, "MonitorSelfAge")
    return None if sampled is None or age is None or sampled <= 0 or age < 0 else sampled - age


def _str(ad: ClassAd, attr: str) -> str | None:
    value = ad.get(attr)
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Bindings:
    """The htcondor2 entry points the adapter calls (the real ones unless told otherwise)."""

    collector: Callable[..., Any] = htcondor2.Collector
    schedd: Callable[..., Any] = htcondor2.Schedd
    startd: Callable[..., Any] = htcondor2.Startd
    remote_param: Callable[..., Any] = htcondor2.RemoteParam
    send_command: Callable[..., None] = htcondor2.send_command


DEFAULT_BINDINGS = Bindings()
"""What an ``HTCondorBatch`` built without ``bindings`` calls. Front ends build their adapter from the spec
alone; their tests point this at stand-ins (tests/batch/conftest.py ``daemons``)."""


@dataclass(frozen=True)
class LiveSlot:
    """A partitionable slot as the collector reports it, with the ad that locates its startd."""

    startd: Startd
    draining: bool
    location: ClassAd


DRAIN_TRIES = 10
DRAIN_RETRY_SECONDS = 1.0
"""How long a drain waits for the startd to apply its deadline knob (the reconfig goes through the master): ten
tries a second apart, then the drain fails and the broker's next decision tries it again."""


BROKER_AD_NAME = "enclave-broker"
"""Name of the broker's ad: one broker leads at a time (its Lease), so one ad."""


class HTCondorBatch:
    """HTCondor through the official bindings. One instance per enclave spec."""

    def __init__(self, spec: EnclaveSpec, *, collector: htcondor2.Collector | None = None,
                 bindings: Bindings | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.spec = spec
        self.bindings = bindings or DEFAULT_BINDINGS
        self.collector = collector or self.bindings.collector(spec.batch.central_manager)
        self.clock = clock
        self.sleep = sleep

    # --- observe ------------------------------------------------------------------------------

    def slots(self, constraint: str | None = None) -> list[LiveSlot]:
        a = self.spec.batch.pool_attribute
        where = f"(PartitionableSlot =?= true) && ({a} =!= undefined)"
        if constraint:
            where = f"{where} && ({constraint})"
        try:
            ads = self.collector.query(htcondor2.AdType.Startd, constraint=where, projection=[*SLOT_PROJECTION, a])
        except (htcondor2.HTCondorException, RuntimeError, OSError) as exc:
            raise _external(f"collector {self.spec.batch.central_manager} query failed", exc) from exc
        by_host: dict[str, list[LiveSlot]] = {}
        for ad in ads:
            slot = _slot(ad, a)
            by_host.setdefault(slot.startd.name, []).append(slot)
        return [_one_startd(by_host[host]) for host in sorted(by_host)]

    def collector_since(self) -> float | None:
        """When the collector started, the latest if several answer (the most recent restart); None if none tells
        (``Observed.collector_since``).

        A collector's own ad carries no DaemonStartTime: that is added only to the ads a daemon sends a collector
        (htcondor/htcondor src/condor_daemon_client/dc_collector.cpp, ``DCCollector::sendUpdate``), and the collector
        puts its own straight into its table (src/condor_collector.V6/collector.cpp, ``collector.collect(
        UPDATE_COLLECTOR_AD, selfAd, …)``), leaving itself out of the collectors it sends to. Its self-monitoring
        tells the same: MonitorSelfTime, when it last sampled itself, less MonitorSelfAge, its process's age then
        (src/condor_daemon_core.V6/self_monitor.cpp, ``ExportData``; both -1 before the first sample). An ad that
        another collector forwarded has DaemonStartTime, which is used when present."""
        try:
            ads = self.collector.query(htcondor2.AdType.Collector, projection=COLLECTOR_PROJECTION)
        except (htcondor2.HTCondorException, RuntimeError, OSError) as exc:
            raise _external(f"collector {self.spec.batch.central_manager} query failed", exc) from exc
        started = [t for ad in ads if (t := _started(ad)) is not None]
        return max(started) if started else None

    def advertise_calm(self, calm: bool) -> None:
        """Advertise the broker's ad with its word on the latency pools (``render.calm_cron`` reads it). A generic
        ad: the collector files it by MyType and keys it by Name (collector_engine.cpp ``collect``,
        UPDATE_AD_GENERIC; hashkey.cpp ``makeGenericAdHashKey``, htcondor 7491a14), so each cycle's ad replaces
        the last, and stamps it LastHeardFrom as it arrives (``CollectorEngine::updateClassAd``)."""
        ad = ClassAd({"MyType": BROKER_AD_TYPE, "Name": BROKER_AD_NAME, CALM_ATTR: calm})
        try:
            self.collector.advertise([ad], "UPDATE_AD_GENERIC")
        except (htcondor2.HTCondorException, RuntimeError, OSError) as exc:
            raise _external(f"advertising the broker's ad to collector {self.spec.batch.central_manager} failed",
                            exc) from exc

    def startds(self) -> tuple[Startd, ...]:
        """``Observed.startds``: one per partitionable slot carrying a pool label, with its running jobs."""
        slots = self.slots()
        jobs = self.running_jobs()
        return tuple(replace(s.startd, jobs=jobs.get(s.startd.name, ())) for s in slots)

    def running_jobs(self) -> dict[str, tuple[RunningJob, ...]]:
        """Each startd's running jobs (by ``Machine``, as ``Startd.name``), from its dynamic slots' ads: the
        collector lists a partitionable slot's claimed share as one dynamic slot per job (HTCondor manual,
        "Partitionable slots"), with ``JobStart`` defined only while a job runs there."""
        a = self.spec.batch.pool_attribute
        where = f"(DynamicSlot =?= true) && (JobStart =!= undefined) && ({a} =!= undefined)"
        try:
            ads = self.collector.query(htcondor2.AdType.Startd, constraint=where, projection=DYNAMIC_PROJECTION)
        except (htcondor2.HTCondorException, RuntimeError, OSError) as exc:
            raise _external(f"collector {self.spec.batch.central_manager} query failed", exc) from exc
        groups = {self.spec.accounting_group(p): p for p in self.spec.pools}
        out: dict[str, list[RunningJob]] = {}
        for ad in ads:
            start = _number(ad, "JobStart")
            machine = _str(ad, "Machine") or _str(ad, "Name")
            if start is None or machine is None:
                continue
            group = _str(ad, "RemoteGroup") or ""
            # An accounting group's subgroups ("group_drp.alice") are its pool's too.
            pool = groups.get(group) or groups.get(group.split(".")[0])
            out.setdefault(machine, []).append(RunningJob(
                cores=max(1, _int(ad, "Cpus", 1)), start=start, pool=pool,
                limit_seconds=_number(ad, "AllowedExecuteDuration")))
        return {m: tuple(sorted(jobs, key=lambda j: (j.start, j.cores))) for m, jobs in out.items()}

    def slot(self, startd: str) -> LiveSlot:
        found = self.slots(f"Machine == {classad2.quote(startd)}")
        if not found:
            raise NotFound(f"startd '{startd}' is not in the collector of {self.spec.batch.central_manager}",
                           where="startd", fix="check the name with `enclave batch pools --live`; is the node up?")
        return found[0]

    def _schedd(self, host: str) -> htcondor2.Schedd:
        """The schedd the spec names ``host``. Its Name is what the rendered SCHEDD_NAME says, qualified by
        HTCondor as ``<host>@<its fully qualified host name>`` unless it names the local host (manual, MASTER_NAME:
        "If the string does not include an @ sign, HTCondor appends one"; get_daemon_name.cpp,
        build_valid_daemon_name): the part before the @ is the spec's."""
        name = classad2.quote(host)
        try:
            found = self.collector.query(htcondor2.AdType.Schedd,
                                         constraint=f'Name =?= {name} || split(Name, "@")[0] =?= {name}',
                                         projection=LOCATION_PROJECTION)
        except (htcondor2.HTCondorException, RuntimeError, OSError) as exc:
            raise _external(f"cannot locate schedd {host}", exc) from exc
        # Demand without one schedd's jobs would look like no demand: refuse to guess.
        return self.bindings.schedd(_the_one(
            found, host, missing=(f"schedd {host} is not advertised in the collector",
                                  "start the schedd or remove it from batch.submit_hosts"),
            several=(f"schedds answer to {host}",
                     "give each submit host's schedd its own SCHEDD_NAME (`enclave render condor`)")))

    def jobs(self, host: str, schedd: htcondor2.Schedd | None = None) -> list[ClassAd]:
        a = self.spec.batch.pool_attribute
        schedd = schedd or self._schedd(host)
        try:
            ads: list[ClassAd] = schedd.query(
                constraint=f"(JobStatus == {IDLE} || JobStatus == {RUNNING}) && {ON_POOL}",
                projection=[*JOB_PROJECTION, a])
            return ads
        except (htcondor2.HTCondorException, RuntimeError, OSError) as exc:
            raise _external(f"schedd {host} query failed", exc) from exc

    def newest_finished(self, host: str, pool: str, schedd: htcondor2.Schedd | None = None) -> float | None:
        """The submit time of the pool's most recently finished job on the schedd, among those finished in the
        last day; None if there is none.

        That is not always the newest submission, but for jobs of under a minute (prompt processing) it is within
        a minute of it, which is all the broker needs to tell whether tonight's visits have gone quiet.
        """
        schedd = schedd or self._schedd(host)
        # The schedd scans its history newest first until ``since`` is true: without it, a schedd that never
        # ran the pool's jobs would read its whole history file every broker cycle. A day back covers any night.
        since = f"CompletionDate < {int(self.clock()) - HISTORY_LOOKBACK_SECONDS}"
        try:
            ads = schedd.history(constraint=pool_constraint(self.spec, pool),
                                 projection=["QDate", self.spec.batch.pool_attribute], match=1, since=since)
        except (htcondor2.HTCondorException, RuntimeError, OSError) as exc:
            raise _external(f"schedd {host} history query failed", exc) from exc
        return _number(ads[0], "QDate") if ads else None

    def finished_runtimes(self, host: str, pool: str, schedd: htcondor2.Schedd | None = None) -> list[float]:
        """How long the pool's most recently completed jobs on the schedd ran (seconds), at most
        ``RUNTIME_HISTORY`` of them from the last day: the history ``enclave.broker.victims`` reads."""
        schedd = schedd or self._schedd(host)
        since = f"CompletionDate < {int(self.clock()) - HISTORY_LOOKBACK_SECONDS}"
        try:
            ads = schedd.history(constraint=f"({pool_constraint(self.spec, pool)}) && JobStatus == {COMPLETED}",
                                 projection=RUNTIME_PROJECTION, match=RUNTIME_HISTORY, since=since)
        except (htcondor2.HTCondorException, RuntimeError, OSError) as exc:
            raise _external(f"schedd {host} history query failed", exc) from exc
        out = []
        for ad in ads:
            end, start = _number(ad, "CompletionDate"), _number(ad, "JobCurrentStartDate")
            if end is not None and start is not None and end > start > 0:
                out.append(end - start)
        return out

    def demand(self) -> dict[str, PoolDemand]:
        """``Observed.demand``: idle and running jobs and cores per pool, over every submit host.

        The pool the broker pre-warms and the pools with a latency objective also look in the schedds' history:
        the broker ends the night's pre-warm on their newest submission, and jobs of under a minute leave the
        queue too soon for the queue alone to remember it. Pools that vacate after a grace period read their
        finished jobs' runtimes there (``PoolDemand.runtimes``): the broker's victims by least work lost.
        """
        warm = self.spec.prewarmed_pool()
        prewarmed = [name for name, pool in self.spec.pools.items()
                     if pool.latency_objective is not None or name == warm]
        jobs: list[ClassAd] = []
        finished: dict[str, list[float | None]] = {name: [] for name in prewarmed}
        runtimes: dict[str, list[float]] = {name: [] for name in policy.vacating_pools(self.spec)}
        for host in self.spec.batch.submit_hosts:
            schedd = self._schedd(host)
            jobs += self.jobs(host, schedd)
            for name in prewarmed:
                finished[name].append(self.newest_finished(host, name, schedd))
            for name, seen in runtimes.items():
                seen += self.finished_runtimes(host, name, schedd)
        demand = demand_of(jobs, self.spec, now=self.clock())
        for name, times in finished.items():
            known = [t for t in (demand[name].newest_submit, *times) if t is not None]
            demand[name] = replace(demand[name], newest_submit=max(known, default=None))
        for name, seen in runtimes.items():
            demand[name] = replace(demand[name], runtimes=tuple(sorted(seen)))
        return demand

    # --- act ----------------------------------------------------------------------------------

    def apply(self, action: Action) -> None:
        if isinstance(action, Relabel):
            self.relabel(action)
        elif isinstance(action, DrainStartd):
            self.drain(action)
        else:
            raise InvalidTransition(f"{action.kind} is not an HTCondor action", where="batch.live",
                                    fix="send node and pod actions to the Kubernetes adapter")

    def relabel(self, action: Relabel) -> None:
        """BCS 1/2: set the startd's pool knob at runtime and reconfig it. A no-op if already done.

        The old pool's jobs still running there are evicted at ``since + vacate_after_seconds`` (the rendered
        PREEMPT, ``policy.vacate_expr``, reads the old pool's ``render.vacate_knob``), or left to finish when it
        is None — which also clears a deadline an earlier relabel from that pool left. The jobs of the new pool,
        and a latency pool's that start here after the relabel (overflow), are not touched."""
        policy.require_pool(self.spec, action.to_pool, where="Relabel.to_pool")
        if action.vacate_after_seconds is not None:
            # The rendered config has a deadline knob for the spec's pools only (SETTABLE_ATTRS_CONFIG).
            policy.require_pool(self.spec, action.from_pool, where="Relabel.from_pool")
        slot = self.slot(action.startd)
        if slot.startd.pool == action.to_pool:
            return
        if slot.startd.pool != action.from_pool:
            raise Conflict(f"startd {action.startd} serves pool '{slot.startd.pool}', not '{action.from_pool}'",
                           where=action.startd, fix="observe again: someone else moved it")
        since = int(self.clock())
        knobs = {POOL_KNOB: action.to_pool, SINCE_KNOB: str(since)}
        # What it was: set back if the reconfig fails, so the next reconfig (anyone's) does not carry out a relabel
        # the broker was told failed — nor the old pool's deadline on the pool it stays in (review).
        undo = {POOL_KNOB: slot.startd.pool, SINCE_KNOB: str(int(slot.startd.since))}
        if action.from_pool in self.spec.pools:
            knobs[vacate_knob(action.from_pool)] = vacate_value(since, action.vacate_after_seconds)
            undo[vacate_knob(action.from_pool)] = NO_DEADLINE
        self._set_and_reconfig(slot, knobs, undo, in_effect=lambda: self._serves(action.startd, action.to_pool))

    def _serves(self, startd: str, pool: str) -> bool:
        """Whether the collector lists ``startd`` serving ``pool`` now (False when it cannot tell)."""
        try:
            return self.slot(startd).startd.pool == pool
        except EnclaveError:
            return False

    def drain(self, action: DrainStartd) -> None:
        """Stop new matches and let jobs retire: within their pool's retirement time, or, with a deadline, until
        ``now + vacate_after_seconds``, when what still runs is soft-killed (``render.retirement_expr``).

        Every drain sets the startd's deadline knob first, to the deadline or to ``undefined``: a deadline an
        earlier drain left behind (one the startd refused, or a cancel whose reset failed) would otherwise cut
        this drain's retirement to 0. The reconfig reaches the startd through its master, possibly later than
        a drain sent to the startd itself, and a draining startd decides at once whom to evict (ResState.cpp,
        ``change``: "When we enter retirement or idleness, check right away"), so the drain carries a check
        expression the startd holds it to: it refuses the drain until it publishes that knob
        (``ResMgr::startDraining``: DRAINING_CHECK_EXPR_FAILED when the expression is false on a slot)."""
        slot = self.slot(action.startd)
        if slot.draining:
            return
        if action.vacate_after_seconds is None:
            knob, check = NO_DEADLINE, f"isUndefined({DRAIN_DUE_ATTR})"
        else:
            due = drain_due(math.ceil(self.clock()), action.vacate_after_seconds)
            knob, check = str(due), f"{DRAIN_DUE_ATTR} =?= {due}"
        self._set_and_reconfig(slot, {DRAIN_DUE_KNOB: knob})
        self._drain_checked(slot, action, check)

    def _drain_checked(self, slot: LiveSlot, action: DrainStartd, check: str) -> None:
        """``drainJobs`` on the startd, asked again for a while when it refuses: the bindings tell no reason
        ("Startd failed to start draining jobs.", htcondor2 ``startd.cpp``), and the likely one is that the
        reconfig has not reached it yet. When it still refuses, the knob is set back on a best effort.

        A refusal from a startd the collector now lists as draining ends it: the drain runs, with the knob set. The
        startd refuses a second drain (``ResMgr::startDraining``: DRAINING_ALREADY_IN_PROGRESS), so the refusal is
        for a drain it accepted whose answer was lost, or for another's that started in between; set back, the
        knob would take this drain's deadline off, and the broker's next decision sees it draining and asks
        nothing more."""
        reason = f"enclave: {action.actor}: {action.reason}"
        for attempt in range(DRAIN_TRIES):
            try:
                self.bindings.startd(slot.location).drainJobs(
                    drain_type=htcondor2.DrainType.Graceful, on_completion=htcondor2.CompletionType.Nothing,
                    check_expr=check, reason=reason)
                return
            except (htcondor2.HTCondorException, RuntimeError, OSError) as exc:
                if self._draining(action.startd):
                    return
                if attempt + 1 < DRAIN_TRIES:
                    self.sleep(DRAIN_RETRY_SECONDS)
                    continue
                with contextlib.suppress(EnclaveError):
                    self._set_and_reconfig(slot, {DRAIN_DUE_KNOB: NO_DEADLINE})
                raise ExternalError(
                    f"drain of startd {action.startd} failed: it refused {DRAIN_TRIES} times, "
                    f"{DRAIN_RETRY_SECONDS:g} s apart ({exc}); its check was {check}", where=action.startd,
                    fix="see the startd's log (StartLog) for why; the broker's next decision asks again") from exc

    def _draining(self, startd: str) -> bool:
        """Whether the collector lists ``startd`` as draining now (False when it cannot tell)."""
        try:
            return self.slot(startd).draining
        except EnclaveError:
            return False

    def cancel_drain(self, startd: str) -> None:
        """Let the startd match again, and take a drain's deadline off it: its jobs get their pool's retirement
        time back (``render.retirement_expr``), not the deadline of a drain that no longer runs.

        The knob is set back to its rendered ``undefined``, not deleted: ``RemoteParam.__delitem__`` sends
        ``KEY = `` (htcondor2 ``remote_param.cpp``, ``_remote_param_set`` formats ``"%s = %s"``), a non-empty
        runtime config that defines the knob as empty, while only an empty one removes the setting
        (``condor_config.cpp``, ``set_runtime_config``: "config is nullptr or zero-length, meaning remove";
        htcondor/htcondor 7491a14)."""
        slot = self.slot(startd)
        try:
            self.bindings.startd(slot.location).cancelDrainJobs()
        except (htcondor2.HTCondorException, RuntimeError, OSError) as exc:
            raise _external(f"cancelling the drain of {startd} failed", exc) from exc
        self._set_and_reconfig(slot, {DRAIN_DUE_KNOB: NO_DEADLINE})

    def _set_and_reconfig(self, slot: LiveSlot, knobs: dict[str, str], undo: dict[str, str] | None = None, *,
                          in_effect: Callable[[], bool] | None = None) -> None:
        """Runtime-set knobs on the startd, then reconfig it through its host's master. When the reconfig cannot be
        sent, the knobs are set to ``undo`` (best effort): set knobs wait for the next reconfig, whoever sends it.
        Unless the collector shows the change ``in_effect`` all the same (the reconfig arrived and its answer was
        lost): set back, the knobs would undo it at the next reconfig, anyone's, and no entry would say so (review,
        stop 53). A change that reaches the collector only later is still set back.

        The reconfig goes to the master (as ``condor_reconfig <host>`` does), which passes it on to
        the startd: htcondor2 cannot address a startd by a slot ad, whose MyType "Machine" it maps to
        no daemon type.
        """
        host = slot.startd.name
        try:
            self._set(slot, knobs)
            # By the host (a master's Name is its user@host when not run as root, MASTER_NAME), with its MyType.
            masters = self.collector.query(htcondor2.AdType.Master, constraint=f"Machine =?= {classad2.quote(host)}",
                                           projection=LOCATION_PROJECTION)
            master = _the_one(masters, host, missing=(
                f"the master of {host} is not advertised",
                "start HTCondor's master on the host (`condor_status -master`); the broker's next cycle asks again"),
                several=(f"masters advertise host {host}", "run one HTCondor instance per host, as the rendered "
                                                           "configs do"))
            self.bindings.send_command(master, htcondor2.DaemonCommand.Reconfig)
        except (EnclaveError, htcondor2.HTCondorException, RuntimeError, OSError, ValueError) as exc:
            if in_effect is not None and in_effect():
                event(_log, logging.WARNING, "reconfig reported failed, but the startd shows it done", startd=host,
                      error=str(exc))
                return
            if undo:
                with contextlib.suppress(htcondor2.HTCondorException, RuntimeError, OSError, ValueError):
                    self._set(slot, undo)
            if isinstance(exc, EnclaveError):
                raise
            raise _external(f"runtime config of startd {host} failed", exc) from exc

    def _set(self, slot: LiveSlot, knobs: dict[str, str]) -> None:
        """Runtime-set ``knobs`` on the slot's startd (they take effect at its next reconfig)."""
        remote = self.bindings.remote_param(slot.location)
        for key, value in knobs.items():
            remote[key] = value


def _slot(ad: ClassAd, pool_attribute: str) -> LiveSlot:
    """One partitionable slot's ad, as the startd of its host (``Machine``)."""
    machine = _str(ad, "Machine") or _str(ad, "Name") or "?"
    kind = _str(ad, policy.KIND_ATTR) or StartdKind.STANDALONE.value
    total = _int(ad, "TotalSlotCpus", _int(ad, "Cpus"))
    memory = _int(ad, "TotalSlotMemory", _int(ad, "Memory"))
    startd = Startd(
        name=machine,
        node=_str(ad, policy.NODE_ATTR) or machine,
        kind=StartdKind(kind) if kind in StartdKind.__members__.values() else StartdKind.STANDALONE,
        pool=_str(ad, pool_attribute) or "",
        cores=total,
        memory_mib=memory,
        busy_cores=max(0, total - _int(ad, "Cpus")),
        # A partitionable slot's Memory is what is left unclaimed (HTCondor manual, "Partitionable
        # slots" in the admin manual's Policy Configuration chapter), as Cpus is for cores.
        busy_memory_mib=max(0, memory - _int(ad, "Memory")),
        since=float(_int(ad, "EnclavePoolSince")),
        draining=ad.get("Draining") is True,
    )
    return LiveSlot(startd=startd, draining=startd.draining, location=ad)


def _one_startd(slots: list[LiveSlot]) -> LiveSlot:
    """The startd of a host that advertises ``slots``: the broker relabels and drains a startd, not a slot.

    The rendered configs give each startd one partitionable slot; a host configured by hand may have several
    (NUM_SLOTS_TYPE_<n>, SLOT_TYPE_<n>_PARTITIONABLE: HTCondor manual, "Configuring the Startd"), and counted
    one by one its cores would count once per slot under one name. Its capacity is their sum; it drains when
    one does, as ``condor_drain`` drains every slot of a startd ("condor_drain" manual page); the pool knob
    and the deadline knobs are the startd's, so it serves its largest slot's pool (they differ only under a
    per-slot override, which no rendered config writes). Located by that slot's ad (the daemon's address)."""
    if len(slots) == 1:
        return slots[0]
    first = min(slots, key=lambda s: (-s.startd.cores, s.location.get("Name") or ""))
    draining = any(s.draining for s in slots)
    startd = replace(first.startd, cores=sum(s.startd.cores for s in slots),
                     memory_mib=sum(s.startd.memory_mib for s in slots),
                     busy_cores=sum(s.startd.busy_cores for s in slots),
                     busy_memory_mib=sum(s.startd.busy_memory_mib for s in slots),
                     since=max(s.startd.since for s in slots), draining=draining)
    return LiveSlot(startd=startd, draining=draining, location=first.location)


def _the_one(ads: list[ClassAd], where: str, *, missing: tuple[str, str], several: tuple[str, str]) -> ClassAd:
    """The one daemon ad a lookup in the collector must find; none or several is an ``ExternalError``, each with
    its (message, fix), several naming them all."""
    if not ads:
        raise ExternalError(missing[0], where=where, fix=missing[1])
    if len(ads) > 1:
        names = ", ".join(sorted(str(ad.get("Name")) for ad in ads))
        raise ExternalError(f"{len(ads)} {several[0]}: {names}", where=where, fix=several[1])
    return ads[0]


def pool_constraint(spec: EnclaveSpec, pool: str) -> str:
    """A constraint selecting the jobs ``demand_of`` attributes to ``pool``, of those its slots run (``ON_POOL``:
    a DAG's own job is no visit's submission nor any job's work)."""
    a = spec.batch.pool_attribute
    own = f"{a} =?= {classad2.quote(pool)}"
    if pool == spec.batch.default_pool:
        own = f'({own}) || !isString({a}) || ({a} =?= "")'
    return f"({own}) && {ON_POOL}"


def demand_of(jobs: Iterable[ClassAd], spec: EnclaveSpec, *, now: float) -> dict[str, PoolDemand]:
    """Aggregate job ads (idle and running) into per-pool demand. Pure: also used on recorded ads."""
    a = spec.batch.pool_attribute
    acc = {p: [0, 0, 0, 0, now, 0, 0] for p in spec.pools}
    newest: dict[str, float] = {}
    for ad in jobs:
        pool = _str(ad, a) or spec.batch.default_pool
        row = acc.get(pool)
        if row is None:
            continue  # a job for no pool of ours cannot be served by moving nodes
        cpus = max(1, _int(ad, "RequestCpus", 1))
        # RequestMemory is in MiB (condor_submit manual, request_memory:
        # https://htcondor.readthedocs.io/en/latest/man-pages/condor_submit.html); absent, 0: cores decide.
        mem = max(0, _int(ad, "RequestMemory", 0))
        status = _int(ad, "JobStatus")
        qdate = _number(ad, "QDate")
        if status == IDLE:
            row[0] += 1
            row[1] += cpus
            row[5] += mem
            row[4] = min(row[4], qdate if qdate is not None else now)
        elif status == RUNNING:
            row[2] += 1
            row[3] += cpus
            row[6] += mem
        else:
            continue
        if qdate is not None:
            newest[pool] = max(qdate, newest.get(pool, qdate))
    return {p: PoolDemand(idle_jobs=int(r[0]), idle_cores=int(r[1]), running_jobs=int(r[2]),
                          running_cores=int(r[3]), oldest_idle_seconds=max(0.0, now - r[4]),
                          idle_memory_mib=int(r[5]), running_memory_mib=int(r[6]),
                          newest_submit=newest.get(p))
            for p, r in acc.items()}


# --- an account's jobs (issue 21: transitions reach the running systems) ----------------------------------------

JOB_STATUSES: dict[JobState, tuple[int, ...]] = {JobState.QUEUED: (IDLE, HELD),
                                                 JobState.RUNNING: (RUNNING, SUSPENDED)}
JOB_ACTIONS: dict[JobVerb, htcondor2.JobAction] = {JobVerb.REMOVE: htcondor2.JobAction.Remove,
                                                   JobVerb.HOLD: htcondor2.JobAction.Hold}


def owner_constraint(owner: str, state: JobState) -> classad2.ExprTree:
    """``owner``'s jobs in ``state``, as a ClassAd expression built by classad2, never by pasting the name.

    ``Owner`` is the submitting user's login name (HTCondor manual, "Job ClassAd Attributes"), which for enclave's
    accounts is the username. The name is a ClassAd string literal made by ``classad2.quote`` (quotes and
    backslashes escaped), and compared with ``=?=``: ``==`` compares strings case-insensitively (HTCondor manual,
    "ClassAd Evaluation Semantics", the ``=?=`` "is identical to" operator is case-sensitive and never
    UNDEFINED), and login names are case-sensitive, so another account "Alice" on a submit host stays untouched.
    """
    statuses = " || ".join(f"JobStatus == {s}" for s in JOB_STATUSES[state])
    return classad2.ExprTree(f"(Owner =?= {classad2.quote(owner)}) && ({statuses})")


class HTCondorJobs:
    """``enclave.domain.reach.JobSystem`` through the bindings: ``htcondor2.Schedd.act`` on every schedd the spec
    names (batch.submit_hosts and every pool's submit_hosts), each located through the collector.

    The identity enclave runs as must be a queue super user on each schedd (``QUEUE_SUPER_USERS``, HTCondor
    manual "Configuration Macros") to hold or remove another owner's jobs; otherwise the schedd answers
    TotalPermissionDenied, reported here as a failure."""

    def __init__(self, batch: HTCondorBatch) -> None:
        self.batch = batch

    def schedds(self) -> list[str]:
        return policy.schedds(self.batch.spec)

    def act(self, schedd: str, verb: JobVerb, owner: str, state: JobState, reason: str) -> int:
        handle = self.batch._schedd(schedd)
        # htcondor2 25.x Schedd.act(action, job_spec, reason=None) -> ClassAd of Total* counts (_schedd.py). It sends a
        # reason only as a (text, code) tuple: a plain str goes as no reason and the code as "None", which the schedd
        # assigns to a hold's HoldReasonSubCode as an expression (dc_schedd.cpp actOnJobs: AssignExpr), an undefined
        # reference. 0 is the subcode of a hold with no finer reason (HoldReasonCode 1, "by the user").
        try:
            result = handle.act(JOB_ACTIONS[verb], owner_constraint(owner, state), reason=(reason, 0))
        except (htcondor2.HTCondorException, RuntimeError, OSError) as exc:
            raise _external(f"schedd {schedd}: {verb.value} of {owner}'s {state.value} jobs failed", exc) from exc
        if result is None:
            return 0
        denied, errors = _int(result, "TotalPermissionDenied"), _int(result, "TotalError")
        if denied or errors:
            raise ExternalError(f"schedd {schedd} refused to {verb.value} {denied + errors} of {owner}'s "
                                f"{state.value} jobs ({denied} permission denied, {errors} errors)", where=schedd,
                                fix="make enclave's identity a QUEUE_SUPER_USER on that schedd, then "
                                    f"`enclave accounts reach {owner} --live`")
        return _int(result, "TotalSuccess")
