"""The broker loop of a running service: advance the backend clock, observe, decide, act, record.

The runner drives any ``enclave.broker.model.Backend`` — the twin (accelerated simulated clock, ``advance``
moves it on) or the live cluster (wall clock, ``advance`` is None) — through the broker's own ``Executor``,
so every action, the broker's and a person's alike, is role-checked and journaled in one transaction exactly
as ``enclave broker run`` and ``enclave batch move|add-pods|drain-node`` do. One lock serialises the loop and
manual procedures, so an administrator's BCS procedure never interleaves with a broker cycle.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from enclave.access.permissions import Permission, require
from enclave.api.metrics import Metrics
from enclave.api.snapshot import History, summarise
from enclave.broker.execute import Executor, Outcome, permissions
from enclave.broker.model import Action, Backend, Observed
from enclave.db import Database
from enclave.errors import EnclaveError
from enclave.spec.models import EnclaveSpec

T = TypeVar("T")


@dataclass(frozen=True)
class AppliedAction:
    at: float
    """Backend clock when it was applied."""
    kind: str
    target: str
    actor: str
    reason: str
    journal_seq: int | None = None


def action_target(action: Action) -> str:
    for name in ("startd", "node", "pods"):
        value = getattr(action, name, None)
        if isinstance(value, tuple):
            return ", ".join(value)
        if isinstance(value, str):
            return value
    return ""


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
    backend: Backend
    decide: Callable[[Observed], Sequence[Action]]
    """The broker's pure decision for an observed state."""
    db: Database
    metrics: Metrics
    history: History
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

    def __post_init__(self) -> None:
        self.executor = Executor(self.backend, self.db)

    def observe(self) -> Observed:
        return self.backend.observe()

    def step(self) -> Observed:
        """One cycle; safe to call from tests without the thread."""
        with self.lock:
            if self.advance is not None:
                self.advance(self.sim_seconds_per_cycle)
            observed = self.observe()
            refused: list[str] = []
            try:
                for action in self.decide(observed):
                    try:
                        # Each action in its own transaction, re-observed first: one refusal (a role
                        # missing, a node gone) leaves no trace and does not stop the others.
                        outcome = self.executor.apply(action)
                    except EnclaveError as error:
                        refused.append(f"{action.kind} {action_target(action)}: {error}")
                        continue
                    self._record(outcome, observed.now)
            except Exception as exc:  # a failed cycle is reported and retried, never kills the service
                self.metrics.broker_errors.inc()
                self.last_error = f"{type(exc).__name__}: {exc}"
            else:
                self.last_error = "; ".join(refused[:3]) or None
                if refused:
                    self.metrics.broker_errors.inc()
            self.cycles += 1
            self.metrics.broker_cycles.inc()
            self.snapshot()
            return observed

    def snapshot(self) -> None:
        with self.lock:
            observed = self.observe()
            extra = self.extras() if self.extras else Extras()
            for latency in extra.prompt_latencies:
                self.metrics.prompt_latency.observe(latency)
            snap = summarise(self.spec, observed, prompt_latency_p95=extra.prompt_latency_p95,
                             prompt_within_objective=extra.prompt_within_objective,
                             notebook_users=extra.notebook_users)
            self.history.append(snap)
            self.metrics.observe_snapshot(snap)

    def _record(self, outcome: Outcome, at: float) -> None:
        if not outcome.applied:
            return
        a = outcome.action
        self.recent.appendleft(AppliedAction(at=at, kind=a.kind, target=action_target(a), actor=a.actor,
                                             reason=a.reason, journal_seq=outcome.seq))
        self.actions_total += 1
        self.metrics.broker_actions.labels(a.kind).inc()

    @staticmethod
    def permissions_for(action: Action) -> list[Permission]:
        return [Permission(p) for p in permissions(action)]

    def apply_manual(self, action: Action) -> Outcome:
        """A BCS procedure run by a person, between two broker cycles, through the broker's executor.

        The role check comes first, before the executor looks at the backend: a caller without the role is
        refused even when the action happens to be in effect already (which the executor would skip)."""
        with self.db.session() as session:
            for permission in self.permissions_for(action):
                require(session, action.actor, permission)
        with self.lock:
            now = self.observe().now
            outcome = self.executor.apply(action)
            self._record(outcome, now)
            self.snapshot()
            return outcome

    def exclusive(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` between two broker cycles (reads that need a consistent backend)."""
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
