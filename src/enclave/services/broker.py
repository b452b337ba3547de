"""The capacity broker over one backend: its plan, its cycles, and the BCS procedures run by hand.

Every action, the broker's and a person's alike, goes through ``apply``: the acting account's permission for
that BCS procedure is checked first, then the backend carries the action out and the journal records it with
the before and after state of what it touched. A refused action touches nothing; one the backend fails part-way
is journaled as failed with what it left in effect (``_journal_failure``).

A manual procedure is built here and nowhere else, so the CLI and the API produce the same action — the same
pod names, the same grace period, the same journal entry. One lock serialises broker cycles and manual
procedures: a person's procedure never interleaves with a cycle.

Idempotence and restarts: an action already in effect (the fresh observation projects to itself) is skipped
and not journaled again. Every cycle starts from ``backend.observe()``, so a broker killed between two actions
re-observes after a restart and decides from what is really there. The one thing it carries from cycle to cycle
is what it has learned of the latency pools' needs (``window``: the last ``need_window_seconds`` and the recent
nights, ``enclave.broker.window``), kept in memory: a restarted broker, or a standby replica taking the lead,
learns them again. Until it has measured a visit the pre-warm holds its default, the guarantee on the whole
batch capacity (``decide.pool_figure``), never less because a gap between visits showed no job
(``tests/broker/test_window.py``); the recent nights come back after ``need_nights`` nights seen whole.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from enclave import journal
from enclave.access.permissions import Permission
from enclave.accounts.authorize import require
from enclave.batch.render import calm_pools
from enclave.broker.calm import Calm
from enclave.broker.churn import Churn, from_entries
from enclave.broker.decide import BROKER_ACTOR, Plan, plan
from enclave.broker.effects import apply_one
from enclave.broker.execute import Outcome, details, permissions, target, touched
from enclave.broker.naming import pod_names
from enclave.broker.victims import action_loss
from enclave.broker.window import NeedWindow
from enclave.clock import utcnow
from enclave.db import Database
from enclave.domain.capacity import (
    Action,
    Backend,
    DeletePods,
    DeployPods,
    DrainNode,
    DrainStartd,
    Observed,
    Relabel,
    ReturnNode,
    Startd,
    StartHTCondor,
)
from enclave.domain.schedule import ObservingSchedule
from enclave.errors import Conflict, EnclaveError, ExternalError, InputError, NotFound, PermissionDenied, Problem
from enclave.journal.chain import TIME_FORMAT
from enclave.logs import event, logger
from enclave.observing.schedules import SCHEDULE_ACTION
from enclave.spec.models import EnclaveSpec

log = logger("broker")

class _NotLeading(Exception):
    """This replica no longer holds the broker's leadership: the cycle stops (``BrokerService.cycle``)."""


JOURNAL_ATTEMPTS = 3
"""Tries at an applied action's journal entry (``_journal_applied``), each within the database's own busy wait."""


class _Failed(Exception):
    """The backend failed an action it was asked to carry out (not a refusal): ``error`` is what it raised,
    which ``apply`` raises in turn and ``cycle`` reports apart from refusals."""

    def __init__(self, error: EnclaveError) -> None:
        super().__init__(str(error))
        self.error = error


FAILED_SUFFIX = ".failed"
"""Ends the journal action of an attempt the backend failed (``broker.DeployPods.failed``)."""
DRAIN_POLL_SECONDS = 1.0
"""How often a waiting drain looks again: kubectl drain polls each evicted pod's deletion every second
(kubectl pkg/drain/drain.go, waitForDelete with ``interval: 1 * time.Second``)."""


class DrainTimedOut(ExternalError):
    """kubectl drain --timeout ran out with pods still on the node."""


@dataclass(frozen=True)
class DrainOverrides:
    """``kubectl drain``'s flags for one drain (https://kubernetes.io/docs/reference/kubectl/generated/
    kubectl_drain/): --force, --ignore-daemonsets, --delete-emptydir-data (None: the spec's ``cluster.drain``),
    --grace-period (None, kubectl's -1: each pod's own) and --timeout (None: do not wait, the broker retries
    each cycle; 0: wait without limit, as kubectl's default 0s; N: at most N seconds)."""

    force: bool | None = None
    ignore_daemonsets: bool | None = None
    delete_emptydir_data: bool | None = None
    grace_period_seconds: int | None = None
    timeout_seconds: float | None = None


def _authorize(session: Session, action: Action) -> None:
    """The actor holds every permission the action's BCS procedure needs (``broker.execute.permissions``)."""
    for permission in permissions(action):
        require(session, action.actor, permission)


@dataclass
class CycleReport:
    plan: Plan
    outcomes: list[Outcome] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """Actions of the plan refused on the way (a role missing, a node gone), as ``kind target: why``."""
    failed: list[str] = field(default_factory=list)
    """The kinds of the actions the backend failed (also in ``refused``, with why): one entry per failure."""
    stopped: str | None = None
    """Why the cycle stopped before its last action (this replica lost the leadership, an action failed in a way
    no adapter names), else None."""
    broken: bool = False
    """It stopped on an error (an action failed in a way no adapter names), not because the leadership was lost."""
    calm: bool | None = None
    """The word on the latency pools advertised this cycle (``enclave.broker.calm``); None when no pool reads it."""


@dataclass
class BrokerService:
    spec: EnclaveSpec
    db: Database
    backend: Backend
    where: str
    """Which backend this is, as a person reads it: ``live`` or ``twin (<scenario>)``."""
    clock: Callable[[], datetime] = utcnow
    lock: threading.RLock = field(default_factory=threading.RLock)
    sleep: Callable[[float], None] = time.sleep
    roles: Database | None = None
    """Where each actor's permission is checked when it is not ``db``: a twin journals in a scratch store of
    its own (``Factory.twin_broker``) while people act on it with the roles they hold in the enclave."""
    scopes: frozenset[Permission] | None = None
    """What the caller's token may do (its account's permissions narrowed to the token's scopes, as ``/whoami``
    says), when a token's holder drives a twin from the CLI (``cli.broker._procedure``): the twin refuses what the
    enclave's API would refuse that token. None: the roles alone (local mode, the server's own loop)."""
    schedule: Callable[[], ObservingSchedule | None] | None = None
    """The observing schedule pushed to the enclave (``ScheduleService.current``), attached to each observation
    that carries none of its own (a twin's next_visit feed does); None: twilight alone decides."""
    window: NeedWindow = field(init=False)
    """Each pool's recent peak need, carried from cycle to cycle (``enclave.broker.window``)."""
    calm: Calm = field(init=False)
    """The latency pools' recent cycles, from which each cycle's word of calm is taken (``enclave.broker.calm``)."""

    def __post_init__(self) -> None:
        self.window = NeedWindow(self.spec)
        self.calm = Calm(self.spec)

    # --- the broker ----------------------------------------------------------------------------------------

    def observe(self) -> Observed:
        with self.lock:
            return self.backend.observe()

    def plan(self, actor: str = BROKER_ACTOR) -> tuple[Plan, Observed]:
        """What the broker would do now and why (changes nothing): the loop's next decision, with the needs its
        window has learned (``NeedWindow.peek``), not only those observed now."""
        with self.lock:
            observed = self.window.peek(self._scheduled(self.backend.observe()))
            return plan(self.spec, observed, actor), observed

    def _scheduled(self, observed: Observed) -> Observed:
        """The observation with the pushed observing schedule, unless the backend brought one."""
        if observed.schedule is not None or self.schedule is None:
            return observed
        pushed = self.schedule()
        return observed if pushed is None else replace(observed, schedule=pushed)

    def cycle(self, actor: str = BROKER_ACTOR, leading: Callable[[], bool] | None = None) -> CycleReport:
        """One observe → decide → act round. Each action re-observed first, so one refusal does not stop the
        others.

        ``leading`` (the replica's Lease or advisory lock, renewed by asking) is asked again before each action
        acts, after its re-observation: a cycle that outlasts the lease — a slow API server, a long drain — stops
        applying the moment another replica may have taken over, so two leaders never act in the same interval."""
        with self.lock:
            observed = self.window.feed(self._scheduled(self.backend.observe()))
            decision = plan(self.spec, observed, actor)
            report = CycleReport(decision)
            if leading is None or leading():  # a replica that lost the Lease says nothing the startds would read
                self._advertise(observed, report)
            for i, action in enumerate(decision.actions):
                try:
                    report.outcomes.append(self._apply(action, leading=leading))
                except _NotLeading:
                    report.stopped = (f"leadership lost: {len(decision.actions) - i} of {len(decision.actions)} "
                                      "action(s) not applied; the new leader decides afresh")
                    event(log, logging.WARNING, "broker cycle stopped", where=self.where, cause=report.stopped)
                    break
                except _Failed as failure:
                    report.refused.append(f"{action.kind} {target(action)} failed: {failure.error}")
                    report.failed.append(action.kind)
                except EnclaveError as error:
                    report.refused.append(f"{action.kind} {target(action)}: {error}")
                except Exception as error:  # no adapter's error: what went before stands and is reported (review)
                    report.stopped = (f"{action.kind} {target(action)} failed ({type(error).__name__}: {error}): "
                                      f"{len(decision.actions) - i - 1} later action(s) not applied this cycle")
                    report.broken = True
                    event(log, logging.ERROR, "broker cycle stopped", where=self.where, cause=report.stopped)
                    break
            return report

    def _advertise(self, observed: Observed, report: CycleReport) -> None:
        """Advertise this cycle's word of calm, where some pool reads it. Before the actions: a failure is reported
        with the refusals, and the startds keep the last word until it goes stale (``render.calm_cron``)."""
        if not calm_pools(self.spec):
            return
        report.calm = self.calm.feed(observed.now, report.plan.pools, observed.demand)
        try:
            self.backend.advertise_calm(report.calm)
        except EnclaveError as error:
            report.refused.append(f"advertise calm: {error}")

    # --- actions -------------------------------------------------------------------------------------------

    def apply(self, action: Action) -> Outcome:
        """One action by its actor. The role check comes first, before the backend is looked at: a caller
        without the role is refused even when the action happens to be in effect already."""
        try:
            self._check_roles(action)
        except EnclaveError as error:
            self._refused(action, error)
            raise
        with self.lock:
            try:
                return self._apply(action)
            except _Failed as failure:
                raise failure.error from None

    def _check_roles(self, action: Action) -> None:
        with (self.roles or self.db).session() as own:
            _authorize(own, action)
        if self.scopes is not None:
            missing = [p.value for p in permissions(action) if p not in self.scopes]
            if missing:
                may = ", ".join(sorted(p.value for p in self.scopes)) or "nothing"
                raise PermissionDenied(f"this token may not use {', '.join(missing)} (it may: {may})",
                                       where="Authorization",
                                       fix=f"use a token issued with scope {' and '.join(missing)}, or *")

    def _apply(self, action: Action, leading: Callable[[], bool] | None = None) -> Outcome:
        """Check, act, journal. The role is checked in a transaction of its own and the entry written in another
        once the backend has acted: the database's write lock is not held while the backend acts (review: a
        slow drain held SQLite's for its whole length). An action the backend fails part-way is journaled too
        (``_journal_failure``). ``leading``: asked last before the backend acts, after the observation (many
        calls, each up to ``REQUEST_TIMEOUT``), so a Lease lost meanwhile stops it (``_NotLeading``)."""
        try:
            before = self.backend.observe()
            expected = apply_one(before, action)  # also refuses an action impossible in this state
            if expected == before:
                return Outcome(action, applied=False)
            self._check_roles(action)
            if leading is not None and not leading():
                raise _NotLeading
            try:
                changed = self.backend.apply(action)
            except EnclaveError as error:  # the backend's failure, not a refusal: logged and reported as one
                self._journal_failure(action, before, error)
                self._failed(action, error)
                raise _Failed(error) from error
            except Exception as error:  # an adapter's bug stops the cycle (``cycle``), its part-work journaled first
                self._journal_failure(action, before, error)
                raise
            if not changed:  # in effect by the time it arrived (a step still under way)
                return Outcome(action, applied=False)
            # The backend's clock (the twin's simulated one) dates the action for churn per night, and the
            # work it may evict is recorded as the broker reckoned it (enclave.broker.victims).
            loss = action_loss(before, action)
            extra = {"clock": before.now, **({"evicts": loss} if loss is not None else {})}
            entry = self._journal_applied(action, touched(before, action),
                                          {**touched(expected, action), "action": details(action), **extra})
        except EnclaveError as error:
            self._refused(action, error)
            raise
        event(log, logging.INFO, "broker action applied", where=self.where, kind=action.kind, target=target(action),
              actor=action.actor, reason=action.reason, journal_seq=entry.seq)
        return Outcome(action, applied=True, seq=entry.seq, lost_core_s=loss["lost_core_s"] if loss else 0.0)

    def _journal_applied(self, action: Action, before: dict[str, Any], after: dict[str, Any]) -> journal.Entry:
        """The entry of an action the backend has carried out, tried ``JOURNAL_ATTEMPTS`` times: the move stands,
        so its entry must not be lost to a write lock held a moment too long, and the next cycle finds it in effect
        and writes none. If it still cannot be written, the action is a failure (``_Failed``), not a refusal, which
        would say it touched nothing, and the whole entry is logged at ERROR (review, stop 48)."""
        for _ in range(JOURNAL_ATTEMPTS):
            try:
                with self.db.session() as session:
                    return journal.record(session, actor=action.actor, action=f"broker.{action.kind}",
                                          target=target(action), reason=action.reason, before=before, after=after,
                                          at=self.clock())
            except EnclaveError as error:
                unwritten = error
        event(log, logging.ERROR, "broker action applied but not journaled", where=self.where, kind=action.kind,
              target=target(action), actor=action.actor, reason=action.reason, before=before, after=after,
              cause=str(unwritten))
        raise _Failed(ExternalError(f"{action.kind} {target(action)} was carried out, but its journal entry could "
                                    f"not be written: {unwritten.problem.what}", where="journal",
                                    fix="the entry is in the log (broker action applied but not journaled); "
                                        "see to the database, then journal it by hand if it must be in the chain"))

    def _journal_failure(self, action: Action, before: Observed, error: Exception) -> None:
        """An action the backend failed may have done part of its work — some pods made, some evicted, a pod
        deleted and its node not given back — which the broker's next cycles take as they find it: the journal
        says it was tried, why it failed, and what is in effect now (``broker.<kind>.failed``; review: the whole
        entry was rolled back and the partial work left no trace). Not when the backend shows nothing changed: a
        failure that repeats every cycle would write an entry a minute. Best effort: a journal that cannot be
        written (or a backend that cannot be observed) does not hide the action's own error, which the caller
        raises."""
        try:
            was = touched(before, action)
            try:
                now: dict[str, Any] = touched(self.backend.observe(), action)
            except EnclaveError as unseen:
                now = {"observed": f"not after the failure: {unseen}"}
            if now == was:
                return
            with self.db.session() as session:
                journal.record(session, actor=action.actor, action=f"broker.{action.kind}{FAILED_SUFFIX}",
                               target=target(action), reason=action.reason, before=was,
                               after={**now, "action": details(action), "failed": str(error), "clock": before.now},
                               at=self.clock())
        except Exception as unjournaled:  # the action's error is the one to report; this one is logged
            event(log, logging.ERROR, "broker failure not journaled", where=self.where, kind=action.kind,
                  target=target(action), error=type(unjournaled).__name__, cause=str(unjournaled))

    def churn(self, actor: str, *, since: datetime | None = None) -> Churn:
        """Actions and the work they evicted, night by night, from the broker's journal entries (the nights wholly
        after ``since``, wall clock: ``from_entries``; all without). Needs journal.read."""
        with (self.roles or self.db).session() as own:
            require(own, actor, Permission.JOURNAL_READ)
        with self.db.session() as session:
            entries = journal.query(session, action="broker.*", since=since)
        # broker.schedule entries are pushes of the observing schedule, not moves; failed attempts moved nothing
        # the broker counts (what they did in part, the next cycles count as they act on it).
        return from_entries(((e.after, _epoch(e.at)) for e in entries
                             if e.action != SCHEDULE_ACTION and not e.action.endswith(FAILED_SUFFIX)),
                            self.spec.cluster.site, since=since.timestamp() if since is not None else None)

    def failures(self, actor: str, *, since: datetime, limit: int) -> list[journal.Entry]:
        """The newest ``limit`` attempts the backend failed since ``since`` (wall clock) that left something
        changed (``broker.<kind>.failed``, ``_journal_failure``), newest first. Needs journal.read."""
        with (self.roles or self.db).session() as own:
            require(own, actor, Permission.JOURNAL_READ)
        with self.db.session() as session:
            entries = journal.query(session, action="broker.*", since=since, newest_first=True)
        return [e for e in entries if e.action.endswith(FAILED_SUFFIX)][:limit]

    def _failed(self, action: Action, error: EnclaveError) -> None:
        """An action the backend failed: an error of the enclave's systems, for whoever runs them, logged at ERROR
        apart from refusals (a role missing, a node gone: the broker's own checks said no, at WARNING)."""
        event(log, logging.ERROR, "broker action failed", where=self.where, kind=action.kind, target=target(action),
              actor=action.actor, reason=action.reason, error=type(error).__name__, cause=str(error))

    def _refused(self, action: Action, error: EnclaveError) -> None:
        event(log, logging.WARNING, "broker action refused", where=self.where, kind=action.kind,
              target=target(action), actor=action.actor, reason=action.reason, error=type(error).__name__,
              cause=str(error))

    def apply_all(self, actions: Iterable[Action]) -> list[Outcome]:
        """Apply in order, re-observing before each so that an action made moot by the last one is skipped."""
        return [self.apply(a) for a in actions]

    # --- the BCS procedures by hand (seed §7.1) ------------------------------------------------------------

    def move(self, actor: str, startd: str, to_pool: str, *, reason: str) -> Outcome:
        """BCS 1/2: relabel a startd. Jobs of a pool whose ``take_away`` is vacate are evicted after that pool's
        grace period; other pools' jobs finish (drain)."""
        self._pool(to_pool, "to_pool")
        with self.lock:
            current = self._startd(startd)
            old = self.spec.pools.get(current.pool)
            grace = old.vacate_grace if old is not None else None
            return self.apply(Relabel(actor=actor, reason=reason, startd=startd, from_pool=current.pool,
                                      to_pool=to_pool, vacate_after_seconds=grace))

    def add_pods(self, actor: str, node: str, pool: str, *, reason: str, count: int = 1, cores: int | None = None,
                 memory_mib: int | None = None) -> Outcome:
        """BCS 4: HTCondor worker pods on a worker, labelled for a pool (sized by the spec's broker.pod_* unless
        given), named by the one naming rule."""
        self._pool(pool, "pool")
        with self.lock:
            existing = {s.name for s in self.backend.observe().startds}
            return self.apply(DeployPods(actor=actor, reason=reason, node=node, pool=pool,
                                         pods=pod_names(node, count, existing),
                                         cores_per_pod=cores or self.spec.broker.pod_cores,
                                         memory_mib_per_pod=memory_mib or self.spec.broker.pod_memory_mib))

    def delete_pods(self, actor: str, pods: Iterable[str], *, reason: str) -> Outcome:
        """BCS 3: delete HTCondor worker pods (drain them first with drain_startd so jobs finish)."""
        return self.apply(DeletePods(actor=actor, reason=reason, pods=tuple(pods)))

    def drain_node(self, actor: str, node: str, *, reason: str, flags: DrainOverrides | None = None) -> Outcome:
        """BCS 5 step 1: keep new pods off a worker (the broker's taint) and evict its pods, with kubectl drain's
        flags when given (else the spec's ``cluster.drain``). With ``flags.timeout_seconds`` it then waits, as
        kubectl drain does, for the evictions to finish; ``DrainTimedOut`` when pods are still there after it (the
        drain stays in effect and journaled, the node tainted, as kubectl leaves it cordoned; the broker goes on
        retrying each cycle)."""
        f = flags or DrainOverrides()
        outcome = self.apply(DrainNode(actor=actor, reason=reason, node=node, force=f.force,
                                       ignore_daemonsets=f.ignore_daemonsets,
                                       delete_emptydir_data=f.delete_emptydir_data,
                                       grace_period_seconds=f.grace_period_seconds))
        if f.timeout_seconds is not None:
            self.wait_drained(node, f.timeout_seconds, outcome)
        return outcome

    def wait_drained(self, node: str, timeout: float, drained: Outcome) -> None:
        """Wait, as ``kubectl drain`` does (pkg/drain/drain.go: evictPods, then waitForDelete), until ``node`` has no
        pod the drain ``drained`` moves left — evicted and gone — or ``timeout`` has passed (0: no limit, kubectl's
        --timeout=0s): ``DrainTimedOut`` then, the drain in effect and journaled, the node tainted, as kubectl
        leaves it cordoned; ``Conflict`` if the drain was undone meanwhile (the node given back). The caller holds
        no lock: each poll takes the broker's, so its cycles go on between them."""
        left = self._wait_drained(node, timeout)
        if left is None:
            raise Conflict(f"{node} is no longer draining: its drain (journal entry {drained.seq}) was undone while "
                           "waiting, the node given back to the commons", where=node,
                           fix="see `enclave broker actions` or the journal for who gave it back; drain it again "
                               "if it is still to be lent")
        if left:
            raise DrainTimedOut(f"{node}: {left} pod(s) still to evict or terminating after {timeout:g} s (journal "
                                f"entry {drained.seq}: the node stays tainted and draining)",
                                where=node, fix="a PodDisruptionBudget may be holding them (see `kubectl get "
                                "pdb -A`), or a pod's termination grace is long; the broker retries every cycle, "
                                "or run drain-node again later")

    def _wait_drained(self, node: str, timeout: float) -> int | None:
        """Poll until the drain of ``node`` is done or undone (``Backend.drain_left``: 0 or None) or ``timeout`` has
        passed. Each poll retries the evictions a budget refused on that node (``progress(node)``; the broker's
        cycle retries every node's), then lets ``DRAIN_POLL_SECONDS`` pass by ``sleep``, outside the lock. A twin
        that nobody else drives (a command's) has ``sleep`` advance it, so the time waited is its clock's: it counts
        as well as the real time passed (the live clock's)."""
        started, waited = time.monotonic(), 0.0
        while True:
            with self.lock:
                self.backend.progress(node)
                left = self.backend.drain_left(node)
                over = self.backend.finished  # a twin at its horizon: its clock moves no further
            elapsed = max(waited, time.monotonic() - started)
            if not left or over or (timeout and elapsed >= timeout):
                return left
            step = DRAIN_POLL_SECONDS if not timeout else max(0.0, min(DRAIN_POLL_SECONDS, timeout - elapsed))
            self.sleep(step)
            waited += step

    def start_htcondor(self, actor: str, node: str, pool: str, *, reason: str) -> Outcome:
        """BCS 5 steps 2–3: start HTCondor on a drained worker, labelled for a pool."""
        self._pool(pool, "pool")
        return self.apply(StartHTCondor(actor=actor, reason=reason, node=node, pool=pool))

    def return_node(self, actor: str, node: str, *, reason: str) -> Outcome:
        """Reverse of BCS 5: stop HTCondor on the node and take the broker's taint off it."""
        return self.apply(ReturnNode(actor=actor, reason=reason, node=node))

    def drain_startd(self, actor: str, startd: str, *, reason: str, vacate_after: float | None = None) -> Outcome:
        """Stop new matches on a startd: running jobs finish, or are vacated after ``vacate_after`` seconds."""
        return self.apply(DrainStartd(actor=actor, reason=reason, startd=startd, vacate_after_seconds=vacate_after))

    def _pool(self, pool: str, where: str) -> None:
        if pool not in self.spec.pools:
            raise InputError([Problem(where, f"pool {pool!r} is not defined",
                                      f"use one of: {', '.join(self.spec.pools)}")])

    def _startd(self, name: str) -> Startd:
        for s in self.backend.observe().startds:
            if s.name == name:
                return s
        raise NotFound(f"no HTCondor startd named {name!r}", where=name,
                       fix="batch-only nodes, drained nodes and worker pods are startds; `enclave broker plan` lists "
                           "the pools")


def _epoch(at: str) -> float:
    """A journal time (``journal.chain.TIME_FORMAT``, UTC) in seconds since the epoch."""
    return datetime.strptime(at, TIME_FORMAT).replace(tzinfo=UTC).timestamp()
