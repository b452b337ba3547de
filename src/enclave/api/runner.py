"""The broker loop of a running service: advance the backend clock, run one broker cycle, record.

The runner drives ``enclave.services.broker.BrokerService`` over any backend — the twin (accelerated simulated
clock, moved on by ``simulate``) or the live cluster (wall clock) — so every action, the broker's and a
person's alike, is role-checked and journaled exactly as ``enclave broker run`` and ``enclave batch move``
do. The broker service's lock serialises the loop and manual procedures.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import BaseModel

from enclave.api.metrics import Metrics
from enclave.api.snapshot import History, summarise
from enclave.broker.churn import Churn
from enclave.broker.decide import PoolState
from enclave.broker.execute import Outcome, target
from enclave.domain.capacity import Backend, Observed
from enclave.logs import event, logger
from enclave.services.broker import BrokerService
from enclave.spec.models import EnclaveSpec

T = TypeVar("T")
log = logger("broker.loop")


@dataclass(frozen=True)
class AppliedAction:
    at: float
    """Backend clock when it was applied."""
    kind: str
    target: str
    actor: str
    reason: str
    journal_seq: int | None = None


class BrokerStatus(BaseModel):
    backend: str
    running: bool
    cycles: int
    actions_total: int
    last_error: str | None
    sim_seconds_per_cycle: float | None
    """Simulated seconds per cycle (the twin); None for a live backend."""
    wall_seconds_per_cycle: float
    finished: bool
    """The twin reached the end of its scenario."""
    leading: bool = True
    """This replica runs the broker loop; False: a standby waiting for the leader's lock (enclave.db.leader)."""
    calm: bool | None = None
    """The broker's last word on the latency pools (docs/batch.md, "Claims while calm"); None: no pool reads it,
    or no cycle has said it yet."""


@dataclass
class Extras:
    """Figures the backend can report beyond ``Observed`` (the twin's running metrics)."""

    prompt_latencies: Sequence[float] = ()
    """Visit latencies completed since the previous cycle, seconds."""
    prompt_latency_p95: float | None = None
    prompt_within_objective: float | None = None
    notebook_users: int | None = None


@dataclass
class BrokerRunner:
    broker: BrokerService
    metrics: Metrics
    history: History
    simulate: bool = True
    """Move the backend's clock on by ``sim_seconds_per_cycle`` each cycle (the twin); False for a live backend,
    whose clock moves by itself."""
    extras: Callable[[], Extras] | None = None
    backend_name: str = "twin"
    sim_seconds_per_cycle: float = 60.0
    wall_seconds_per_cycle: float = 1.0
    recent: deque[AppliedAction] = field(default_factory=lambda: deque(maxlen=200))
    cycles: int = 0
    actions_total: int = 0
    last_error: str | None = None
    leader: Callable[[], bool] | None = None
    """Asked before every cycle: may this replica run the broker now? None: always (one replica)."""
    leading: bool = True
    churn: Churn | None = None
    """Actions and evicted work per night as this loop applied them (backend clock); set at the first record."""
    plan: dict[str, PoolState] = field(default_factory=dict)
    """Each pool as the broker's last plan saw it (guarantee, need, target): exported and on the overview."""
    calm: bool | None = None
    """The last word of calm this loop advertised (``CycleReport.calm``): exported and on the overview."""
    _announced: bool | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.metrics.lead(self.leading)
        self.metrics.broker_cycle_seconds.set(self.wall_seconds_per_cycle)

    @property
    def spec(self) -> EnclaveSpec:
        return self.broker.spec

    @property
    def backend(self) -> Backend:
        return self.broker.backend

    def observe(self) -> Observed:
        return self.broker.observe()

    def step(self) -> Observed:
        """One cycle; safe to call from tests without the thread. Counted once, as ok or failed (``_count``), also
        when the backend cannot be observed: the loop reports that error, and the cycle failed all the same."""
        with self.broker.lock:
            ok = False
            try:
                observed, ok = self._cycle()
            finally:
                self._count(ok)
            self.snapshot()
            return observed

    def _cycle(self) -> tuple[Observed, bool]:
        """Move the clock on, observe, retry what is under way, decide and act: the observation and whether all of
        it ran. An action refused or failed leaves the cycle ok (it is logged, and counted by kind in
        ``enclave_broker_action_failures_total``); a Lease lost part-way is a standby's turn, not a failure."""
        if self.simulate:
            self.backend.advance(self.sim_seconds_per_cycle)
        observed = self.observe()
        ok, stuck = True, None
        try:
            self.backend.progress()
        except Exception as exc:  # one eviction that keeps failing must not stop every cycle (review)
            self._failed(exc, "broker progress failed")
            ok, stuck = False, self.last_error
        try:
            # Asked through _leads: a Lease refused part-way stands the loop by, the cycle's work so far kept.
            report = self.broker.cycle(leading=self._leads)
        except Exception as exc:  # a failed cycle is reported and retried, never kills the service
            self._failed(exc)
            return observed, False
        self.plan = report.plan.pools
        self.metrics.observe_plan(self.plan)
        if report.calm is not None:
            self.calm = report.calm
            self.metrics.broker_calm.set(int(report.calm))
        for outcome in report.outcomes:
            self._record(outcome, observed.now)
        for kind in report.failed:
            self.metrics.broker_action_failures.labels(kind).inc()
        self.last_error = "; ".join(report.refused[:3]) or report.stopped or stuck
        return observed, ok and not report.broken

    def _count(self, ok: bool) -> None:
        self.cycles += 1
        self.metrics.broker_cycles.labels("ok" if ok else "failed").inc()
        if ok:
            self.metrics.broker_last_success.set(time.time())

    def _failed(self, exc: Exception, what: str = "broker cycle failed") -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        event(log, logging.ERROR, what, backend=self.backend_name, error=type(exc).__name__, cause=str(exc))

    def _leads(self) -> bool:
        """Whether this replica may run the broker now. A Lease it cannot read or write (an API server down, RBAC
        refused) is standing by, reported, and asked again next time: it never ends the loop (review: it did)."""
        if self.leader is None:
            return True
        try:
            return self.leader()
        except Exception as exc:
            self._failed(exc, "broker leadership unknown")
            return False

    def snapshot(self) -> None:
        with self.broker.lock:
            observed = self.observe()
            extra = self.extras() if self.extras else Extras()
            for latency in extra.prompt_latencies:
                self.metrics.prompt_latency.observe(latency)
            snap = summarise(self.spec, observed, prompt_latency_p95=extra.prompt_latency_p95,
                             prompt_within_objective=extra.prompt_within_objective,
                             notebook_users=extra.notebook_users,
                             prompt_latencies=tuple(extra.prompt_latencies))
            self.history.append(snap)
            self.metrics.observe_snapshot(snap)

    def _record(self, outcome: Outcome, at: float) -> None:
        if not outcome.applied:
            return
        a = outcome.action
        self.recent.appendleft(AppliedAction(at=at, kind=a.kind, target=target(a), actor=a.actor,
                                             reason=a.reason, journal_seq=outcome.seq))
        self.actions_total += 1
        self.metrics.broker_actions.labels(a.kind).inc()
        self.metrics.broker_evicted.inc(outcome.lost_core_s)
        self._churn().add(at, outcome.lost_core_s)

    def _churn(self) -> Churn:
        if self.churn is None:
            self.churn = Churn(site=self.spec.cluster.site)
        return self.churn

    def manual(self, procedure: Callable[[BrokerService], Outcome]) -> Outcome:
        """A BCS procedure run by a person, between two broker cycles, recorded like the broker's actions."""
        with self.broker.lock:
            now = self.observe().now
            outcome = procedure(self.broker)
            self._record(outcome, now)
            self.snapshot()
            return outcome

    def status(self) -> BrokerStatus:
        return BrokerStatus(backend=self.backend_name, running=self.running, cycles=self.cycles,
                            actions_total=self.actions_total, last_error=self.last_error,
                            sim_seconds_per_cycle=self.sim_seconds_per_cycle if self.simulate else None,
                            wall_seconds_per_cycle=self.wall_seconds_per_cycle, finished=self.backend.finished,
                            leading=self.leading, calm=self.calm)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="enclave-broker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _lead(self, now: bool) -> None:
        if now != self._announced:  # once at start, then at every change of leadership
            event(log, logging.INFO, "broker loop leads" if now else "broker loop stands by",
                  backend=self.backend_name)
            self._announced = now
        if now != self.leading:
            self.metrics.lead(now)
        self.leading = now

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self._lead(self._leads())
            if self.backend.finished or not self.leading:  # a standby only waits for the lock
                self._stop.wait(self.wall_seconds_per_cycle)
                continue
            try:
                self.step()
            except Exception as exc:  # observe/advance failed (backend unreachable): counted, reported, tried again
                self._failed(exc)
            self._stop.wait(max(0.0, self.wall_seconds_per_cycle - (time.monotonic() - started)))
