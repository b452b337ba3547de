"""``Census``: the observation as ``enclave.broker.decide.plan`` reads it, taken in one pass over its startds.

Why one pass: at 40,000 nodes a pass over the 35,000 startds costs 2–5 ms, most of it fetching each startd from
memory (three times that once their running jobs are reported, which spread them over more memory), and the
decision's phases made eight of them: the startds that are up, the standalone capacity, what each pool holds,
the borrowed ones, each pool's standalone ones, their names, the worker pods on each worker, the draining ones
(``bench.broker_decide``). Pure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from enclave.broker.naming import POD_PREFIX
from enclave.domain.capacity import Node, NodeState, Observed, StartdKind
from enclave.domain.capacity import Startd as StartdT
from enclave.spec.models import NodeRole

# Enum members read once: reading one off its class costs ~0.25 us, ~10 ms per pass over 40,000 nodes.
_STANDALONE, _POD, _WORKER = StartdKind.STANDALONE, StartdKind.POD, NodeRole.WORKER
_READY, _DRAINING, _DOWN = NodeState.READY, NodeState.DRAINING, NodeState.DOWN
# The strings from POD_PREFIX up to this one (its last character's successor in its place) are exactly those that
# start with it: two comparisons tell, where str.startswith's call cost four times as much (24,000 a decision).
_PAST_POD_NAMES = POD_PREFIX[:-1] + chr(ord(POD_PREFIX[-1]) + 1)


def down_nodes(nodes: Iterable[Node]) -> set[str]:
    """Names of the nodes that are down. A node listed twice is what its last entry says (the rule as a map of
    the nodes reads it); a startd on a node the observation does not list counts as up."""
    nodes = tuple(nodes)
    # A comprehension: on the slotted nodes, half the cost of ``_DOWN in map(attrgetter("state"), nodes)``.
    down = {n.name for n in nodes if n.state == _DOWN}
    if down:
        last = {n.name: n for n in nodes}
        down = {name for name in down if last[name].state == _DOWN}
    return down


def up_startds(observed: Observed) -> list[StartdT]:
    """The startds whose node is not down (``down_nodes``), in the observation's order."""
    return list(_up(observed))


def _up(observed: Observed) -> Sequence[StartdT]:
    """``up_startds``, without a copy of the observation's when none is down: a list of 35,000 startds costs
    more than its making, every garbage collection while the decision runs walks it (``bench.broker_decide``)."""
    down = down_nodes(observed.nodes)
    return [s for s in observed.startds if s.node not in down] if down else observed.startds


@dataclass
class Holding:
    """What a pool's startds that are up and not draining hold: cores standalone, borrowed, and borrowed whose
    startd has joined the pool (``Startd.ready``); and those startds, in the observation's order. The fields after
    the lists are told of them in the census's pass: a ``Holding`` made otherwise (a test's) leaves them empty,
    and only ``Census.of`` makes the ones the decision reads."""

    standalone: int = 0
    lent: int = 0
    ready_lent: int = 0
    standalone_startds: list[StartdT] = field(default_factory=list)
    lent_startds: list[StartdT] = field(default_factory=list)
    standalone_sizes: set[int] = field(default_factory=set)
    """The cores of its standalone startds, each size once: what a relabel may move is asked by size
    (``RelabelQueue.cores_of``), told here while each startd is at hand, not in a pass of its own."""
    lent_sizes: set[int] = field(default_factory=set)
    """The cores of its borrowed startds, each size once (``give_back_surplus``), told the same way."""
    lent_newest: float = -math.inf
    """The latest ``since`` of its borrowed startds (NaN if one is NaN): all of them are out of a cooldown once it is
    (``lent_all_cool``)."""
    idle_pods: list[StartdT] = field(default_factory=list)
    """Its borrowed worker pods where no job runs, in the observation's order (what ``decide._not_lending`` gives
    back of a pool that may not borrow when none is in the cooldown)."""

    def lent_all_cool(self, cool: Callable[[float], bool]) -> bool:
        """Whether every borrowed startd is out of the cooldown, by ``cool`` (``Cycle.cool``) on the latest ``since``:
        then the passes that look for those still in it need not be made. ``now - since`` falls as ``since`` rises (a
        float subtraction is monotonic), so what holds for the latest holds for all; a NaN ``since`` passes no
        test, and the latest is NaN then."""
        return cool(self.lent_newest)


@dataclass
class Census:
    up: Sequence[StartdT] = ()
    """The startds whose node is not down, in the observation's order."""
    lent: list[StartdT] = field(default_factory=list)
    """Those borrowed from the commons (worker pods and whole workers), in the same order."""
    holdings: dict[str, Holding] = field(default_factory=dict)
    """Per pool label, in the order first seen (draining startds too), what its startds hold."""
    workers: list[Node] = field(default_factory=list)
    """The observation's Kubernetes workers, whatever their state."""
    ready_workers: list[Node] = field(default_factory=list)
    """Those ready, in the same order: where pods may go, what the commons' free cores are counted over."""
    other_workers: list[Node] = field(default_factory=list)
    """The others (draining, given to HTCondor, down), in the same order."""
    draining_workers: list[Node] = field(default_factory=list)
    """Those draining: their pods still need room elsewhere."""
    worker_cores: int = 0
    """Cores of all the workers."""
    pod_cores: dict[str, int] = field(default_factory=dict)
    """Per worker, the cores of the HTCondor worker pods on it (draining ones too)."""
    pod_memory: dict[str, int] = field(default_factory=dict)
    """Per worker, their memory (MiB)."""
    draining: list[StartdT] = field(default_factory=list)
    """The borrowed startds that are draining, in the observation's order."""
    standalone_draining: list[StartdT] = field(default_factory=list)
    """The standalone startds that are draining (on their way out of batch: none of the pools' capacity)."""
    pod_like: list[str] = field(default_factory=list)
    """Names of the standalone startds (draining or not) named like a worker pod (``naming.POD_PREFIX``)."""
    starting: list[StartdT] = field(default_factory=list)
    """The borrowed startds not draining that have not joined their pool yet (``Startd.ready`` False), in the
    observation's order: ``decide.give_up_starts`` looks at these alone."""

    @cached_property
    def names(self) -> set[str]:
        """Names of the startds that are up which a new worker pod's could be: those of the borrowed ones, and of
        the standalone ones named like a worker pod (``naming.POD_PREFIX``). A new pod takes none of them; the
        other standalone names (node names, most of the startds) would only make the set a new name is looked up
        in three times larger (``bench.broker_decide``). The set is made when first asked for (``lend_pods``): a
        decision the move limit ends before it borrows never asks. The standalone names like a pod's are told in
        the census's pass, while each startd is at hand, by two comparisons (``_PAST_POD_NAMES``): a pass of its
        own, fetching 24,000 standalone startds from memory again, was a twentieth of a decision without a move
        limit, and ``str.startswith`` in the census's pass a tenth of the census."""
        return {s.name for s in self.lent}.union(self.pod_like)

    @cached_property
    def ready_names(self) -> list[str]:
        """The ready workers' names, in their order, read off the nodes once: the free cores are counted twice a
        decision (``_cores_left``), and the set of them is made from these."""
        return [n.name for n in self.ready_workers]

    @cached_property
    def ready_room(self) -> list[float]:
        """What each ready worker has beside its requests (its cores less ``k8s_cores_requested``), in their order."""
        return [n.cores - n.k8s_cores_requested for n in self.ready_workers]

    @property
    def base(self) -> int:
        """Cores of the standalone startds that are up and not draining: the capacity shares are of."""
        return sum(h.standalone for h in self.holdings.values())

    def standalone(self) -> dict[str, list[StartdT]]:
        """Per pool, its standalone startds that are up and not draining: the ones a relabel may move."""
        return {pool: h.standalone_startds for pool, h in self.holdings.items() if h.standalone_startds}

    def borrowed(self) -> dict[str, list[StartdT]]:
        """Per pool, its borrowed startds that are up and not draining: the ones a give-back may take."""
        return {pool: h.lent_startds for pool, h in self.holdings.items() if h.lent_startds}

    @classmethod
    def take(cls, observed: Observed) -> Census:
        """The census of an observation: its startds that are up, and its workers."""
        return cls.of(_up(observed), [n for n in observed.nodes if n.role == _WORKER])

    @classmethod
    def of(cls, up: Iterable[StartdT], workers: Iterable[Node] = ()) -> Census:
        """The census of startds known to be up (and of ``workers``), which it keeps without copying them when
        they come as a sequence (``_up``) and a list."""
        census = cls(up=up if isinstance(up, Sequence) else list(up),
                     workers=workers if isinstance(workers, list) else list(workers))
        workers = census.workers
        census.other_workers = [n for n in workers if n.state != _READY]
        # Mostly none: then the workers are the ready ones, not a second list of thousands.
        census.ready_workers = [n for n in workers if n.state == _READY] if census.other_workers else workers
        census.draining_workers = [n for n in census.other_workers if n.state == _DRAINING]
        census.worker_cores = sum([n.cores for n in workers])  # a comprehension: half the steps of map(attrgetter)
        lent, holdings = census.lent, census.holdings
        pod_cores, pod_memory, draining = census.pod_cores, census.pod_memory, census.draining
        for s in census.up:
            held = holdings.get(s.pool)
            if held is None:
                held = holdings[s.pool] = Holding()
            if s.kind == _STANDALONE:
                if POD_PREFIX <= s.name < _PAST_POD_NAMES:
                    census.pod_like.append(s.name)
                if not s.draining:
                    cores = s.cores
                    held.standalone += cores
                    held.standalone_startds.append(s)
                    held.standalone_sizes.add(cores)
                else:
                    census.standalone_draining.append(s)
                continue
            lent.append(s)
            pod = s.kind == _POD
            if pod:
                node = s.node
                pod_cores[node] = pod_cores.get(node, 0) + s.cores
                pod_memory[node] = pod_memory.get(node, 0) + s.memory_mib
            if s.draining:
                draining.append(s)
                continue
            cores = s.cores
            held.lent += cores
            held.lent_startds.append(s)
            held.lent_sizes.add(cores)
            if s.ready:
                held.ready_lent += cores
            else:
                census.starting.append(s)
            since = s.since
            if since > held.lent_newest or since != since:  # NaN: the latest from then on (no test passes on it)
                held.lent_newest = since
            if pod and s.busy_cores == 0:
                held.idle_pods.append(s)
        return census
