"""Prompt processing as long-lived Kubernetes service workers: the layout Rubin chose (issue 14 item 6).

The ``service`` policy lays HTCondor out as ``static`` does, except that prompt has no HTCondor capacity: its
guaranteed share goes to DRP (seed §7.1: idle nightly capacity goes to yearly processing), and prompt's visits are
served by a Knative Service of workers in the Kubernetes commons (settings, defaults and sources:
``enclave.twin.knative``). For each visit:

1. ``next_visit`` arrives ``next_visit_lead_s + exposure_s`` before readout ends (53 s by default) and is fanned
   out as one request per detector (DMTN-219). A request takes a ready worker with a free slot
   (``container_concurrency``) or waits in the activator's buffer, first come first served.
2. A worker that takes a request preloads (``preload_s``), then processes the detector once the image is read
   out: processing starts at max(readout, taken + preload) and lasts the same post-readout runtime the HTCondor
   jobs draw (``prompt.runtime``), so both layouts carry the same load. The worker is held from taking the
   request until the end.
3. Every ``tick_s`` the autoscaler (KPA) sets the number of workers from the concurrency it saw — requests held
   by workers plus those buffered — averaged over the stable window, or over the panic window while in panic
   (entered when that average reaches ``panic_threshold_pct`` of the target capacity of the ready workers, left
   after a stable window without; no scale-down meanwhile). target = container_concurrency × target_utilization;
   workers = ceil(concurrency / target) within [min_scale, max_scale], at most a 1/``max_scale_down_rate`` cut
   per tick. With no worker at all the activator's buffered requests size the first scale-up at once (scale
   from zero). A new worker is scheduled on the least-allocated commons worker with room (as notebooks are),
   pulls the image unless the node has it (``kubernetes:``), then starts (``startup_s``). Only idle workers
   are removed.

Simplifications, stated: requests are not retried or timed out; a worker on a node that fails is lost and its
request is buffered again at the front; the worker image is the spec's ``storage.image_size_gib``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from enclave.domain.capacity import NodeState
from enclave.spec.models import EnclaveSpec, NodeRole
from enclave.twin.layout import GroupQuotas
from enclave.twin.sim import EV_CALL, SimNode
from enclave.twin.sim import Sim as Engine
from enclave.twin.workloads import Arrival

IMAGE = "prompt-service"


@dataclass(eq=False)
class Worker:
    node: SimNode
    ready: bool = False
    held: list[Request] = field(default_factory=list)


@dataclass(eq=False)
class Request:
    visit: int
    detector: int
    arrived: float
    taken: float | None = None
    worker: Worker | None = None
    gen: int = 0
    """Bumped when the request is taken again (its worker was lost): an older end event is stale."""


def shifted_spec(spec: EnclaveSpec, pool: str = "prompt", to: str = "drp") -> EnclaveSpec:
    """The spec with ``pool``'s guaranteed share moved to ``to``: HTCondor's layout when ``pool`` is a service."""
    if pool not in spec.pools or to not in spec.pools:
        return spec
    pools = dict(spec.pools)
    share = pools[pool].guaranteed_share
    pools[pool] = pools[pool].model_copy(update={"guaranteed_share": 0.0})
    pools[to] = pools[to].model_copy(update={"guaranteed_share": min(1.0, pools[to].guaranteed_share + share)})
    return spec.model_copy(update={"pools": pools})


class PromptService(GroupQuotas):
    """Prompt as a Knative-style service on the commons; HTCondor laid out as static's, under the same group quotas
    as the rendered central manager sets for every layout (``GroupQuotas`` with labelled slots). The quotas are
    the spec's shares, prompt's included, not ``shifted_spec``'s (a probe with the shifted shares moved DRP by
    0.4 jobs/h on one night)."""

    name = "service"
    labelled = True

    def __init__(self) -> None:
        super().__init__()
        self.workers: list[Worker] = []
        self.idle: deque[Worker] = deque()
        self.buffer: deque[Request] = deque()
        self.requests: dict[int, list[Request]] = {}
        self.runtimes: dict[int, list[float]] = {}
        self.readout: list[float] = []
        self.samples_stable: deque[float] = deque()
        self.samples_panic: deque[float] = deque()
        self.panic_until = -math.inf
        self.last_traffic = -math.inf
        self.created = 0
        self.peak_workers = 0
        self.peak_buffer = 0
        self.unplaced_peak = 0
        self.worker_s = 0.0
        self._t = 0.0
        self.waits: list[float] = []

    # ------------------------------------------------------------------ set-up

    def setup(self, sim: Engine) -> None:
        real = sim.spec
        sim.spec = shifted_spec(real)  # prompt's HTCondor share goes to DRP; only the layout sees this spec
        try:
            super().setup(sim)
        finally:
            sim.spec = real
        self.kn = sim.sc.knative
        self.sim = sim
        sim.divert = self._readout
        self.readout = list(sim.wl.visit_readout)
        lead = self.kn.next_visit_lead_s + self.kn.exposure_s
        for v, r in enumerate(self.readout):
            sim.q.push(max(0.0, r - lead), EV_CALL, lambda v=v: self._next_visit(v))
        if sim.sc.kubernetes.images_cached_at_start:
            for n in sim.nodes.values():
                if n.role == NodeRole.WORKER:
                    n.images[IMAGE] = 0.0
        sim.q.push(0.0, EV_CALL, self._tick)
        for _ in range(self.kn.min_scale):
            self._create()

    @property
    def target(self) -> float:
        return self.kn.container_concurrency * self.kn.target_utilization

    # ------------------------------------------------------------------ requests

    def _next_visit(self, v: int) -> None:
        now = self.sim.now
        reqs = [Request(v, d, now) for d in range(self.sim.spec_detectors())]
        self.requests[v] = reqs
        self.last_traffic = now
        self.buffer.extend(reqs)
        self._dispatch()
        if not self.workers:  # scale from zero: the activator's buffer sizes the first workers at once
            self._scale_to(self._bounded(math.ceil(len(self.buffer) / self.target)))
        self.peak_buffer = max(self.peak_buffer, len(self.buffer))

    def _readout(self, arrival: Arrival) -> None:
        """The image is read out: the detectors' runtimes are known; workers already holding them can start."""
        v = arrival.visit
        self.runtimes[v] = arrival.runtimes
        self.sim.visit_min_latency[v] = max(arrival.runtimes)
        for req in self.requests.get(v, []):
            if req.taken is not None:
                self._schedule_end(req)

    def _dispatch(self) -> None:
        while self.buffer and self.idle:
            w = self.idle[0]
            req = self.buffer.popleft()
            req.taken, req.worker = self.sim.now, w
            req.gen += 1
            w.held.append(req)
            self.waits.append(self.sim.now - req.arrived)
            if len(w.held) >= self.kn.container_concurrency:
                self.idle.popleft()
            if req.visit in self.runtimes:
                self._schedule_end(req)

    def _schedule_end(self, req: Request) -> None:
        assert req.taken is not None
        start = max(self.readout[req.visit], req.taken + self.kn.preload_s)
        end = start + self.runtimes[req.visit][req.detector]
        gen = req.gen
        self.sim.q.push(end, EV_CALL, lambda: self._end(req, gen))

    def _end(self, req: Request, gen: int) -> None:
        if gen != req.gen or req.worker is None:
            return  # its worker was lost; the request was taken again
        sim = self.sim
        latency = sim.now - self.readout[req.visit]
        sim.prompt_latency.append(latency)
        sim.visit_left[req.visit] -= 1
        if sim.visit_left[req.visit] == 0:
            sim.visit_latency[req.visit] = latency
        w = req.worker
        req.worker = None
        w.held.remove(req)
        self.last_traffic = sim.now
        if len(w.held) == self.kn.container_concurrency - 1:
            self.idle.append(w)
        self._dispatch()

    # ------------------------------------------------------------------ the autoscaler

    def _tick(self) -> None:
        sim = self.sim
        self._lose_failed()
        held = sum(len(w.held) for w in self.workers)
        self._sample(held + len(self.buffer))
        self._scale_to(self._desired())
        self.peak_buffer = max(self.peak_buffer, len(self.buffer))
        if sim.now + self.kn.tick_s <= sim.horizon:
            sim.q.push(sim.now + self.kn.tick_s, EV_CALL, self._tick)

    def _sample(self, concurrency: float) -> None:
        kn = self.kn
        for samples, window in ((self.samples_stable, kn.stable_window_s),
                                (self.samples_panic, kn.stable_window_s * kn.panic_window_pct / 100)):
            samples.append(concurrency)
            while len(samples) > max(1, round(window / kn.tick_s)):
                samples.popleft()

    def _desired(self) -> int:
        stable = sum(self.samples_stable) / len(self.samples_stable)
        panic = sum(self.samples_panic) / len(self.samples_panic)
        ready = sum(1 for w in self.workers if w.ready)
        now = self.sim.now
        if panic > 0 and (ready == 0 or panic / (self.target * ready) >= self.kn.panic_threshold_pct / 100):
            self.panic_until = now + self.kn.stable_window_s
        total = len(self.workers)
        if now < self.panic_until:
            return self._bounded(max(total, math.ceil(panic / self.target)))
        want = math.ceil(stable / self.target)
        if want == 0 and now - self.last_traffic < self.kn.stable_window_s:
            want = 1  # the last worker goes only after a whole stable window without traffic
        # max-scale-down-rate: from N to no fewer than N / rate per tick, "but at least N to N-1".
        floor = min(total - 1, math.ceil(total / self.kn.max_scale_down_rate))
        return self._bounded(max(want, floor) if want < total else want)

    def _bounded(self, n: int) -> int:
        n = max(n, self.kn.min_scale)
        return min(n, self.kn.max_scale) if self.kn.max_scale else n

    def _scale_to(self, desired: int) -> None:
        self._integrate()
        missing = 0
        while len(self.workers) < desired:
            if not self._create():
                missing = desired - len(self.workers)
                break
        self.unplaced_peak = max(self.unplaced_peak, missing)
        excess = len(self.workers) - desired
        for w in [w for w in self.workers if not w.held][:max(0, excess)]:
            self._remove(w)
        if excess > 0:
            self.sim._retry_notebooks()  # room freed in the commons
        self.peak_workers = max(self.peak_workers, len(self.workers))

    # ------------------------------------------------------------------ workers as pods

    def _create(self) -> bool:
        sim, kn = self.sim, self.kn
        mem = int(kn.memory_gib * 1024)
        # kube-scheduler's LeastAllocated, as for notebooks: the node with the most free CPU that fits (the
        # simulator's index of free room, kept current by ``Sim._room_changed``; no scan of every node).
        index = sim.room.best(kn.cpu, mem)
        if index is None:
            return False
        best = sim.node_list[index]
        best.svc_cpu += kn.cpu
        best.svc_mem += mem
        sim._room_changed(best)
        w = Worker(best)
        self.workers.append(w)
        self.created += 1
        ready_at = sim.pod_ready_at(best, IMAGE) - sim.sc.layout.pod_startup_s + kn.startup_s
        sim.q.push(ready_at, EV_CALL, lambda: self._ready(w))
        return True

    def _ready(self, w: Worker) -> None:
        if w not in self.workers:
            return
        w.ready = True
        self.idle.append(w)
        self._dispatch()

    def _remove(self, w: Worker) -> None:
        self.workers.remove(w)
        if w in self.idle:
            self.idle.remove(w)
        w.node.svc_cpu -= self.kn.cpu
        w.node.svc_mem -= int(self.kn.memory_gib * 1024)
        self.sim._room_changed(w.node)

    def _lose_failed(self) -> None:
        """Workers on a node that is no longer ready are gone; what they held is buffered again at the front."""
        lost = [w for w in self.workers if w.node.state != NodeState.READY]
        if not lost:
            return
        self._integrate()
        for w in lost:
            for req in reversed(w.held):
                req.worker, req.taken = None, None
                req.gen += 1
                self.buffer.appendleft(req)
            w.held.clear()
            self._remove(w)

    def _integrate(self) -> None:
        now = self.sim.now
        self.worker_s += len(self.workers) * (now - self._t)
        self._t = now

    # ------------------------------------------------------------------ figures

    def metrics(self, sim: Engine) -> dict[str, Any]:
        self._integrate()
        waits = sorted(self.waits)
        return {"service": {
            "workers_created": self.created, "workers_peak": self.peak_workers,
            "workers_mean": round(self.worker_s / sim.horizon, 3) if sim.horizon else 0.0,
            "worker_core_hours": round(self.worker_s * self.kn.cpu / 3600, 3),
            "buffered_peak": self.peak_buffer, "unplaced_peak": self.unplaced_peak,
            "take_wait_p50_s": round(waits[len(waits) // 2], 3) if waits else None,
            "take_wait_max_s": round(waits[-1], 3) if waits else None,
        }}
