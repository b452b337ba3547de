"""The broker's policy: ``decide(spec, observed) -> [Action]``, pure and deterministic.

How a decision is made (seed §7.1, BCS 1–5):

1. **Targets.** Shares are of the batch pool's own capacity ``B`` (cores of the standalone batch-only
   startds that are up). A pool with work (queued or running jobs, or the night's pre-warm) is promised
   ``G = floor(B·guaranteed_share)``; no pool ever holds more than ``M = ceil(B·max_share)`` cores, lent
   Kubernetes capacity included. Each pool's *need* is its running + idle cores (at least the pre-warm
   cores through the night for the pre-warmed pool), capped at ``M``. Targets ``T`` over the standalone
   capacity: first every pool with work gets its guarantee, then the rest goes to needs in priority order.
   ``T`` depends on the spec and demand only, never on where startds are now, which is what makes deciding
   again on the result a no-op.
2. **Relabel (BCS 1, 2).** A pool below its guarantee takes startds at once (cooldown and hysteresis do not
   delay a promise). A pool short of its target by at least ``hysteresis`` of a startd takes one from a pool
   above its target — lowest priority first, idle startds first, none that moved within the cooldown.
   Relabelling lets running jobs of the old pool finish (``take_away: drain``) or evicts them after the old
   pool's grace period (``take_away: vacate``).
3. **Borrow from Kubernetes (BCS 4, 5).** What a lending pool (default: pools with a latency objective)
   still needs beyond its standalone target is borrowed from the commons: HTCondor worker pods on workers
   with free cores (BCS 4), or whole workers drained and given to HTCondor (BCS 5). Notebooks keep
   ``notebook_headroom_cores`` plus whatever spawns are waiting.
4. **Give back (BCS 3, reverse of 5).** Borrowed startds beyond the need, or needed by waiting notebook
   spawns, are drained first (``DrainStartd``) and deleted or returned once idle (or after the pool's grace
   period when it vacates).

At most ``max_moves_per_cycle`` actions are returned, the most urgent first (notebook reclaims and
surplus give-backs, guarantees, finishing drains, demand, then borrowing).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from enclave.broker.naming import pod_names
from enclave.broker.night import Night, night_at
from enclave.domain.capacity import (
    Action,
    DeletePods,
    DeployPods,
    DrainNode,
    DrainStartd,
    Node,
    NodeState,
    Observed,
    PendingSpawn,
    PoolDemand,
    Relabel,
    ReturnNode,
    StartdKind,
    StartHTCondor,
)
from enclave.domain.capacity import Startd as StartdT
from enclave.errors import Problem, SpecError
from enclave.spec.models import Drain, EnclaveSpec, LendMode, NodeRole

BROKER_ACTOR = "enclave-broker"
"""The account the broker acts as; it must hold htcondor-admin and k8s-service-admin."""

_EPS = 1e-9
_UNKNOWN_PRIORITY = -1


@dataclass
class PoolState:
    """One pool as the broker sees it in a cycle (also what ``enclave broker plan`` prints)."""

    name: str
    priority: int
    guaranteed: int
    maximum: int
    has_work: bool
    need: int
    target: int
    """Standalone cores this pool should hold."""
    lend: int
    """Kubernetes cores it should borrow on top of ``target``."""
    standalone: int = 0
    lent: int = 0
    prewarm: bool = False


@dataclass
class Plan:
    actions: list[Action]
    pools: dict[str, PoolState]
    night: Night | None
    standalone_cores: int
    capped: bool = False
    """True when the move limit cut the decision short: deciding again will continue the work."""
    notes: list[str] = field(default_factory=list)


def decide(spec: EnclaveSpec, observed: Observed, actor: str = BROKER_ACTOR) -> list[Action]:
    """The actions to take now. Pure: same spec and observation, same actions."""
    return plan(spec, observed, actor).actions


def validate(spec: EnclaveSpec) -> None:
    """Refuse a broker section that names pools the spec does not define."""
    b = spec.broker
    problems = [
        Problem(where=f"broker.lend_to[{i}]", what=f"pool {p!r} is not defined",
                fix=f"use one of: {', '.join(spec.pools)}")
        for i, p in enumerate(b.lend_to or []) if p not in spec.pools
    ]
    if spec.cores(NodeRole.BATCH_ONLY) == 0:
        # Shares are of the batch-only cores: with none, every pool's maximum is 0 and each HTCondor worker pod
        # would be given back as surplus. Refuse rather than take the batch system apart.
        problems.append(Problem(where="cluster.node_groups", what="no batch-only node group: the broker shares out "
                                "batch-only capacity and would give back every HTCondor worker pod",
                                fix="add a batch-only node group, or run HTCondor in static pods without the broker"))
    if b.prewarm_pool is not None and b.prewarm_pool not in spec.pools:
        problems.append(Problem(where="broker.prewarm_pool", what=f"pool {b.prewarm_pool!r} is not defined",
                                fix=f"use one of: {', '.join(spec.pools)}"))
    if problems:
        raise SpecError(problems)


def lending_pools(spec: EnclaveSpec) -> list[str]:
    if spec.broker.lend_to is not None:
        return list(spec.broker.lend_to)
    return [n for n, p in spec.pools.items() if p.latency_objective is not None]


def prewarm_pool(spec: EnclaveSpec) -> str | None:
    return spec.prewarmed_pool()


def current_night(spec: EnclaveSpec, now: float) -> Night | None:
    site = spec.cluster.site
    if site is None or prewarm_pool(spec) is None:
        return None
    return night_at(site, now, spec.broker.twilight_altitude_deg)


def _live(observed: Observed) -> tuple[dict[str, Node], list[StartdT]]:
    nodes = {n.name: n for n in observed.nodes}
    up = [s for s in observed.startds
          if not (s.node in nodes and nodes[s.node].state == NodeState.DOWN)]
    return nodes, up


def pool_states(spec: EnclaveSpec, observed: Observed, night: Night | None) -> tuple[dict[str, PoolState], int]:
    """Guarantees, maxima, needs and targets of every pool; the standalone capacity they are shares of."""
    nodes, startds = _live(observed)
    base = sum(s.cores for s in startds if s.kind == StartdKind.STANDALONE and not s.draining)
    warm = prewarm_pool(spec)
    warm_now = night is not None and night.contains(observed.now, spec.broker.prewarm_lead_seconds)
    pools: dict[str, PoolState] = {}
    for name, p in spec.pools.items():
        d = observed.demand.get(name, PoolDemand())
        g = math.floor(base * p.guaranteed_share + _EPS)
        m = max(g, math.ceil(base * p.max_share - _EPS))
        need = d.running_cores + d.idle_cores
        prewarm = warm_now and name == warm and not observing_done(spec, d, night, observed.now)
        if prewarm:
            # The night's visits do not shrink when batch nodes fail: the default is the guarantee on the spec's
            # whole batch capacity, not on what is up now, and so is the cap, so that with batch nodes down
            # (or not yet reporting) the pool borrows what it lost instead of giving its pods back.
            full = spec.cores(NodeRole.BATCH_ONLY)
            g_full = math.floor(full * p.guaranteed_share + _EPS)
            need = max(need, g_full if spec.broker.prewarm_cores is None else spec.broker.prewarm_cores)
            m = max(m, math.ceil(full * p.max_share - _EPS))
        has_work = d.idle_jobs + d.running_jobs > 0 or need > 0
        pools[name] = PoolState(name=name, priority=p.priority, guaranteed=g, maximum=m, has_work=has_work,
                                need=min(need, m), target=0, lend=0, prewarm=prewarm)
    # Pools the spec no longer defines (a label left behind) get nothing: their startds are free to take.
    for s in startds:
        if s.pool not in pools:
            pools[s.pool] = PoolState(name=s.pool, priority=_UNKNOWN_PRIORITY, guaranteed=0, maximum=0,
                                      has_work=False, need=0, target=0, lend=0)
    for s in startds:
        if s.draining:
            continue
        if s.kind == StartdKind.STANDALONE:
            pools[s.pool].standalone += s.cores
        else:
            pools[s.pool].lent += s.cores

    lenders = set(lending_pools(spec))
    # Seed §7.1, BCS 4: through the night the pre-warmed pool takes what it needs from idle commons
    # capacity first (notebook load is low at night), so the batch-only nodes keep running the backlog.
    cover: dict[str, int] = {}
    if warm is not None and warm in pools and pools[warm].prewarm and warm in lenders \
            and spec.broker.lend_mode == LendMode.PODS:
        cover[warm] = min(pools[warm].need, lendable_pod_cores(spec, observed, warm))
    free = base
    order = sorted(pools.values(), key=lambda ps: (-ps.priority, ps.name))
    for ps in order:
        if ps.has_work:
            ps.target = min(max(0, ps.guaranteed - cover.get(ps.name, 0)), free)
            free -= ps.target
    for ps in order:
        extra = max(0, min(ps.need - cover.get(ps.name, 0) - ps.target, free))
        ps.target += extra
        free -= extra
    for ps in order:
        if ps.name in lenders:
            ps.lend = max(0, ps.need - ps.target)
    del nodes
    return pools, base


def pending_notebook_cores(observed: Observed) -> float:
    """Cores waiting notebook spawns need. Told spawn by spawn, one larger than every worker is left out:
    no pod the broker gives back would place it, so it must not pull capacity back cycle after cycle."""
    if not observed.notebook_spawns:
        return observed.notebook_pending_cores
    workers = [n for n in observed.nodes if n.role == NodeRole.WORKER and n.state != NodeState.DOWN]
    return sum(sp.cpu for sp in observed.notebook_spawns
               if any(n.cores >= sp.cpu - _EPS and n.memory_mib >= sp.memory_mib for n in workers))


def observing_done(spec: EnclaveSpec, d: PoolDemand, night: Night | None, now: float) -> bool:
    """Whether tonight's visits are over: the pool had work submitted since evening twilight, none is left,
    and nothing new came for ``prewarm_quiet_seconds``. Capacity then goes back after the last visit instead of
    at morning twilight; a new submission (clouds clearing) makes the pool pre-warmed again."""
    b = spec.broker
    if night is None or d.newest_submit is None or d.idle_jobs + d.running_jobs > 0:
        return False
    # Since evening twilight: a test job in the lead window is not the night's first visit.
    return d.newest_submit >= night.start and now - d.newest_submit >= b.prewarm_quiet_seconds


def lendable_pod_cores(spec: EnclaveSpec, observed: Observed, pool: str) -> int:
    """Cores of HTCondor worker pods ``pool`` could hold in the commons now: what its own pods hold plus what
    still fits next to notebooks, services and other pools' pods, keeping the notebook reserve and the
    lending cap. Its own pods count as lendable, so the figure does not change as the broker deploys or drains
    them (deciding again on the result stays a no-op)."""
    b = spec.broker
    _, startds = _live(observed)
    workers = [n for n in observed.nodes if n.role == NodeRole.WORKER]
    cores_on: dict[str, int] = {}
    mem_on: dict[str, int] = {}
    other_lent = 0
    lenders = set(lending_pools(spec))
    for s in startds:
        # Its own pods count as lendable even while draining: a pod this decision drains as surplus must not
        # shrink the figure for the next decision (the drain's jobs finish within the cycle or two).
        if s.kind == StartdKind.STANDALONE or s.pool == pool:
            continue
        # Pods this decision removes anyway (idle drained ones; those of pools that may not borrow, once out
        # of cooldown) leave room for this pool now, so the figure is the same before and after removing them.
        if s.kind == StartdKind.POD and _removed_now(spec, observed, s, lenders):
            continue
        # A pool that may not borrow gives back every pod out of cooldown this decision (drained if busy):
        # it no longer counts against the lending cap, though it still takes room on its worker.
        given_back = s.pool not in lenders and observed.now - s.since >= b.cooldown_seconds
        if not s.draining and not given_back:
            other_lent += s.cores
        if s.kind == StartdKind.POD:
            cores_on[s.node] = cores_on.get(s.node, 0) + s.cores
            mem_on[s.node] = mem_on.get(s.node, 0) + s.memory_mib
    ready = [n for n in workers if n.state == NodeState.READY]
    free = (sum(n.cores - n.k8s_cores_requested - cores_on.get(n.name, 0) for n in ready)
            - sum(n.k8s_cores_requested for n in workers if n.state == NodeState.DRAINING))
    reserve = b.notebook_headroom_cores + pending_notebook_cores(observed)
    fit = sum(_pods_that_fit(n, cores_on.get(n.name, 0), mem_on.get(n.name, 0), b.pod_cores, b.pod_memory_mib)
              for n in ready)
    room = b.max_lend_share * sum(n.cores for n in workers) - other_lent
    pods = min(fit, math.floor((free - reserve + _EPS) / b.pod_cores), math.floor((room + _EPS) / b.pod_cores))
    return max(0, pods) * b.pod_cores


def _removed_now(spec: EnclaveSpec, observed: Observed, s: StartdT, lenders: set[str]) -> bool:
    """Whether ``plan`` deletes this pod in this very decision whatever else happens (the move limit aside)."""
    p = spec.pools.get(s.pool)
    grace = p.grace_seconds if p is not None and p.take_away == Drain.VACATE else None
    if s.draining:
        return s.busy_cores == 0 or (grace is not None and observed.now - s.since >= grace)
    if s.pool in lenders or observed.now - s.since < spec.broker.cooldown_seconds:
        return False
    return s.busy_cores == 0 or grace == 0


class _Budget:
    def __init__(self, limit: int) -> None:
        self.left = limit
        self.capped = False

    def take(self) -> bool:
        if self.left <= 0:
            self.capped = True
            return False
        self.left -= 1
        return True


def plan(spec: EnclaveSpec, observed: Observed, actor: str = BROKER_ACTOR) -> Plan:
    """Decide, and explain: the pool figures behind the actions and whether the move limit was reached."""
    validate(spec)
    b = spec.broker
    night = current_night(spec, observed.now)
    pools, base = pool_states(spec, observed, night)
    nodes, startds = _live(observed)
    budget = _Budget(b.max_moves_per_cycle)
    actions: list[Action] = []
    moved: set[str] = set()

    def cool(since: float) -> bool:
        return observed.now - since >= b.cooldown_seconds

    def vacate_after(pool: str) -> float | None:
        p = spec.pools.get(pool)
        return p.grace_seconds if p is not None and p.take_away == Drain.VACATE else None

    # --- 1+2. Relabel standalone startds toward the targets. ---------------------------------------
    standalone = [s for s in startds if s.kind == StartdKind.STANDALONE and not s.draining]
    # Per donor pool, idle startds first; a second list holds only those out of cooldown. Cursors skip the
    # moved prefix, so a cycle with thousands of moves stays linear.
    by_pool: dict[tuple[str, bool], list[StartdT]] = {}
    for s in sorted(standalone, key=lambda s: (s.busy_cores, s.name)):
        by_pool.setdefault((s.pool, True), []).append(s)
        if cool(s.since):
            by_pool.setdefault((s.pool, False), []).append(s)
    cursor: dict[tuple[str, bool], int] = {}
    receivers = sorted(pools.values(), key=lambda ps: (-ps.priority, ps.name))
    donors_order = sorted(pools.values(), key=lambda ps: (ps.priority, ps.name))

    def take_one(dst: PoolState, *, promise: bool, overshoot: bool = True) -> bool:
        for src in donors_order:
            if src is dst or src.standalone <= src.target:
                continue
            key = (src.name, promise)
            candidates = by_pool.get(key, [])
            start = cursor.get(key, 0)
            while start < len(candidates) and candidates[start].name in moved:
                start += 1
            cursor[key] = start
            for s in itertools.islice(candidates, start, None):
                if s.name in moved:
                    continue
                # A promise may take a donor below its target, never below its own guarantee.
                keep = (src.guaranteed if src.has_work else 0) if promise else src.target
                if src.standalone - s.cores < keep:
                    continue
                if dst.standalone + dst.lent + s.cores > dst.maximum:
                    continue
                if not promise and dst.target - dst.standalone < b.hysteresis * s.cores - _EPS:
                    continue
                # Hysteresis may carry a pool past its target (second pass only, once every pool has had its
                # moves within target), and not while another is short of its promise: that startd could be
                # the one the other pool needs.
                if not promise and dst.standalone + s.cores > dst.target and (not overshoot or any(
                        p.has_work and p.standalone < min(p.guaranteed, p.target) for p in pools.values())):
                    continue
                if not budget.take():
                    return False
                why = (f"{dst.name} below its guarantee ({dst.standalone} < {dst.guaranteed} cores)" if promise
                       else f"{dst.name} short of its target ({dst.standalone} of {dst.target} cores)")
                bcs = "BCS 1" if dst.priority > src.priority else "BCS 2"
                actions.append(Relabel(actor=actor, reason=f"{bcs}: {why}; {src.name} holds {src.standalone} "
                                       f"for a target of {src.target}", startd=s.name, from_pool=src.name,
                                       to_pool=dst.name, vacate_after_seconds=vacate_after(src.name)))
                moved.add(s.name)
                src.standalone -= s.cores
                dst.standalone += s.cores
                return True
        return False

    # --- 4a. Notebooks waiting for room take borrowed capacity back first. ---------------------------
    lent = [s for s in startds if s.kind != StartdKind.STANDALONE]
    workers = [n for n in observed.nodes if n.role == NodeRole.WORKER]
    pod_cores_on: dict[str, int] = {}
    pod_mem_on: dict[str, int] = {}
    for s in lent:
        if s.kind == StartdKind.POD:
            pod_cores_on[s.node] = pod_cores_on.get(s.node, 0) + s.cores
            pod_mem_on[s.node] = pod_mem_on.get(s.node, 0) + s.memory_mib

    # Free commons cores: what ready workers have left, less what pods on draining workers still need
    # elsewhere once evicted. Kept up to date below instead of recounted.
    free_k8s = (sum(n.cores - n.k8s_cores_requested - pod_cores_on.get(n.name, 0)
                    for n in workers if n.state == NodeState.READY)
                - sum(n.k8s_cores_requested for n in workers if n.state == NodeState.DRAINING))
    pending = pending_notebook_cores(observed)
    reserve = b.notebook_headroom_cores + pending
    # Borrowed startds already draining come back to the commons soon: count them as on their way.
    returning = sum(s.cores for s in lent if s.draining)

    def short() -> float:
        """Cores waiting notebooks (and the headroom) lack once what is on its way back has come back."""
        return reserve - free_k8s - returning

    ready = {n.name for n in workers if n.state == NodeState.READY}

    def remove(s: StartdT, why: str) -> None:
        """Delete a worker pod or return a node now; a deleted pod's room is free for this cycle's plans."""
        nonlocal free_k8s, returning
        actions.append(_remove(s, actor, why))
        if s.draining:
            returning -= s.cores
        if s.kind == StartdKind.POD:
            pod_cores_on[s.node] = pod_cores_on.get(s.node, 0) - s.cores
            pod_mem_on[s.node] = pod_mem_on.get(s.node, 0) - s.memory_mib
            if s.node in ready:
                free_k8s += s.cores
        else:
            free_k8s += s.cores  # the node is back in the commons, empty

    def release(s: StartdT, why: str) -> bool:
        """Start giving a borrowed startd back: drain it, or remove it at once if nothing runs there."""
        nonlocal returning
        if s.name in moved or not budget.take():
            return False
        moved.add(s.name)
        if not s.draining:
            pools[s.pool].lent -= s.cores
        if s.busy_cores == 0:
            remove(s, f"{why}; no job runs there")
        elif vacate_after(s.pool) == 0:
            remove(s, f"{why}; {s.pool} vacates at once")
        else:
            returning += s.cores
            actions.append(DrainStartd(actor=actor, reason=f"{why}; let its {s.busy_cores} busy cores finish",
                                       startd=s.name, vacate_after_seconds=vacate_after(s.pool)))
        return True

    prio = {n: ps.priority for n, ps in pools.items()}
    if short() > _EPS:
        for s in sorted((s for s in lent if not s.draining and s.name not in moved),
                        key=lambda s: (prio.get(s.pool, _UNKNOWN_PRIORITY), s.busy_cores, s.name)):
            if short() <= _EPS:
                break
            release(s, f"notebook spawns wait for {pending:g} cores "
                       f"in the commons")

    # Borrowed startds beyond what their pool should borrow go back (BCS 3); done before the promises so a
    # pod about to leave does not count against a pool's maximum.
    for ps in receivers:
        surplus = ps.lent - ps.lend
        for s in sorted((s for s in lent if s.pool == ps.name and not s.draining and s.name not in moved),
                        key=lambda s: (s.busy_cores, -s.cores, s.name)):
            if surplus < s.cores or not cool(s.since):
                continue
            release(s, f"{ps.name} needs {ps.lend} borrowed cores and holds {ps.lent}")
            surplus -= s.cores

    # --- 4c. Room for each waiting notebook spawn, held from the borrowing below. ----------------------
    # After the other give-backs, so the room it sees is the room deciding again would see (drained pods
    # finishing below already count as room), and before the promises, which count borrowed cores.
    held_cores: dict[str, float] = {}
    held_mem: dict[str, int] = {}
    if observed.notebook_spawns:
        _room_for_spawns(observed, workers, [s for s in lent if s.name not in moved], prio, held_cores, held_mem,
                         release)

    for ps in receivers:
        while ps.has_work and ps.standalone < min(ps.guaranteed, ps.target) and take_one(ps, promise=True):
            pass

    # --- 4b. Finish drains: remove borrowed startds that are idle or past their pool's grace period. --
    for s in sorted((s for s in lent if s.draining), key=lambda s: s.name):
        grace = vacate_after(s.pool)
        overdue = grace is not None and observed.now - s.since >= grace
        if (s.busy_cores == 0 or overdue) and s.name not in moved and budget.take():
            moved.add(s.name)
            why = "drained" if s.busy_cores == 0 else f"grace period of {grace:g} s is over, vacating"
            remove(s, f"{s.name} {why}")

    # --- 2 (demand). Relabel toward targets, with hysteresis and cooldown. --------------------------
    for ps in receivers:
        while ps.has_work and ps.standalone < ps.target and take_one(ps, promise=False, overshoot=False):
            pass
    for ps in receivers:
        while ps.has_work and ps.standalone < ps.target and take_one(ps, promise=False):
            pass

    # --- 3/4. Borrow what lending pools still need; give back what they no longer need. --------------
    # Startds given back above (drained or removed) no longer count against the lending cap.
    room = b.max_lend_share * sum(n.cores for n in workers) - sum(s.cores for s in lent
                                                                 if not s.draining and s.name not in moved)
    if b.lend_mode == LendMode.NODES:
        hosting = {s.node for s in lent}
        room -= sum(n.cores for n in workers if n.state == NodeState.DRAINING
                    or (n.state == NodeState.HTCONDOR and n.name not in hosting))
    existing = {s.name for s in startds}
    in_flight = _in_flight_nodes(workers, lent)

    def _lend_nodes(lend: bool) -> None:
        """BCS 5: claim the workers already on their way, give back the rest, then drain more if needed.
        With ``lend`` False (pods mode) it only gives back workers a previous configuration took."""
        nonlocal free_k8s
        lacking: dict[str, int] = {}
        claim_of: dict[str, PoolState] = {}
        for ps in receivers:
            if ps.lend <= 0 or not lend:
                continue
            want = min(ps.lend - ps.lent, ps.need - ps.standalone - ps.lent)
            coming = 0
            for node in in_flight:
                if want <= 0 or want < b.hysteresis * node.cores - _EPS or node.name in claim_of:
                    continue
                if ps.standalone + ps.lent + coming + node.cores > ps.maximum:
                    continue
                claim_of[node.name] = ps
                coming += node.cores
                want -= node.cores
            lacking[ps.name] = want

        def give_back(node: Node, why: str) -> None:
            nonlocal free_k8s
            moved.add(node.name)
            actions.append(ReturnNode(actor=actor, reason=why, node=node.name))
            free_k8s += node.cores  # back in the commons; its evicted pods no longer wait for room

        # Workers taken for batch that no pool needs any more go back (also after a broker restart).
        for node in in_flight:
            if node.name not in claim_of and node.name not in moved and cool(node.since) and budget.take():
                give_back(node, f"{node.name} was taken for batch but no pool needs it now")
        # Waiting notebooks (or pods evicted with nowhere to go) come first: return any worker on its way to
        # batch, cooldown or not, unclaimed ones first, then those of the lowest-priority pools.
        for node in sorted((n for n in in_flight if n.name not in moved),
                           key=lambda n: (n.name in claim_of,
                                          claim_of[n.name].priority if n.name in claim_of else 0, n.name)):
            if short() <= _EPS:
                break
            if budget.take():
                owner = claim_of.pop(node.name, None)
                if owner is not None:
                    lacking[owner.name] += node.cores
                give_back(node, f"{node.name} goes back: pods in the commons wait for "
                                f"{reserve:g} cores of room")
        if short() > _EPS or not lend:
            return
        for node in in_flight:
            owner = claim_of.get(node.name)
            if owner is None or node.name in moved:
                continue
            if node.state == NodeState.DRAINING and node.k8s_cores_requested <= _EPS and budget.take():
                moved.add(node.name)
                actions.append(StartHTCondor(actor=actor, reason=f"BCS 5: {node.name} is drained; {owner.name} "
                                             f"borrows {owner.lend} cores beyond its {owner.target} standalone",
                                             node=node.name, pool=owner.name))
        room_left = room
        for ps in receivers:
            want = lacking.get(ps.name, 0)
            coming = sum(n.cores for n in in_flight if claim_of.get(n.name) is ps)
            candidates = sorted((n for n in workers if n.state == NodeState.READY and cool(n.since)
                                 and pod_cores_on.get(n.name, 0) == 0 and n.name not in moved),
                                key=lambda n: (n.k8s_cores_requested, n.name))
            for node in candidates:
                if want <= 0 or want < b.hysteresis * node.cores - _EPS or room_left < node.cores:
                    break
                if ps.standalone + ps.lent + coming + node.cores > ps.maximum:
                    continue
                # The node's pods move to the other workers; what is left must still hold the reserve.
                if free_k8s - node.cores < reserve - _EPS:
                    continue
                if not budget.take():
                    return
                moved.add(node.name)
                actions.append(DrainNode(actor=actor, reason=f"BCS 5: {ps.name} needs {want} more cores; "
                                         f"{node.name} has {node.k8s_cores_requested:g} cores of pods to move",
                                         node=node.name))
                free_k8s -= node.cores
                want -= node.cores
                coming += node.cores
                room_left -= node.cores

    for ps in receivers:
        if ps.lend <= 0:
            continue
        # Standalone cores held beyond the target (nobody else wanted them) also count toward the need.
        lacking = min(ps.lend - ps.lent, ps.need - ps.standalone - ps.lent)
        if b.lend_mode == LendMode.PODS:
            for node in sorted(workers, key=lambda n: (n.k8s_cores_requested + pod_cores_on.get(n.name, 0),
                                                       n.name)):
                if lacking <= 0 or lacking < b.hysteresis * b.pod_cores - _EPS or room < b.pod_cores:
                    break
                if node.state != NodeState.READY:
                    continue
                fits = _pods_that_fit(node, pod_cores_on.get(node.name, 0) + held_cores.get(node.name, 0),
                                      pod_mem_on.get(node.name, 0) + held_mem.get(node.name, 0),
                                      b.pod_cores, b.pod_memory_mib)
                under_max = (ps.maximum - ps.standalone - ps.lent) // b.pod_cores  # a cap is a cap
                fits = min(fits, math.ceil(lacking / b.pod_cores), int(room // b.pod_cores),
                           int(max(0.0, free_k8s - reserve) // b.pod_cores), under_max)
                if fits <= 0:
                    continue
                if not budget.take():
                    break
                names = pod_names(node.name, fits, existing)
                existing.update(names)
                actions.append(DeployPods(actor=actor, reason=f"BCS 4: {ps.name} needs {ps.lend} cores beyond "
                                          f"its {ps.target} standalone and holds {ps.lent} borrowed",
                                          node=node.name, pool=ps.name, pods=names, cores_per_pod=b.pod_cores,
                                          memory_mib_per_pod=b.pod_memory_mib))
                added = fits * b.pod_cores
                pod_cores_on[node.name] = pod_cores_on.get(node.name, 0) + added
                pod_mem_on[node.name] = pod_mem_on.get(node.name, 0) + fits * b.pod_memory_mib
                free_k8s -= added
                ps.lent += added
                lacking -= added
                room -= added
    _lend_nodes(b.lend_mode == LendMode.NODES)

    notes = []
    if night is not None:
        notes.append(f"night {night.start:.0f}–{night.end:.0f} (sun below {b.twilight_altitude_deg:g}°); "
                     f"pre-warm {'on' if any(p.prewarm for p in pools.values()) else 'off'}")
    return Plan(actions=actions, pools=pools, night=night, standalone_cores=base, capped=budget.capped,
                notes=notes)


def _room_for_spawns(observed: Observed, workers: list[Node], lent: list[StartdT], prio: dict[str, int],
                     held_cores: dict[str, float], held_mem: dict[str, int],
                     release: Callable[[StartdT, str], bool]) -> None:
    """Give each waiting notebook spawn room on one worker: a pod needs all of its request on a single node,
    so free cores scattered over the commons do not help it. ``lent`` leaves out what this decision already
    gives back. A spawn that fits nowhere, even counting the pods already on their way out, gets the worker
    where the fewest worker pods, then the fewest busy cores, must go (lowest-priority pool and least busy
    pods first there) and those pods are released. Largest spawns first; each one's room is held, so the next
    spawn and this cycle's pod deployments do not count on it."""
    ready = sorted((n for n in workers if n.state == NodeState.READY), key=lambda n: n.name)
    pods_on: dict[str, list[StartdT]] = {}
    used_c: dict[str, float] = {n.name: n.k8s_cores_requested for n in ready}
    used_m: dict[str, int] = {n.name: n.k8s_memory_requested_mib for n in ready}
    for s in lent:
        if s.kind != StartdKind.POD or s.node not in used_c or s.draining:
            continue  # a draining pod leaves soon: its room already counts as free for a spawn
        used_c[s.node] += s.cores
        used_m[s.node] += s.memory_mib
        pods_on.setdefault(s.node, []).append(s)

    def room(n: Node) -> tuple[float, int]:
        return (n.cores - used_c[n.name] - held_cores.get(n.name, 0.0),
                n.memory_mib - used_m[n.name] - held_mem.get(n.name, 0))

    def hold(n: Node, sp: PendingSpawn) -> None:
        held_cores[n.name] = held_cores.get(n.name, 0.0) + sp.cpu
        held_mem[n.name] = held_mem.get(n.name, 0) + sp.memory_mib

    for sp in sorted(observed.notebook_spawns, key=lambda sp: (-sp.cpu, -sp.memory_mib)):
        # The first worker by name where it fits: the broker's own deployments only ever shrink other
        # workers' room, so deciding again picks the same one (the scheduler may still place it elsewhere).
        fits = next((n for n in ready if room(n)[0] >= sp.cpu - _EPS and room(n)[1] >= sp.memory_mib), None)
        if fits is not None:
            hold(fits, sp)
            continue
        best: tuple[tuple[int, int], Node, list[StartdT]] | None = None
        for n in ready:
            c, m = room(n)
            take: list[StartdT] = []
            for s in sorted(pods_on.get(n.name, []), key=lambda s: (prio.get(s.pool, _UNKNOWN_PRIORITY),
                                                                      s.busy_cores, s.name)):
                if c >= sp.cpu - _EPS and m >= sp.memory_mib:
                    break
                take.append(s)
                c += s.cores
                m += s.memory_mib
            cost = (len(take), sum(s.busy_cores for s in take))
            if take and c >= sp.cpu - _EPS and m >= sp.memory_mib and (best is None or cost < best[0]):
                best = (cost, n, take)
        if best is None:
            continue  # no worker could hold it even without worker pods: not the broker's to solve
        _, node, take = best
        for s in take:
            if not release(s, f"a notebook spawn of {sp.cpu:g} cores / {sp.memory_mib} MiB waits and fits on "
                              f"{node.name} only without this pod"):
                return  # the move limit: the next cycle goes on
            used_c[node.name] -= s.cores
            used_m[node.name] -= s.memory_mib
            pods_on[node.name].remove(s)
        hold(node, sp)


def _remove(s: StartdT, actor: str, reason: str) -> Action:
    if s.kind == StartdKind.POD:
        return DeletePods(actor=actor, reason=f"BCS 3: {reason}", pods=(s.name,))
    return ReturnNode(actor=actor, reason=f"reverse of BCS 5: {reason}", node=s.node)


def _in_flight_nodes(workers: Iterable[Node], lent: Iterable[StartdT]) -> list[Node]:
    """Workers on their way to HTCondor: draining, or HTCondor started but no startd reported yet."""
    with_startd = {s.node for s in lent if s.kind == StartdKind.NODE}
    return sorted((n for n in workers if n.state == NodeState.DRAINING
                   or (n.state == NodeState.HTCONDOR and n.name not in with_startd)), key=lambda n: n.name)


def _pods_that_fit(node: Node, pod_cores_there: float, pod_mem: int, cores: int, memory_mib: int) -> int:
    by_cpu = (node.cores - node.k8s_cores_requested - pod_cores_there) // cores
    by_mem = (node.memory_mib - node.k8s_memory_requested_mib - pod_mem) // memory_mib
    return max(0, int(min(by_cpu, by_mem)))
