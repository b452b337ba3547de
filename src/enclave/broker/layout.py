"""The enclave's nodes and startds as the spec lays them out, before any demand moves them.

Used as the starting point of a broker run and as the *static partition* baseline: every batch-only node
runs one startd, labelled so that each pool holds its guaranteed share (rounded to whole nodes, largest
remainders first), and what the guarantees leave over goes to the default pool.
"""

from __future__ import annotations

import math

from enclave.broker.model import Node, Observed, Startd, StartdKind
from enclave.spec.models import EnclaveSpec, NodeRole


def nodes_of(spec: EnclaveSpec, now: float = 0.0) -> tuple[Node, ...]:
    return tuple(
        Node(name=f"{g.name}-{i:03d}", group=g.name, role=g.role, cores=g.cores,
             memory_mib=int(g.memory_gib * 1024), since=now)
        for g in spec.cluster.node_groups for i in range(1, g.count + 1)
    )


def static_labels(spec: EnclaveSpec) -> dict[str, str]:
    """Batch-only node → pool, in proportion to the guaranteed shares."""
    batch = [n for n in spec.node_names(NodeRole.BATCH_ONLY)]
    shares = {name: p.guaranteed_share for name, p in spec.pools.items()}
    exact = {name: len(batch) * share for name, share in shares.items()}
    counts = {name: math.floor(x + 1e-9) for name, x in exact.items()}
    left = len(batch) - sum(counts.values())
    for name in sorted(exact, key=lambda n: (-(exact[n] - counts[n]), -spec.pools[n].priority, n)):
        if left <= 0 or exact[name] - counts[name] <= 1e-9:
            continue
        counts[name] += 1
        left -= 1
    counts[spec.batch.default_pool] = counts.get(spec.batch.default_pool, 0) + left
    labels: dict[str, str] = {}
    it = iter(batch)
    for name in sorted(counts, key=lambda n: (-spec.pools[n].priority, n)):
        for _ in range(counts[name]):
            labels[next(it)] = name
    return labels


def initial_state(spec: EnclaveSpec, now: float = 0.0) -> Observed:
    """Every node ready, one standalone startd per batch-only node, labelled by ``static_labels``."""
    nodes = nodes_of(spec, now)
    labels = static_labels(spec)
    startds = tuple(Startd(name=n.name, node=n.name, kind=StartdKind.STANDALONE, pool=labels[n.name],
                           cores=n.cores, memory_mib=n.memory_mib, since=now)
                    for n in nodes if n.role == NodeRole.BATCH_ONLY)
    return Observed(now=now, nodes=nodes, startds=startds)
