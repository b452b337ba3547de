"""The broker loop of a running service: advance the backend clock, observe, decide, act, record.

The runner knows the backend only through three callables, so the twin (accelerated simulated clock) and a
live cluster (wall clock, ``advance`` is None) run the same loop. One lock serialises the loop and manual
actions sent through the API, so an administrator's BCS procedure never interleaves with a broker cycle.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from enclave.access.permissions import Permission, require
from enclave.api.metrics import Metrics
from enclave.api.plain import plain
from enclave.api.snapshot import History, summarise
from enclave.broker.model import (
    Action,
    DeletePods,
    DeployPods,
    DrainNode,
    DrainStartd,
    Observed,
    Relabel,
    ReturnNode,
    StartHTCondor,
)
from enclave.db import Database
from enclave.errors import Conflict, EnclaveError
from enclave.journal import record
from enclave.spec.models import EnclaveSpec

T = TypeVar("T")

# Seed §7.1: the HTCondor administrator changes ClassAds and starts HTCondor (BCS 1, 2, 4 step 2, 5 steps 2–3);
# the Kubernetes service administrator deploys and deletes worker pods and drains nodes (BCS 3, 4, 5 step 1).
PERMISSION_OF: dict[type[Action], Permission] = {
    Relabel: Permission.BATCH_RELABEL,
    StartHTCondor: Permission.BATCH_RELABEL,
    DrainStartd: Permission.BATCH_RELABEL,
    DeployPods: Permission.BATCH_PODS,
    DeletePods: Permission.BATCH_PODS,
    DrainNode: Permission.BATCH_PODS,
    ReturnNode: Permission.BATCH_PODS,
}


@dataclass(frozen=True)
class AppliedAction:
    at: float
    """Backend clock when it was applied."""
    kind: str
    target: str
    actor: str
    reason: str


def action_target(action: Action) -> str:
    for name in ("startd", "node", "pods"):
        value = getattr(action, name, None)
        if isinstance(value, tuple):
            return ", ".join(value)
        if isinstance(value, str):
            return value
    return ""


def describe(action: Action, at: float) -> AppliedAction:
    return AppliedAction(at=at, kind=action.kind, target=action_target(action), actor=action.actor,
                         reason=action.reason)


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
    spec: EnclaveSpec
    observe: Callable[[], Observed]
    decide: Callable[[Observed], Sequence[Action]]
    """The broker's pure decision for an observed state."""
    db: Database
    metrics: Metrics
    history: History
    apply: Callable[[Action], None] | None = None
    """Carry one action out on the backend (manual procedures); None when the backend is read-only."""
    advance: Callable[[float], None] | None = None
    """Move the backend clock forward by this many seconds (the twin); None for a live backend."""
    extras: Callable[[], Extras] | None = None
    backend_name: str = "twin"
    sim_seconds_per_cycle: float = 60.0
    wall_seconds_per_cycle: float = 1.0
    finished: Callable[[], bool] | None = None
    """True once the backend has nothing more to simulate (end of the scenario)."""
    lock: threading.RLock = field(default_factory=threading.RLock)
    recent: deque[AppliedAction] = field(default_factory=lambda: deque(maxlen=200))
    cycles: int = 0
    actions_total: int = 0
    last_error: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def step(self) -> Observed:
        """One cycle; safe to call from tests without the thread."""
        with self.lock:
            if self.advance is not None:
                self.advance(self.sim_seconds_per_cycle)
            observed = self.observe()
            refused: list[str] = []
            try:
                actions = list(self.decide(observed))
                with self.db.session() as session:
                    for action in actions:
                        try:
                            # One savepoint per action: a refused action leaves no journal entry behind,
                            # and the others still go ahead.
                            with session.begin_nested():
                                self.execute(session, action, observed.now)
                        except EnclaveError as error:
                            refused.append(f"{action.kind} {action_target(action)}: {error}")
                            continue
                        self.record(action, observed.now)
            except Exception as exc:  # a failed cycle is reported and retried, never kills the service
                self.metrics.broker_errors.inc()
                self.last_error = f"{type(exc).__name__}: {exc}"
            else:
                self.last_error = "; ".join(refused[:3]) or None
                if refused:
                    self.metrics.broker_errors.inc()
            self.cycles += 1
            self.metrics.broker_cycles.inc()
            self.snapshot(observed)
            return observed

    def snapshot(self, observed: Observed | None = None) -> None:
        with self.lock:
            observed = observed or self.observe()
            extra = self.extras() if self.extras else Extras()
            for latency in extra.prompt_latencies:
                self.metrics.prompt_latency.observe(latency)
            snap = summarise(self.spec, observed, prompt_latency_p95=extra.prompt_latency_p95,
                             prompt_within_objective=extra.prompt_within_objective,
                             notebook_users=extra.notebook_users)
            self.history.append(snap)
            self.metrics.observe_snapshot(snap)

    def record(self, action: Action, at: float) -> None:
        self.recent.appendleft(describe(action, at))
        self.actions_total += 1
        self.metrics.broker_actions.labels(action.kind).inc()

    def permission_for(self, action: Action) -> Permission:
        return PERMISSION_OF[type(action)]

    def execute(self, session: Session, action: Action, now: float) -> None:
        """Role check, journal, apply — in the caller's transaction. The journal entry is written first: if
        the backend then refuses, the exception rolls it back with everything else."""
        require(session, action.actor, self.permission_for(action))
        if self.apply is None:
            raise Conflict(f"the {self.backend_name} backend is read-only here", where="broker",
                           fix="run the procedure where the backend accepts actions")
        record(session, actor=action.actor, action=f"broker.{action.kind}", target=action_target(action),
               reason=action.reason, before=None, after=plain(action))
        self.apply(action)

    def apply_manual(self, session: Session, action: Action) -> None:
        """A BCS procedure run by a person, between two broker cycles."""
        with self.lock:
            now = self.observe().now
            self.execute(session, action, now)
            self.record(action, now)
            self.snapshot()

    def exclusive(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` between two broker cycles (manual procedures, reads that need a consistent backend)."""
        with self.lock:
            return fn()

    def status(self) -> dict[str, Any]:
        return {"backend": self.backend_name, "running": self.running, "cycles": self.cycles,
                "actions_total": self.actions_total, "last_error": self.last_error,
                "sim_seconds_per_cycle": self.sim_seconds_per_cycle if self.advance else None,
                "wall_seconds_per_cycle": self.wall_seconds_per_cycle,
                "finished": bool(self.finished and self.finished())}

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

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            if self.finished is not None and self.finished():
                self._stop.wait(self.wall_seconds_per_cycle)
                continue
            try:
                self.step()
            except Exception as exc:  # observe/advance failed (backend unreachable): report, keep trying
                self.metrics.broker_errors.inc()
                self.last_error = f"{type(exc).__name__}: {exc}"
            self._stop.wait(max(0.0, self.wall_seconds_per_cycle - (time.monotonic() - started)))
